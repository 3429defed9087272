package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Ticket is what a device needs to join the tunnel: the server's ticket,
// the carriers' URLs (absolute, best first) and, for WebTransport with a
// self-signed certificate, the certificate hashes.
type Ticket struct {
	Ticket     string
	URLs       []string
	CertHashes [][]byte
	Expires    time.Time
}

// DialFunc opens one carrier to url, joined to room.
type DialFunc func(ctx context.Context, url string, t *Ticket, room RoomID) (Carrier, error)

// LinkConfig configures a Link.
type LinkConfig struct {
	Room RoomID
	// Ticket returns a valid ticket; the Link asks again for each carrier
	// it opens once the last one has expired.
	Ticket func(ctx context.Context) (*Ticket, error)
	// Dial opens a carrier for a URL of the ticket.
	Dial DialFunc
	// FreezeAfter is how long the active carrier may go without a message
	// from the server (media or a pong to the pings sent every
	// PingEvery) before it is taken for frozen and replaced by the spare,
	// if the spare still hears the server: 250 ms, or three round trips
	// on a slow path (at most 2 s). It grows by half, up to a second,
	// each time a carrier taken for frozen turns out only slow.
	FreezeAfter time.Duration
	// PingEvery is the ping interval on the active carrier while it has
	// heard nothing for PingEvery: 100 ms (on a slow path a quarter of
	// the wait for a freeze, if that is longer). While media comes in,
	// which shows the carrier alive, it is pinged ten times less often, for the
	// round trip only: on a 32 kbit/s link ten pings and pongs a second
	// (with their QUIC acknowledgements) take a fifth of it. The spare is
	// pinged ten times less often too.
	PingEvery time.Duration
	// Prefer, if set, is the carrier kind ("websocket", "webtransport")
	// to use first: the Link waits preferWait for it when another kind
	// joins first, as it does for WebTransport when Prefer is empty, and
	// moves up to it rather than to WebTransport. A client sets it to
	// the kind that worked on this network last time.
	Prefer string
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Switch is one move of the call's media from one carrier to another.
type Switch struct {
	At       time.Time
	From, To string // carrier descriptions, e.g. "websocket#2"
	Cause    Cause
	Reason   string // for people
}

// Cause is why a Link switched carriers.
type Cause string

// The causes of a Switch.
const (
	CauseLossy   Cause = "lossy"   // the media on From was lost after repair (ReportLoss)
	CauseFrozen  Cause = "frozen"  // From heard nothing while the spare did
	CauseRotated Cause = "rotated" // From neared the size at which the network froze a flow before
	CauseFailed  Cause = "failed"  // From failed, or there was no active carrier
	CauseUp      Cause = "up"      // to a better kind of carrier
)

// Link is a call's connection to the tunnel: an active carrier that
// carries the media, and a spare, opened ahead, that takes over at once
// when the active one freezes or fails (make before break). Received media
// arrives on Media. Close the Link when the call ends.
type Link struct {
	cfg   LinkConfig
	log   *slog.Logger
	media chan Incoming
	peer  chan bool
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu          sync.Mutex
	active      *carrier
	spare       *carrier
	dialing     bool
	nextDial    time.Time     // after a failed dial, not before
	dialFails   int           // spare dials failed in a row
	closedRTT   time.Duration // the active carrier's round trip when the Link closed
	ticket      *Ticket
	switches    []Switch
	n           int                  // carriers opened
	learned     map[string]int64     // by carrier kind: downstream bytes a flow carried before the network froze it
	bad         map[string]time.Time // by carrier kind: left for loss, not to be used again until then
	lastSwitch  time.Time
	freeze      time.Duration // how long a silent carrier is taken for frozen (LinkConfig.FreezeAfter, raised when it was wrong)
	losses      lossLog       // ReportLoss's reports, over the last lossWindow
	slowLosses  lossLog       // those while constrained, over the last stormWindow
	closed      bool
	trial       *trial          // the media goes on two carriers to judge one (see startTrial)
	proven      map[string]bool // datagram kinds that passed a trial since they were last left for loss
	trialAfter  time.Time       // no trial before, after one that saw too little media
	constrained bool            // the path has no room for the media twice (SetConstrained)
	holdTrials  bool            // HoldTrials
	idle        bool            // no media goes this way (SetIdle)
	woke        time.Time       // when it last stopped being idle

	// dmu guards the copies seen, for dropping the second copy of media
	// that comes on both carriers during a trial and for a moment after.
	dmu        sync.Mutex
	dedup      bool
	dedupUntil time.Time
	copies     [trialCopies]copySeen
	nextCopy   int

	sent, dropped atomic.Int64
}

// lossReport is one ReportLoss.
type lossReport struct {
	at   time.Time
	loss float64
}

// lossLog holds the loss reports on one carrier over a window.
type lossLog struct {
	of      *carrier // the carrier the reports are about (nil: none yet)
	reports []lossReport
}

// add records loss, reported at now on carrier c (forgetting the reports
// on another), forgets those older than window, and returns the mean of
// those left and the time from the first of them to now.
func (g *lossLog) add(c *carrier, now time.Time, loss float64, window time.Duration) (mean float64, span time.Duration) {
	if c != g.of {
		g.of, g.reports = c, g.reports[:0]
	}
	g.reports = append(g.reports, lossReport{now, loss})
	for now.Sub(g.reports[0].at) > window {
		g.reports = g.reports[1:]
	}
	for _, r := range g.reports {
		mean += r.loss
	}
	return mean / float64(len(g.reports)), now.Sub(g.reports[0].at)
}

// carrier is one open carrier with its bookkeeping.
type carrier struct {
	Carrier
	name    string
	out     Queue
	heard   atomic.Int64 // unix ns of the last message from the server
	opened  time.Time
	rtt     atomic.Int64 // ns, smoothed (RFC 6298's SRTT) over the pongs
	suspect atomic.Bool  // taken for frozen: if anything comes on it, it was only slow
	unlearn int64        // with suspect: Link.learned[Kind()] before, plus 1 (guarded by Link.mu)
	bytesIn atomic.Int64 // downstream bytes
	pings   pingLog
	stop    context.CancelFunc
	// slowDial: dialled as a spare on a constrained path, when no other
	// kind could be (guarded by Link.mu): noDatagramSpare keeps it.
	slowDial bool
}

// writeStuck is how long a carrier's write may wait before the carrier is
// taken for dead.
const writeStuck = 10 * time.Second

// Errors of a Link.
var (
	ErrNoCarrier = errors.New("tunnel: no carrier could be opened")
)

// OpenLink opens the first carrier, waits for the server to take the join,
// and starts opening a spare. It returns when the first carrier is joined.
func OpenLink(ctx context.Context, cfg LinkConfig) (*Link, error) {
	if cfg.FreezeAfter <= 0 {
		cfg.FreezeAfter = 250 * time.Millisecond
	}
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = 100 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lctx, stop := context.WithCancel(context.Background())
	l := &Link{cfg: cfg, log: log, media: make(chan Incoming, 64), peer: make(chan bool, 8), ctx: lctx, stop: stop, freeze: cfg.FreezeAfter,
		learned: map[string]int64{}, bad: map[string]time.Time{}, proven: map[string]bool{}}
	c, err := l.open(ctx, "")
	if err != nil {
		l.mu.Lock()
		l.closed = true // carriers that join late close at once
		l.mu.Unlock()
		stop()
		return nil, err
	}
	l.mu.Lock()
	l.active = c
	l.mu.Unlock()
	c.out.Offer(AppendSelect(nil, false)) // the server may have taken a loser of the race for our first carrier (the queue is empty)
	l.wg.Add(1)
	go l.watch()
	return l, nil
}

// Media returns the channel of media payloads received (opaque, as the
// other device sent them). When the receiver falls behind, new media is
// dropped.
func (l *Link) Media() <-chan Incoming { return l.media }

// Incoming is a media payload that came from the server. Resent and
// Aside mark copies whose lateness says nothing of the call's path; they
// are still played if they are in time.
type Incoming struct {
	Payload []byte
	// Resent: the server sent it again after a move (Replay); its first
	// copy went to a carrier that froze or fell silent.
	Resent bool
	// Aside: it came on a carrier the call is not on (the other carrier
	// of a trial, or the one just left).
	Aside bool
}

// Peer returns a channel that says when the other device joins (true) or
// leaves (false) the room.
func (l *Link) Peer() <-chan bool { return l.peer }

// Send queues a media payload on the active carrier; it drops it when the
// carrier's queue is full (the path is slower than the media).
func (l *Link) Send(payload []byte) {
	if len(payload) > MaxMedia {
		l.dropped.Add(1)
		return
	}
	l.mu.Lock()
	c := l.active
	var also *carrier
	if t := l.trial; t != nil {
		also = t.cand
		if also == c {
			also = t.other
		}
	}
	l.mu.Unlock()
	if c == nil {
		l.dropped.Add(1)
		return
	}
	msg := AppendMedia(nil, payload)
	if also != nil {
		also.out.Offer(msg) // the server forwards whichever copy comes first
	}
	if c.out.Offer(msg) {
		l.sent.Add(1)
	} else {
		l.dropped.Add(1)
	}
}

// Path describes the active carrier: "websocket", "webtransport".
func (l *Link) Path() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == nil {
		return ""
	}
	return l.active.Kind()
}

