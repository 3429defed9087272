package tunnel

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/sframe"
	"github.com/parleychat/parley/tunnel/audio"
)

// Suite is the SFrame cipher suite of the tunnel's media:
// AES_128_CTR_HMAC_SHA256_80 (RFC 9605 section 8.1), made for media.
const Suite = sframe.Suite(1)

// The sender's redundancy bound on a reliable carrier (a WebSocket) and on
// a lossy one (WebTransport datagrams).
const (
	reliableDepth = 1
	lossyDepth    = 12
)

// lossEvery is how often, in frames, a Session tells its Link the share
// of the frames it could not play: half a second of 20 ms frames.
const lossEvery = 25

// SessionConfig configures a Session.
type SessionConfig struct {
	Keys Keys
	// Caller is true on the device that made the call: it sends under
	// SFrame KID CallerKID and receives under CalleeKID.
	Caller bool
	// Link is how to reach the tunnel; its Room is Keys.Room.
	Link LinkConfig
	// FrameDuration is the duration of one audio frame: 20 ms.
	FrameDuration time.Duration
	// Play is called from Run every FrameDuration with the frame due:
	// Played or Repaired with its bytes (empty for the sender's silence),
	// or Concealed with none. It is not called while the buffer is
	// still Waiting for its first frames.
	Play func(seq uint64, frame []byte, st audio.FrameStatus, now time.Time)
	// Arrived, if set, is called from Run with each frame that came in
	// for the first time (for traces and the first-audio moment).
	Arrived func(f audio.Frame, now time.Time)
	// Peer, if set, is called from Run when the other device enters the
	// room (true) or leaves it (false).
	Peer func(present bool)
	// Resume, if set, is asked from Run when a packet comes while the
	// Session is held (Hold): true plays it and what follows as a new
	// stream, false drops it. Unset, held Sessions drop every packet.
	Resume func(now time.Time) bool
	Logger *slog.Logger
}

// Session carries one call's audio through the tunnel: the frames it is
// given go out as packets of package tunnel/audio (each repeats earlier
// frames, as deep as the loss the other side reports), encrypted with
// SFrame (RFC 9605 section 4.4.3) under the caller's or the callee's key,
// over a Link; the packets that come in are decrypted and played out
// through an adaptive jitter buffer. The same code runs in the CLI
// (package call) and in the browser (web/wasm), which bring the codec.
type Session struct {
	cfg  SessionConfig
	link *Link
	sf   *sframe.Context
	me   uint64 // our SFrame KID

	mu          sync.Mutex // guards the fields below, snd and jb
	snd         *audio.Sender
	jb          *audio.JitterBuffer
	ctr         uint64 // our SFrame counter
	seq         uint64 // of the next frame we send
	lastSend    time.Time
	resumed     bool              // see Resumed
	held        bool              // see Hold
	idle        bool              // held, and sending nothing: what the Link was last told (Link.SetIdle)
	earlier     audio.JitterStats // the counts of the jitter buffers that Hold dropped
	carrier     string            // the link's carrier when the last frame was sent
	constrained bool              // what the Link was last told (Link.SetConstrained)
	measured    bool              // the sender has measured the path: the Link's trials are no longer held
	// the jitter buffer's counts at the last loss report
	lastPlayed, lastConcealed int
}

// OpenSession opens the Link (ctx bounds that) and returns the Session;
// call Run to receive and play out, and Close when the call ends.
func OpenSession(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if cfg.FrameDuration <= 0 {
		cfg.FrameDuration = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sf, err := sframe.NewContext(Suite)
	if err != nil {
		return nil, err
	}
	me, peer, myKey, peerKey := uint64(CallerKID), uint64(CalleeKID), cfg.Keys.Caller, cfg.Keys.Callee
	if !cfg.Caller {
		me, peer, myKey, peerKey = peer, me, peerKey, myKey
	}
	if err := sf.AddKey(me, myKey); err != nil {
		return nil, err
	}
	if err := sf.AddKey(peer, peerKey); err != nil {
		return nil, err
	}
	lc := cfg.Link
	lc.Room = cfg.Keys.Room
	if lc.Logger == nil {
		lc.Logger = cfg.Logger
	}
	link, err := OpenLink(ctx, lc)
	if err != nil {
		return nil, err
	}
	link.HoldTrials(true) // until the sender has measured the path
	return &Session{
		cfg: cfg, link: link, sf: sf, me: me,
		snd: audio.NewSender(audio.SenderConfig{FrameDuration: cfg.FrameDuration}),
		jb:  audio.NewJitterBuffer(audio.JitterConfig{FrameDuration: cfg.FrameDuration}),
	}, nil
}

// Run receives and plays out until ctx is done or the Session is closed.
func (s *Session) Run(ctx context.Context) {
	tick := time.NewTicker(s.cfg.FrameDuration)
	defer tick.Stop()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.link.ctx.Done():
			return
		case present := <-s.link.Peer():
			if s.cfg.Peer != nil {
				s.cfg.Peer(present)
			}
		case m := <-s.link.Media():
			s.receive(m)
		case now := <-tick.C:
			s.playout(now)
			s.standBy(now)
			if ticks++; ticks%lossEvery == 0 {
				s.reportLoss()
			}
		}
	}
}

