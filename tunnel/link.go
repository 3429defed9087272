package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	// PingEvery) before it is taken for frozen and replaced: 250 ms. It
	// grows by half, up to a second, each time a carrier taken for frozen
	// turns out only slow.
	FreezeAfter time.Duration
	// PingEvery is the ping interval on the active carrier: 100 ms. The
	// spare is pinged ten times less often.
	PingEvery time.Duration
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Switch is one move of the call's media from one carrier to another.
type Switch struct {
	At       time.Time
	From, To string // carrier descriptions, e.g. "websocket#2"
	Reason   string
}

// Link is a call's connection to the tunnel: an active carrier that
// carries the media, and a spare, opened ahead, that takes over at once
// when the active one freezes or fails (make before break). Received media
// arrives on Media. Close the Link when the call ends.
type Link struct {
	cfg   LinkConfig
	log   *slog.Logger
	media chan []byte
	peer  chan bool
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu       sync.Mutex
	active   *carrier
	spare    *carrier
	dialing  bool
	nextDial time.Time // after a failed dial, not before
	ticket   *Ticket
	switches []Switch
	n        int           // carriers opened
	learned  int64         // downstream bytes a flow carried before the network froze it
	freeze   time.Duration // how long a silent carrier is taken for frozen (LinkConfig.FreezeAfter, raised when it was wrong)
	closed   bool

	sent, dropped atomic.Int64
}

// carrier is one open carrier with its bookkeeping.
type carrier struct {
	Carrier
	name      string
	out       chan []byte
	heard     atomic.Int64 // unix ns of the last message from the server
	opened    time.Time
	rtt       atomic.Int64 // ns, of the last pong
	suspect   atomic.Bool  // taken for frozen: if anything comes on it, it was only slow
	unlearn   int64        // with suspect: Link.learned before, plus 1 (guarded by Link.mu)
	bytesIn   atomic.Int64 // downstream bytes
	pingNonce atomic.Uint64
	pingSent  atomic.Int64
	stop      context.CancelFunc
}

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
	l := &Link{cfg: cfg, log: log, media: make(chan []byte, 64), peer: make(chan bool, 8), ctx: lctx, stop: stop, freeze: cfg.FreezeAfter}
	c, err := l.open(ctx, "")
	if err != nil {
		stop()
		return nil, err
	}
	l.mu.Lock()
	l.active = c
	l.mu.Unlock()
	c.out <- AppendSelect(nil, false) // the server may have taken a loser of the race for our first carrier
	l.wg.Add(1)
	go l.watch()
	return l, nil
}

// Media returns the channel of media payloads received (opaque, as the
// other device sent them). When the receiver falls behind, new media is
// dropped.
func (l *Link) Media() <-chan []byte { return l.media }

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
	l.mu.Unlock()
	if c == nil {
		l.dropped.Add(1)
		return
	}
	select {
	case c.out <- AppendMedia(nil, payload):
		l.sent.Add(1)
	default:
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
// its last pong.
func (l *Link) RTT() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == nil {
		return 0
	}
	return time.Duration(l.active.rtt.Load())
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
// without TCP's head-of-line blocking). Unless avoid is "", a carrier of
// another kind than avoid is preferred in the same way, so that a spare
// does not share the active carrier's fate. The losers are closed.
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
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	results := make(chan result, len(t.URLs))
	for i, u := range t.URLs {
		go func() {
			c, err := l.dialOne(dctx, u, t)
			results <- result{i, c, err}
		}()
	}
	rank := func(r result) int { // lower is better
		if avoid != "" && r.c.Kind() == avoid {
			return r.i + len(t.URLs)
		}
		return r.i
	}
	var best *result
	var errs []error
	var grace <-chan time.Time
	for n := 0; n < len(t.URLs); {
		select {
		case r := <-results:
			n++
			switch {
			case r.err != nil:
				errs = append(errs, r.err)
				continue
			case best == nil:
				best = &r
				grace = time.After(preferWait)
			case rank(r) < rank(*best):
				best.c.close()
				best = &r
			default:
				r.c.close()
			}
			if rank(*best) == 0 {
				n = len(t.URLs) // none can beat it
			}
			continue
		case <-grace:
		}
		break
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCarrier, errors.Join(errs...))
	}
	go func() { // close the carriers that join after the choice
		for {
			select {
			case r := <-results:
				if r.c != nil {
					r.c.close()
				}
			case <-dctx.Done():
				return
			}
		}
	}()
	return best.c, nil
}