// RTT returns the round trip to the server on the active carrier, from
// its last pong (after Close, the last one measured: what a call's
// summary reports).
func (l *Link) RTT() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == nil {
		return l.closedRTT
	}
	return time.Duration(l.active.rtt.Load())
}

// ReportLoss tells the Link the share of the media that arrived too late
// or not at all, after repair, since the last report (the call's jitter
// buffer knows; reports come every half second or so). The active carrier
// is taken for lossy, when the spare is of another kind, if the last
// report is severeLoss or more, or the reports of the last lossWindow
// average lossyLoss or more: a burst that the redundancy could not repair
// for a moment is no reason to leave a path, a path that keeps losing is.
// A lossy WebSocket is left for the spare at once. A lossy datagram
// carrier is put on trial beside the spare first (see trial), and left
// only if it carried less than trialKeep of the media there: a censor
// throttling UDP flows makes QUIC datagrams worse than TCP, which the
// redundancy cannot repair, but on a path that drops packets in bursts
// (burst-loss-20) TCP stalls behind every loss, and a WebSocket does worse
// than datagrams that lose a tenth after repair. The kind left is not used
// again for badFor. While the path is constrained only a carrier that
// lost half the media or more for seconds is left (congestedLoss).
func (l *Link) ReportLoss(loss float64) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a, s := l.active, l.spare
	if a == nil || l.trial != nil || l.constrained {
		// During a trial the media comes on both carriers: what is lost
		// after repair is lost on both, and the trial judges them. On a
		// path with no room to spare (the sender slowed for a queue) the
		// loss is the queue's, which every carrier shares: moving would
		// only start a new flow into it; unless the carrier itself fills
		// the queue (congestedLoss).
		l.losses.of = nil
		if a != nil && l.trial == nil {
			l.congestedLoss(now, a, s, loss)
		}
		return
	}
	l.slowLosses.of = nil
	mean, span := l.losses.add(a, now, loss, lossWindow)
	covered := span >= lossWindow/2
	var why string
	switch {
	case loss >= severeLoss:
		why = fmt.Sprintf("%.0f%% of the media lost after repair", 100*loss)
	case covered && mean >= lossyLoss:
		why = fmt.Sprintf("%.0f%% of the media lost after repair over %v", 100*mean, span.Round(100*time.Millisecond))
	default:
		return
	}
	if !l.spareReady(now, s) || s.Kind() == a.Kind() {
		return
	}
	if datagrams(a.Kind()) {
		if now.Before(l.trialAfter) {
			return
		}
		l.begin(&trial{cand: a, other: s, start: now, lossy: why}, a, false)
		l.log.Info("tunnel carrier on trial for loss", "carrier", a.name, "reason", why, "beside", s.name)
		return
	}
	l.leave(a.Kind(), now)
	l.promote(CauseLossy, a.name+" lossy: "+why, false)
}