// idleAfter is how long a held Session must have sent nothing before its
// Link stands by (Link.SetIdle).
const idleAfter = time.Second

// standBy lets the Link stand by while the Session is held and sends
// nothing: the call's audio goes over WebRTC both ways.
func (s *Session) standBy(now time.Time) {
	s.mu.Lock()
	idle := s.held && now.Sub(s.lastSend) > idleAfter
	changed := idle != s.idle
	s.idle = idle
	s.mu.Unlock()
	if changed {
		s.link.SetIdle(idle)
	}
}

// Resumed tells the Session that the call's audio went another way
// (WebRTC) since the last frame it sent: the next frame's sequence number
// skips the time between, and the frames before it are not repeated, so
// that the other side plays them as a new stream even if its jitter
// buffer went on playing (concealing) meanwhile; one that was held starts
// afresh anyway.
func (s *Session) Resumed() {
	s.mu.Lock()
	s.resumed = true
	s.mu.Unlock()
}

// Send sends one encoded frame (empty for silence) and returns its
// sequence number. Frames are sent one FrameDuration apart, from one
// goroutine.
func (s *Session) Send(frame []byte) (uint64, error) {
	now := time.Now()
	carrier := s.link.Path()
	s.mu.Lock()
	if s.resumed && !s.lastSend.IsZero() {
		n := max(int(now.Sub(s.lastSend)/s.cfg.FrameDuration)-1, 1)
		s.snd.Skip(n)
		s.seq += uint64(n)
	}
	s.resumed, s.lastSend = false, now
	wake := s.idle
	s.idle = false
	if carrier != s.carrier {
		// Over TCP a packet arrives or the flow froze: repeating frames
		// repairs nothing there (the Link replays what a frozen flow
		// swallowed) and makes a censor counting bytes freeze it sooner.
		s.carrier = carrier
		if carrier == "websocket" {
			s.snd.SetMaxDepth(reliableDepth, "the carrier is a WebSocket: TCP repairs loss itself")
		} else {
			s.snd.SetMaxDepth(lossyDepth, "the carrier is "+carrier+": datagrams may be lost")
		}
	}
	seq := s.seq
	s.seq++
	pkt, ok := s.snd.Push(frame, now, s.jb.Feedback(now))
	constrained := s.snd.Constrained(now)
	newConstraint := constrained != s.constrained
	s.constrained = constrained
	measured := !s.measured && s.snd.Measured()
	s.measured = s.measured || measured
	var ct []byte
	var err error
	if ok {
		ct, err = s.sf.Encrypt(nil, s.me, s.ctr, nil, pkt)
		s.ctr++
	}
	s.mu.Unlock()
	if wake {
		s.link.SetIdle(false)
	}
	if newConstraint {
		s.link.SetConstrained(constrained)
	}
	if measured {
		s.link.HoldTrials(false)
	}
	if err != nil || !ok {
		return seq, err
	}
	s.link.Send(ct)
	return seq, nil
}

// receive takes one packet from the other device.
func (s *Session) receive(m Incoming) {
	now := time.Now()
	pt, kid, _, err := s.sf.Decrypt(nil, nil, m.Payload)
	if err != nil || kid == s.me {
		s.cfg.Logger.Debug("tunnel packet dropped", "err", err)
		return
	}
	p, err := audio.ParsePacket(pt)
	if err != nil {
		s.cfg.Logger.Debug("tunnel packet malformed", "err", err)
		return
	}
	s.mu.Lock()
	if p.Feedback != nil && !m.Resent { // a resent report is old news: its echo would read as a long round trip
		s.snd.Feedback(p.Feedback, now)
	}
	held := s.held
	s.mu.Unlock()
	if held && (s.cfg.Resume == nil || !s.cfg.Resume(now)) {
		return
	}
	s.mu.Lock()
	if !held && s.held { // held meanwhile: a straggler
		s.mu.Unlock()
		return
	}
	s.held = false
	push := s.jb.Push
	switch {
	case m.Resent:
		push = s.jb.PushResent
	case m.Aside:
		push = s.jb.PushAside
	}
	fresh := push(p, now)
	s.mu.Unlock()
	if s.cfg.Arrived != nil {
		for _, f := range fresh {
			s.cfg.Arrived(f, now)
		}
	}
}