// Dialling: how long a carrier may take to join, and how long a better
// one may join after the first.
const (
	dialTimeout = 5 * time.Second
	preferWait  = 300 * time.Millisecond
)

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
	l.n++
	name := fmt.Sprintf("%s#%d", cc.Kind(), l.n)
	l.mu.Unlock()
	cctx, stop := context.WithCancel(l.ctx)
	c := &carrier{Carrier: cc, name: name, out: make(chan []byte, 8), opened: time.Now(), stop: stop}
	c.heard.Store(time.Now().UnixNano())
	if len(msg) == 2 && msg[1] == 1 {
		l.notePeer(true)
	}
	l.wg.Add(2)
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
		case MsgMedia:
			select {
			case l.media <- msg[1:]:
			default:
			}
		case MsgPong:
			if n, err := ParsePing(msg); err == nil && n == c.pingNonce.Load() {
				c.rtt.Store(time.Now().UnixNano() - c.pingSent.Load())
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
		case msg := <-c.out:
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Send(wctx, msg)
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
		l.promote(reason, true)
	case l.spare == c:
		l.spare = nil
	}
	l.mu.Unlock()
	c.close()
}

// promote makes the spare the active carrier (or, with none, leaves the
// Link without one until a carrier opens); replay asks the server for the
// media that went into the old one lately. Called with l.mu held.
func (l *Link) promote(reason string, replay bool) {
	old := l.active
	sw := Switch{At: time.Now(), Reason: reason}
	if old != nil {
		sw.From = old.name
	}
	l.active, l.spare = l.spare, nil
	if l.active != nil {
		sw.To = l.active.name
		l.active.heard.Store(time.Now().UnixNano()) // the spare was pinged seldom: give it a moment
		select {                                    // the server sends our media here from now on
		case l.active.out <- AppendSelect(nil, replay):
		default:
		}
	}
	l.switches = append(l.switches, sw)
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
	if rx := c.bytesIn.Load(); rx > 0 && time.Since(c.opened) < time.Minute {
		c.unlearn = l.learned + 1 // to restore if it was only slow (0 means none)
		l.learned = rx
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
		l.learned = c.unlearn - 1
	}
	l.freeze = min(l.freeze*3/2, maxFreezeAfter)
	l.log.Info("tunnel carrier was slow, not frozen", "carrier", c.name, "freeze_after", l.freeze)
}

// Confirming a freeze: how long a carrier taken for frozen is watched,
// and the most FreezeAfter grows to when carriers turn out only slow.
const (
	confirmWait    = 2 * time.Second
	maxFreezeAfter = time.Second
)

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
		a, s := l.active, l.spare
		switch {
		case a != nil && now.Sub(time.Unix(0, a.heard.Load())) > l.freeze:
			l.promote(fmt.Sprintf("%s frozen: nothing from the server for %v", a.name, now.Sub(time.Unix(0, a.heard.Load())).Round(time.Millisecond)), true)
			l.watchFrozen(a)
		case a != nil && s != nil && l.learned > 0 && a.bytesIn.Load() > l.learned*6/10:
			l.promote(fmt.Sprintf("%s rotated at %d bytes: the last frozen flow stopped at %d", a.name, a.bytesIn.Load(), l.learned), false)
		case a == nil && s != nil:
			l.promote("no active carrier", true)
		}
		a, s = l.active, l.spare
		needSpare := s == nil && !l.dialing && now.After(l.nextDial)
		avoid := ""
		if needSpare {
			l.dialing = true
			if a != nil {
				avoid = a.Kind()
			}
		}
		l.mu.Unlock()
		if a != nil && tick%2 == 0 {
			l.ping(a)
		}
		if s != nil && tick%20 == 0 {
			l.ping(s)
		}
		if needSpare {
			go l.openSpare(avoid)
		}
	}
}

func (l *Link) ping(c *carrier) {
	n := rand.Uint64()
	c.pingNonce.Store(n)
	c.pingSent.Store(time.Now().UnixNano())
	select {
	case c.out <- AppendPing(nil, MsgPing, n):
	default:
	}
}

func (l *Link) openSpare(avoid string) {
	c, err := l.open(l.ctx, avoid)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dialing = false
	if err != nil {
		l.nextDial = time.Now().Add(500 * time.Millisecond)
		if l.ctx.Err() == nil {
			l.log.Debug("tunnel spare carrier", "err", err)
		}
		return
	}
	if l.closed {
		go c.close()
		return
	}
	l.spare = c
	if l.active == nil {
		l.promote("a carrier opened", true)
	}
}