// congestedLoss takes a loss report on a constrained path, where the
// active carrier a is left for the spare s only if it carries datagrams
// and lost stormLoss of the media or more over stormWindow. Under
// rate-32k a QUIC connection that had overflowed the queue once (a step
// up of the bitrate) sometimes never drained it: the two quic-go ends
// traded acknowledgements and probe PINGs at 40–65 packets a second,
// 50–60 kbit/s each way of a 32 kbit/s link, beside 10 kbit/s of media,
// for as long as the call lasted (two five-minute calls played 13% and
// 26%; a packet capture of each client). Those lost 55–90% of the media
// in most windows of 10 s; a queue that the sender overfilled and drained
// again, 30% at most. Closing the connection ends the storm. Called with
// l.mu held.
func (l *Link) congestedLoss(now time.Time, a, s *carrier, loss float64) {
	if !datagrams(a.Kind()) {
		// A TCP flow backs off rather than fill the queue, and the loss
		// of the other device's uplink shows here too (under rate-32k a
		// call left its WebSocket twice for the other side's storm).
		return
	}
	mean, span := l.slowLosses.add(a, now, loss, stormWindow)
	if span < stormWindow*4/5 || mean < stormLoss || !l.spareReady(now, s) {
		return
	}
	l.leave(a.Kind(), now)
	l.promote(CauseLossy, fmt.Sprintf("%s lossy on a slow path: %.0f%% of the media lost after repair over %v",
		a.name, 100*mean, span.Round(100*time.Millisecond)), false)
}

// spareReady says whether the Link may move to the spare s now: there is
// one, the last switch was lossHold ago, and s heard the server in the
// last 2 s. Called with l.mu held.
func (l *Link) spareReady(now time.Time, s *carrier) bool {
	return s != nil && now.Sub(l.lastSwitch) >= lossHold && now.Sub(time.Unix(0, s.heard.Load())) <= 2*time.Second
}