// playout hands the frame due now to Play.
func (s *Session) playout(now time.Time) {
	s.mu.Lock()
	frame, st := s.jb.Pop(now)
	seq := s.jb.Next() - 1
	s.mu.Unlock()
	if st != audio.Waiting && s.cfg.Play != nil {
		s.cfg.Play(seq, frame, st, now)
	}
}

// Hold stops playing out: the call's audio from the other device goes
// another way (WebRTC), and the frames that still come this way are
// stragglers. It returns the frames the jitter buffer still held, to be
// played at once (nil for those missing), and drops the buffer with its
// timing; packets that come while held are dropped too, unless Resume
// takes them, and then a fresh jitter buffer plays them as a new stream.
func (s *Session) Hold() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		return nil
	}
	s.held = true
	rest := s.jb.Rest()
	s.earlier = addJitter(s.earlier, s.jb.Stats())
	s.jb = audio.NewJitterBuffer(audio.JitterConfig{FrameDuration: s.cfg.FrameDuration})
	s.lastPlayed, s.lastConcealed = 0, 0
	return rest
}

// addJitter is the counts of a and b, and b's current state: the stats
// of a jitter buffer that took over from another.
func addJitter(a, b audio.JitterStats) audio.JitterStats {
	b.Packets += a.Packets
	b.Received += a.Received
	b.Played += a.Played
	b.Repaired += a.Repaired
	b.Concealed += a.Concealed
	b.Inserted += a.Inserted
	b.Skipped += a.Skipped
	b.Late += a.Late
	b.Duplicates += a.Duplicates
	b.Dropped += a.Dropped
	b.Resyncs += a.Resyncs
	b.LongestGap = max(a.LongestGap, b.LongestGap)
	b.MaxTargetDelay = max(a.MaxTargetDelay, b.MaxTargetDelay)
	return b
}

// reportLoss tells the Link what share of the frames due since the last
// report the jitter buffer had to conceal: loss its repairs could not
// make up for, a reason to try another carrier.
func (s *Session) reportLoss() {
	s.mu.Lock()
	js := s.jb.Stats()
	// A Link that carries nothing conceals every slot: its Trailing ones
	// count as loss here.
	all := js.Concealed + js.Trailing
	played, concealed := js.Played-s.lastPlayed, all-s.lastConcealed
	s.lastPlayed, s.lastConcealed = js.Played, all
	s.mu.Unlock()
	if due := played + concealed; due > lossEvery/2 {
		s.link.ReportLoss(float64(concealed) / float64(due))
	}
}

// Bitrate is the encoder bitrate, in bit/s, that the sender chooses for
// the path now (package audio's Sender): what the codec should be set to.
func (s *Session) Bitrate() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snd.Bitrate()
}

// Path is the carrier the media goes on now: "websocket" or
// "webtransport".
func (s *Session) Path() string { return s.link.Path() }

// SessionStats are the measurements of a Session.
type SessionStats struct {
	Path           string            // the carrier now
	Jitter         audio.JitterStats // what the jitter buffer did
	Sender         audio.SenderStats // redundancy, bundling, the bitrate it would choose
	Switches       []Switch          // moves between carriers
	RTT            time.Duration     // to the server, on the active carrier
	PacketsSent    int
	PacketsDropped int // the carrier could not take them in time
}

// Stats reports what the Session has done so far.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	js, ss := addJitter(s.earlier, s.jb.Stats()), s.snd.Stats()
	s.mu.Unlock()
	sent, dropped := s.link.Counts()
	return SessionStats{
		Path: s.link.Path(), Jitter: js, Sender: ss,
		Switches: s.link.Switches(), RTT: s.link.RTT(),
		PacketsSent: int(sent), PacketsDropped: int(dropped),
	}
}

// Close closes the Link; Run returns.
func (s *Session) Close() { s.link.Close() }