// Switches returns the moves made so far.
func (l *Link) Switches() []Switch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Switch(nil), l.switches...)
}

// Counts returns the media payloads sent and dropped for a full queue.
func (l *Link) Counts() (sent, dropped int64) { return l.sent.Load(), l.dropped.Load() }

// Close closes every carrier.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	cs := []*carrier{l.active, l.spare}
	if l.active != nil {
		l.closedRTT = time.Duration(l.active.rtt.Load())
	}
	l.active, l.spare = nil, nil
	l.mu.Unlock()
	l.stop()
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
	l.wg.Wait()
}

// open races the ticket's URLs: it dials them all at once and returns the
// first carrier joined, or one listed before it that joins within
// preferWait after it (WebTransport comes first: its datagrams carry media
// without TCP's head-of-line blocking). A carrier of LinkConfig.Prefer's
// kind is preferred in the same way to those listed before it. Unless
// avoid is "", a carrier of another kind than avoid is preferred above
// all, so that a spare does not share the active carrier's fate. A carrier that joins later
// still becomes the spare if there is none and it is of another kind than
// the active one (the watch may then move up to it); the others close.
func (l *Link) open(ctx context.Context, avoid string) (*carrier, error) {
	t, err := l.freshTicket(ctx)
	if err != nil {
		return nil, err
	}
	type result struct {
		i   int
		c   *carrier
		err error
	}
	// A kind left lately (for loss, or frozen after a doubt) is not
	// dialled, unless it is all there is; nor, for a spare on a
	// constrained path or of a Link that stands by, a datagram kind (see
	// noDatagramSpare and standBy).
	l.mu.Lock()
	now := time.Now()
	urls := unlessAll(t.URLs, func(u string) bool { return now.Before(l.bad[urlKind(u)]) })
	if (l.constrained || l.idle) && l.active != nil {
		urls = unlessAll(urls, func(u string) bool { return datagrams(urlKind(u)) })
	}
	l.mu.Unlock()
	// Not bounded by ctx: a carrier that joins after the choice may serve.
	dctx, cancel := context.WithTimeout(l.ctx, dialTimeout)
	results := make(chan result, len(urls))
	for i, u := range urls {
		go func() {
			c, err := l.dialOne(dctx, u, t)
			results <- result{i, c, err}
		}()
	}
	prefer := l.cfg.Prefer
	if prefer == avoid {
		prefer = "" // a spare is first of all of another kind
	}
	rank := func(r result) int { // lower is better
		k := r.i
		if prefer != "" && r.c.Kind() != prefer {
			k += len(urls)
		}
		if avoid != "" && r.c.Kind() == avoid {
			k += 2 * len(urls)
		}
		return k
	}
	// enough says that no carrier still dialling would be ranked better
	// in a way that matters: the first URL, or any of the preferred kind.
	enough := func(r result) bool { return rank(r) == 0 || prefer != "" && rank(r) < len(urls) }
	var best *result
	var errs []error
	var grace <-chan time.Time
	n := 0
wait:
	for n < len(urls) && (best == nil || !enough(*best)) {
		select {
		case r := <-results:
			n++
			switch {
			case r.err != nil:
				errs = append(errs, r.err)
			case best == nil:
				best = &r
				grace = time.After(preferWait)
			case rank(r) < rank(*best):
				best.c.close()
				best = &r
			default:
				r.c.close()
			}
		case <-grace:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	go func() { // the carriers that join after the choice
		defer cancel()
		for ; n < len(urls); n++ {
			if r := <-results; r.c != nil && !l.offerSpare(r.c) {
				r.c.close()
			}
		}
	}()
	if best == nil {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrNoCarrier, errors.Join(errs...))
	}
	return best.c, nil
}

// offerSpare keeps c, which joined late, as the spare if there is none
// and it is of another kind than the active carrier.
func (l *Link) offerSpare(c *carrier) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.spare != nil || l.dialing || l.active == nil || l.active.Kind() == c.Kind() {
		return false
	}
	l.spare = c
	return true
}

// Path quality: a carrier that loses severeLoss of the media after repair
// in one report, or lossyLoss on average over lossWindow, is left for a
// spare of another kind, and that kind is not used again for badFor; after
// a switch, the next for loss or for a better kind waits lossHold.
const (
	severeLoss = 0.3
	lossyLoss  = 0.1
	lossWindow = 2 * time.Second
	// On a constrained path: see congestedLoss.
	stormLoss   = 0.5
	stormWindow = 10 * time.Second
	lossHold    = 5 * time.Second
	badFor      = time.Minute
)

// kindRank orders the carriers by preference: LinkConfig.Prefer first,
// else WebTransport.
func (l *Link) kindRank(kind string) int {
	if kind == l.cfg.Prefer || l.cfg.Prefer == "" && kind == "webtransport" {
		return 0
	}
	return 1
}

// unlessAll returns urls without those drop says, or all of them when
// that would leave none.
func unlessAll(urls []string, drop func(string) bool) []string {
	if ok := slices.DeleteFunc(slices.Clone(urls), drop); len(ok) > 0 {
		return ok
	}
	return urls
}

// Dialling: how long a carrier may take to join, how long a better one
// may join after the first, and the waits before a spare is dialled
// again after failures in a row.
const (
	dialTimeout   = 5 * time.Second
	preferWait    = 300 * time.Millisecond
	minRedialWait = 500 * time.Millisecond
	maxRedialWait = 15 * time.Second
)

// redialWait is the wait before the next spare dial after fails failures
// in a row: it doubles from minRedialWait up to maxRedialWait. Each dial
// costs handshakes (a QUIC dial whose Initials go unanswered sends 13 KB),
// and on a slow path that the call fills, dials fail because the path is
// full: under rate-32k a dial every 5.5 s, both kinds, took a third of
// the link.
func redialWait(fails int) time.Duration {
	if fails >= 5 {
		return maxRedialWait
	}
	return min(minRedialWait<<fails, maxRedialWait)
}

func (l *Link) freshTicket(ctx context.Context) (*Ticket, error) {
	l.mu.Lock()
	t := l.ticket
	l.mu.Unlock()
	if t != nil && time.Until(t.Expires) > 10*time.Second {
		return t, nil
	}
	t, err := l.cfg.Ticket(ctx)
	if err != nil {
		return nil, fmt.Errorf("tunnel: ticket: %w", err)
	}
	if len(t.URLs) == 0 {
		return nil, fmt.Errorf("%w: the server offers no carrier", ErrNoCarrier)
	}
	l.mu.Lock()
	l.ticket = t
	l.mu.Unlock()
	return t, nil
}

func (l *Link) dialOne(ctx context.Context, u string, t *Ticket) (*carrier, error) {
	cc, err := l.cfg.Dial(ctx, u, t, l.cfg.Room)
	if err != nil {
		return nil, err
	}
	msg, err := cc.Recv(ctx)
	if err == nil && (len(msg) == 0 || MsgType(msg[0]) != MsgJoined) {
		err = fmt.Errorf("%w: the server answered the join with type %d", ErrMalformed, msg[0])
		if kind, text, perr := ParseError(msg); perr == nil {
			err = fmt.Errorf("tunnel: the server refused the join: %s (%s)", text, kind)
		}
	}
	if err != nil {
		cc.Close()
		return nil, err
	}
	l.mu.Lock()
	if l.closed { // no goroutines may start once Close waits for them
		l.mu.Unlock()
		cc.Close()
		return nil, ErrClosed
	}
	l.n++
	name := fmt.Sprintf("%s#%d", cc.Kind(), l.n)
	l.wg.Add(2)
	l.mu.Unlock()
	cctx, stop := context.WithCancel(l.ctx)
	c := &carrier{Carrier: cc, name: name, out: make(Queue, 8), opened: time.Now(), stop: stop}
	c.heard.Store(time.Now().UnixNano())
	if len(msg) == 2 && msg[1] == 1 {
		l.notePeer(true)
	}
	go l.read(cctx, c)
	go l.write(cctx, c)
	l.log.Debug("tunnel carrier open", "carrier", name, "url", u)
	return c, nil
}

func (c *carrier) close() {
	c.stop()
	c.Close()
}

func (l *Link) notePeer(present bool) {
	select {
	case l.peer <- present:
	default:
	}
}

// read takes the server's messages on c.
func (l *Link) read(ctx context.Context, c *carrier) {
	defer l.wg.Done()
	for {
		msg, err := c.Recv(ctx)
		if err != nil {
			l.failed(c, fmt.Sprintf("closed: %v", err))
			return
		}
		c.heard.Store(time.Now().UnixNano())
		c.bytesIn.Add(int64(len(msg)))
		if c.suspect.Swap(false) {
			l.revived(c)
		}
		if len(msg) == 0 {
			continue
		}
		switch MsgType(msg[0]) {
		case MsgMedia, MsgReplay:
			first, aside := l.firstCopy(c, msg[1:])
			if !first {
				continue
			}
			select {
			case l.media <- Incoming{Payload: msg[1:], Resent: MsgType(msg[0]) == MsgReplay, Aside: aside}:
			default:
			}
		case MsgPong:
			if n, err := ParsePing(msg); err == nil {
				if rtt, ok := c.pings.pong(n, time.Now()); ok {
					old := time.Duration(c.rtt.Load())
					if old == 0 {
						old = rtt
					}
					c.rtt.Store(int64(old - old/8 + rtt/8))
				}
			}
		case MsgPeer:
			l.notePeer(len(msg) == 2 && msg[1] == 1)
		case MsgError:
			kind, text, _ := ParseError(msg)
			l.failed(c, fmt.Sprintf("the server closed it: %s (%s)", text, kind))
			return
		}
	}
}

// write sends c's queue.
func (l *Link) write(ctx context.Context, c *carrier) {
	defer l.wg.Done()
	for {
		select {
		case q := <-c.out:
			if q.Stale(time.Now()) {
				l.dropped.Add(1)
				continue
			}
			// A write waits while the path is slower than the media (a
			// carrier keeps little unsent: SetLowLatency); what queues
			// behind it goes stale and is dropped. Only a write stuck
			// this long means a dead carrier (a WebSocket write that
			// times out closes the connection).
			wctx, cancel := context.WithTimeout(ctx, writeStuck)
			err := c.Send(wctx, q.Msg)
			cancel()
			if err != nil {
				l.failed(c, fmt.Sprintf("send failed: %v", err))
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// failed replaces c if it is the active carrier, or forgets it if it is
// the spare.
func (l *Link) failed(c *carrier, reason string) {
	l.mu.Lock()
	switch {
	case l.closed:
	case l.active == c:
		l.promote(CauseFailed, reason, true)
	case l.spare == c:
		l.spare = nil
	}
	l.mu.Unlock()
	c.close()
}

// promote makes the spare the active carrier (or, with none, leaves the
// Link without one until a carrier opens); replay asks the server for the
// media that went into the old one lately. Called with l.mu held.
func (l *Link) promote(cause Cause, reason string, replay bool) {
	old := l.active
	sw := Switch{At: time.Now(), Cause: cause, Reason: reason}
	l.endTrial(sw.At, nil) // the Select below ends it on the server
	if old != nil {
		sw.From = old.name
	}
	l.active, l.spare = l.spare, nil
	if l.active != nil {
		sw.To = l.active.name
		l.active.heard.Store(time.Now().UnixNano())   // the spare was pinged seldom: give it a moment
		l.active.out.Offer(AppendSelect(nil, replay)) // the server sends our media here from now on
	}
	l.switches = append(l.switches, sw)
	l.lastSwitch = sw.At
	l.log.Info("tunnel carrier switched", "from", sw.From, "to", sw.To, "reason", reason)
	if old != nil && !replay { // what the server sent before our Select may still arrive
		time.AfterFunc(time.Second, old.close)
	} else if old != nil && !old.suspect.Load() {
		go old.close()
	}
}

// watchFrozen notes how much c carried before it froze, so that later
// carriers are rotated before they carry as much, and keeps it open for
// confirmWait: if anything comes on it meanwhile (revived), it was only
// slow, the note is taken back, and the Link waits longer before it takes
// a carrier for frozen. Called with l.mu held.
func (l *Link) watchFrozen(c *carrier) {
	c.suspect.Store(true)
	if rx := c.bytesIn.Load(); rx >= minLearn && time.Since(c.opened) < time.Minute {
		c.unlearn = l.learned[c.Kind()] + 1 // to restore if it was only slow (0 means none)
		l.learned[c.Kind()] = rx
	}
	time.AfterFunc(confirmWait, func() {
		c.suspect.Store(false)
		c.close()
	})
}

// revived notes that c, taken for frozen, was only slow.
func (l *Link) revived(c *carrier) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.unlearn > 0 {
		l.learned[c.Kind()] = c.unlearn - 1
	}
	l.freeze = min(l.freeze*3/2, maxFreezeAfter)
	l.log.Info("tunnel carrier was slow, not frozen", "carrier", c.name, "freeze_after", l.freeze)
}

// Confirming a freeze: how long a carrier taken for frozen is watched,
// and the most FreezeAfter grows to when carriers turn out only slow.
// A flow that froze after less than minLearn bytes says nothing about a
// byte limit (it was a spare, or froze at once).
const (
	confirmWait    = 2 * time.Second
	maxFreezeAfter = time.Second
	// maxSlowFreeze bounds the wait of three round trips on a slow path.
	maxSlowFreeze = 2 * time.Second
	// slowDatagramFreeze is the wait for a datagram (WebTransport)
	// carrier on a constrained path. No censor freezes a QUIC flow by
	// its bytes, as tcp-freeze-16k does a TCP flow; on a path with no
	// room to spare its silences are the queues' (quic-go holds up to 32
	// datagrams while its congestion window is full; under rate-32k
	// silences of 0.3 to 2 s were taken for freezes, and the call moved
	// to TCP, which stalled worse). It is not doubted there either
	// (mayDoubt): the media has no room to go twice.
	slowDatagramFreeze = 3 * time.Second
	minLearn           = 4096
)

// freezeWait is how long the active carrier may be silent before it is
// taken for frozen: freeze, or on a slow path three round trips, since a
// slow path is not a frozen one, but at most maxSlowFreeze: a flow whose
// round trip has grown to seconds (TCP backing off after losses on a full
// queue; rate-32k had 30 s) is no use to a call, and a fresh flow, which
// the spare shows hearing the server sooner, does better.
func freezeWait(freeze, rtt time.Duration) time.Duration {
	return max(freeze, min(3*rtt, maxSlowFreeze))
}

// SetIdle tells the Link whether the call's media goes another way (a
// call on WebRTC keeps the tunnel standing by, Session.Hold): then the
// Link keeps one carrier, pinged once a second rather than every
// PingEvery while silent (which would cost an idle call some twenty pings
// and pongs a second a side), and a silent carrier is not taken for
// frozen (with no media, the pings alone would tell it, at that cost).
// The carrier kept is a WebSocket if it has one (see standBy). Once no
// longer idle, the Link watches as before, its carriers' silence counted
// from then, and opens a spare again.
func (l *Link) SetIdle(idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idle && !idle {
		l.woke = time.Now()
	}
	l.idle = idle
}

// watch pings the carriers, detects a frozen active carrier, rotates a
// carrier before it reaches the size at which the network froze the last
// one, and keeps a spare open.
func (l *Link) watch() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.PingEvery / 2)
	defer t.Stop()
	tick := 0
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		tick++
		now := time.Now()
		l.mu.Lock()
		a, s, idle := l.active, l.spare, l.idle
		var silent, freezeAfter time.Duration
		if a != nil {
			heard := time.Unix(0, a.heard.Load())
			if heard.Before(l.woke) {
				heard = l.woke // silence counts from waking (SetIdle)
			}
			silent = now.Sub(heard)
			freezeAfter = freezeWait(l.freeze, time.Duration(a.rtt.Load()))
			if l.constrained && datagrams(a.Kind()) {
				freezeAfter = max(freezeAfter, slowDatagramFreeze)
			}
		}
		// The spare still hears the server and the active carrier does
		// not: its flow froze. (When both are silent the path is slow or
		// down, and another carrier would fare no better.) A datagram
		// carrier is doubted first, not left (see doubt).
		frozen := !idle && a != nil && silent > freezeAfter && s != nil && s.heard.Load() > a.heard.Load()
		doubted := frozen && l.mayDoubt(a)
		switch {
		case frozen && !doubted:
			l.watchFrozen(a) // before promote, which would close it
			l.promote(CauseFrozen, fmt.Sprintf("%s frozen: nothing from the server for %v", a.name, silent.Round(time.Millisecond)), true)
		case doubted && l.trial == nil:
			l.doubt(now, a, s, silent)
		case a != nil && s != nil && l.learned[a.Kind()] > 0 && a.bytesIn.Load() > l.learned[a.Kind()]*6/10:
			l.promote(CauseRotated, fmt.Sprintf("%s rotated at %d bytes: the last frozen flow stopped at %d", a.name, a.bytesIn.Load(), l.learned[a.Kind()]), false)
		case a == nil && s != nil:
			l.promote(CauseFailed, "no active carrier", true)
		case l.trial != nil && (now.Sub(l.trial.start) >= trialFor || l.constrained):
			l.judgeTrial(now)
		case l.trial == nil && !idle && l.wantTrial(now, a, s):
			l.startTrial(now, a, s)
		case a != nil && s != nil && !datagrams(s.Kind()) && l.kindRank(s.Kind()) < l.kindRank(a.Kind()) && l.mayMoveUp(now, s):
			l.promote(CauseUp, fmt.Sprintf("up to %s: the preferred kind", s.name), false)
		}
		l.noDatagramSpare()
		if idle {
			l.standBy()
		}
		a, s = l.active, l.spare
		// An idle Link opens one only to stand by on a WebSocket (standBy).
		needSpare := s == nil && (!idle || a == nil || datagrams(a.Kind())) && !l.dialing && now.After(l.nextDial)
		avoid := ""
		if needSpare {
			l.dialing = true
			if a != nil {
				avoid = a.Kind()
			}
		}
		l.mu.Unlock()
		// While the active carrier is silent, both are pinged every
		// PingEvery, or a quarter of the wait for a freeze on a slow path:
		// the pongs still come in time to tell, and a 32 kbit/s link has
		// no room for ten pings and pongs a second on each carrier.
		gap := max(l.cfg.PingEvery, freezeAfter/4)
		due := func(c *carrier) bool { return now.Sub(c.pings.last()) >= gap-l.cfg.PingEvery/4 } // a tick early is on time
		if a != nil && (tick%20 == 0 || !idle && silent >= gap && due(a)) {
			l.ping(a)
		}
		if s != nil && (tick%20 == 0 || !idle && a != nil && silent > freezeAfter/2 && due(s)) {
			l.ping(s) // often while the active carrier is silent: is it the flow or the path?
		}
		if needSpare {
			go l.openSpare(avoid)
		}
	}
}

// noDatagramSpare closes a datagram (WebTransport) spare while the path
// is constrained; the spare dialled next is of another kind (see open).
// On a slow path an idle QUIC connection is not idle: whenever one of its
// packets or acknowledgements is lost, quic-go's probe timer (about a
// round trip) sends two PINGs, which the server acknowledges, and their
// own losses start the next pair. qlogs of the lab's 32 kbit/s profile
// show ~10 PINGs and ~10 acknowledgements a second each way on a spare
// that carried one ping a second: ~8 kbit/s each way of a 32 kbit/s link,
// taken from the media. A WebSocket spare costs its pings only. A spare
// dialled on the constrained path is kept whatever its kind: no other
// could be had. Called with l.mu held.
func (l *Link) noDatagramSpare() {
	s := l.spare
	if !l.constrained || l.active == nil || s == nil || !datagrams(s.Kind()) || s.slowDial || l.trial != nil {
		return
	}
	l.spare = nil
	l.log.Debug("tunnel: a datagram spare on a constrained path closed", "spare", s.name)
	go s.close()
}

// standBy leaves an idle Link one carrier: a WebSocket if it has one,
// which becomes the active carrier without a Switch (no media goes this
// way to switch). A call's tunnel stands by in case WebRTC breaks, which
// on a censored network is when UDP is blocked or throttled, so the
// WebSocket is the carrier that would carry it then; and it is the
// cheaper to keep: parley-load --standby 300 measured the server's
// memory per standing-by call at 414 KiB with a WebTransport session and
// a WebSocket spare a side (34 goroutines, 337 µs of CPU a second), 164
// KiB with one WebSocket a side (4, 105 µs). When the Link wakes, a spare of another kind opens, and a
// WebTransport one is put on trial before the media moves up to it: the
// one it stood by with has not been proven. Called with l.mu held.
func (l *Link) standBy() {
	a, s := l.active, l.spare
	if s == nil || l.trial != nil {
		return
	}
	keep, drop := a, s
	if a == nil || datagrams(a.Kind()) && !datagrams(s.Kind()) {
		keep, drop = s, a
	}
	l.active, l.spare = keep, nil
	if drop != nil {
		if datagrams(drop.Kind()) {
			delete(l.proven, drop.Kind())
		}
		l.log.Debug("tunnel: standing by on one carrier", "kept", keep.name, "closed", drop.name)
		go drop.close()
	}
}

func (l *Link) ping(c *carrier) {
	c.out.Offer(AppendPing(nil, MsgPing, c.pings.ping(time.Now())))
}

// pingLog numbers a carrier's pings and matches their pongs, for the
// round trip and the share of pings lost.
type pingLog struct {
	mu     sync.Mutex
	next   uint64
	sentAt [64]time.Time // by nonce % 64
	got    [64]bool
}

func (p *pingLog) ping(now time.Time) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.next
	p.next++
	i := n % uint64(len(p.sentAt))
	p.sentAt[i], p.got[i] = now, false
	return n
}

// last returns when the last ping was sent (zero before the first).
func (p *pingLog) last() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		return time.Time{}
	}
	return p.sentAt[(p.next-1)%uint64(len(p.sentAt))]
}

// pong takes the pong of ping n and returns its round trip.
func (p *pingLog) pong(n uint64, now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := n % uint64(len(p.sentAt))
	if n >= p.next || n+uint64(len(p.sentAt)) < p.next || p.got[i] {
		return 0, false
	}
	p.got[i] = true
	return now.Sub(p.sentAt[i]), true
}

func (l *Link) openSpare(avoid string) {
	l.mu.Lock()
	slow := l.constrained
	l.mu.Unlock()
	c, err := l.open(l.ctx, avoid)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dialing = false
	if err != nil {
		l.nextDial = time.Now().Add(redialWait(l.dialFails))
		l.dialFails++
		if l.ctx.Err() == nil {
			l.log.Debug("tunnel spare carrier", "err", err, "failures", l.dialFails)
		}
		return
	}
	l.dialFails = 0
	if l.closed {
		go c.close()
		return
	}
	c.slowDial = slow
	l.spare = c
	if l.active == nil {
		l.promote(CauseFailed, "a carrier opened", true)
	}
}
