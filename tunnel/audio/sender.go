package audio

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// SenderConfig configures a Sender. Zero fields take their defaults.
type SenderConfig struct {
	FrameDuration time.Duration // of every frame (at least 1 ms): 20 ms
	// MaxDepth bounds the redundancy: how many earlier frames a packet
	// repeats. Default 12; a packet holds MaxFrames in all, so one that
	// bundles many fresh frames repeats fewer.
	MaxDepth int
	// MinDepth is the redundancy kept on a path without loss: default 1
	// (one lost packet is repaired before any report); negative for 0.
	MinDepth int
	// MaxFramesPerPacket bounds bundling on a slow path: default 8
	// (160 ms of 20 ms frames). Above the lowest bitrate a packet bundles
	// at most 3 (60 ms); only at the lowest, where each packet's headers
	// cost more than the audio, does it bundle more. Over QUIC a packet
	// costs about 85 bytes of headers, and each one also brings an
	// acknowledgement back, and a probe pair (PINGs, acknowledged too)
	// whenever it or its acknowledgement is lost: measured on the lab's
	// 32 kbit/s link, 10 packets a second of 6 kbit/s audio offered ~36
	// kbit/s, half of it QUIC's own. Fewer, larger packets cut that part.
	MaxFramesPerPacket int
	// Bitrates is the ladder of encoder bitrates in bit/s, ascending:
	// default 6000, 8000, 12000, 16000, 24000, 32000.
	Bitrates []int
	// StartBitrate is the bitrate at the start, and the highest the
	// sender returns to once a slow path clears: default 24000.
	StartBitrate int
	// CongestedDelay is the queueing delay that means the path is slow:
	// default 100 ms.
	CongestedDelay time.Duration
	// ClearDelay is the queueing delay under which the path is clear:
	// default 20 ms.
	ClearDelay time.Duration
}

func (c *SenderConfig) setDefaults() {
	if c.FrameDuration < time.Millisecond {
		c.FrameDuration = 20 * time.Millisecond
	}
	if c.MaxFramesPerPacket <= 0 {
		c.MaxFramesPerPacket = 8
	}
	c.MaxFramesPerPacket = min(c.MaxFramesPerPacket, MaxFrames)
	if c.MaxDepth <= 0 {
		c.MaxDepth = 12
	}
	c.MaxDepth = min(c.MaxDepth, MaxFrames-1)
	switch {
	case c.MinDepth == 0:
		c.MinDepth = 1
	case c.MinDepth < 0:
		c.MinDepth = 0
	}
	c.MinDepth = min(c.MinDepth, c.MaxDepth)
	if len(c.Bitrates) == 0 {
		c.Bitrates = []int{6000, 8000, 12000, 16000, 24000, 32000}
	}
	if c.StartBitrate <= 0 {
		c.StartBitrate = 24000
	}
	if c.CongestedDelay <= 0 {
		c.CongestedDelay = 100 * time.Millisecond
	}
	if c.ClearDelay <= 0 {
		c.ClearDelay = 20 * time.Millisecond
	}
}

// SenderStats is what a Sender did and what it chose.
type SenderStats struct {
	Frames  int // frames pushed
	Packets int // packets sent
	Bytes   int // bytes of the packets sent

	Depth           int // redundancy: earlier frames each packet repeats
	FramesPerPacket int // new frames per packet
	Bitrate         int // encoder bitrate the sender chooses, bit/s
	Changes         int // changes of the three
	Reason          string

	RTT        time.Duration // the latest round trip measured
	QueueDelay time.Duration // congestion signal: the peer's queueing delay (or half the RTT's rise)
	PeerLoss   float64       // loss before repair the peer reports
	PeerBurst  int           // longest run of lost frames the peer reports
	Trimmed    int           // earlier frames left out so that a packet fits MaxPacket
	Oversized  int           // frames sent empty: they did not fit a packet
}

// bundleAbove is the most frames a packet bundles above the lowest
// bitrate (SenderConfig.MaxFramesPerPacket).
const bundleAbove = 3

// Rules of the controller. Redundancy rises at once to cover what the
// peer reports and falls one frame at a time after depthHold without the
// need for it; a slow path is answered at most once per stepHold (plus the
// base round trip), and it takes clearHold without queueing to step back.
const (
	depthHold    = 10 * time.Second
	depthStep    = 2 * time.Second
	stepHold     = 500 * time.Millisecond
	clearHold    = 5 * time.Second
	maxUpHold    = time.Minute
	slowHold     = 30 * time.Second
	residualLoss = 0.001 // of frames, after repair, that random loss may leave
	drainBy      = 20 * time.Millisecond
	slowDepth    = 1 // redundancy at most on a slow path
	measureAfter = time.Second
)

// Sender is the sending end of the tunnel's audio: it numbers the encoded
// frames, bundles them into packets, repeats earlier frames in each packet
// to repair losses without a round trip, and adapts the three (and the
// encoder bitrate it recommends) to the peer's reports (doc.go). It is not
// safe for concurrent use.
type Sender struct {
	cfg     SenderConfig
	started bool
	start   time.Time
	seq     uint64 // of the next frame
	floor   uint64 // the first frame that may be repeated (Skip)
	frames  [MaxFrames][]byte
	pending int // frames not sent yet
	pkt     Packet
	buf     []byte

	depth, fpp, rate, top int // rate, top: indexes into cfg.Bitrates
	depthCap              int // the most redundancy a slow path has room for
	want                  int // the redundancy the peer's loss calls for
	measured              bool

	rtt         minFilter
	lastDown    time.Duration
	downSignal  time.Duration
	slowAt      time.Duration // when the path was last slow
	slow        bool          // the path has been slow
	clearSince  time.Duration // -1 when the path is not clear
	lastUp      time.Duration
	upHold      time.Duration // clear path needed between steps up
	probing     bool          // the last step up is on trial
	probeRate   int           // what it stepped up from
	probeFPP    int
	probeCap    int
	depthHoldTo time.Duration

	st SenderStats
}

// NewSender returns a Sender at the start bitrate, one frame per packet
// and the minimum redundancy.
func NewSender(cfg SenderConfig) *Sender {
	cfg.setDefaults()
	s := &Sender{cfg: cfg, fpp: 1, depth: cfg.MinDepth, depthCap: cfg.MaxDepth, clearSince: -1, upHold: clearHold}
	for i, r := range cfg.Bitrates {
		if r <= cfg.StartBitrate {
			s.rate = i
		}
	}
	s.top = s.rate
	return s
}

// Push takes the next encoded frame (empty if there is no audio for it)
// at now and returns the packet to send, if one is due, with fb (our
// receiver's report, or nil) attached. The packet is reused by the next
// Push.
func (s *Sender) Push(frame []byte, now time.Time, fb *Feedback) ([]byte, bool) {
	if !s.started {
		s.started, s.start = true, now
	}
	if len(frame) > MaxFrameLen {
		frame = nil
		s.st.Oversized++
	}
	i := s.seq % MaxFrames
	s.frames[i] = append(s.frames[i][:0], frame...)
	s.seq++
	s.pending++
	s.st.Frames++
	if s.pending < s.fpp || s.seq > MaxSeq {
		return nil, false
	}
	p := &s.pkt
	p.Seq = s.seq - 1
	p.Clock = millis(now.Sub(s.start))
	p.Fresh = s.pending
	n := min(uint64(p.Fresh+s.depth), MaxFrames, s.seq-s.floor)
	p.Frames = p.Frames[:0]
	for i := range n {
		p.Frames = append(p.Frames, s.frames[(p.Seq-i)%MaxFrames])
	}
	p.Feedback = fb
	if fb != nil && fb.Highest > MaxSeq {
		p.Feedback = nil
	}
	for p.Len() > MaxPacket && len(p.Frames) > p.Fresh {
		p.Frames = p.Frames[:len(p.Frames)-1]
		s.st.Trimmed++
	}
	if p.Len() > MaxPacket {
		p.Feedback = nil
	}
	for p.Len() > MaxPacket { // fresh frames alone too long: send the longest empty
		longest := 0
		for i, f := range p.Frames {
			if len(f) > len(p.Frames[longest]) {
				longest = i
			}
		}
		p.Frames[longest] = nil
		s.st.Oversized++
	}
	s.pending = 0
	s.buf = p.Append(s.buf[:0])
	s.st.Packets++
	s.st.Bytes += len(s.buf)
	return s.buf, true
}

// Feedback takes the peer's report on our audio (nil is ignored), which
// arrived at now, and adapts redundancy, bundling and bitrate to it.
func (s *Sender) Feedback(fb *Feedback, now time.Time) {
	if fb == nil || !s.started {
		return
	}
	t := now.Sub(s.start)
	var rise time.Duration
	if rtt := t - ms(fb.EchoMs) - ms(fb.HeldMs); rtt >= 0 && rtt < time.Minute {
		s.st.RTT = rtt
		s.rtt.add(t, rtt)
		rise, _ = s.rtt.rise(t)
	}
	s.st.PeerLoss = float64(fb.Loss) / 256
	s.st.PeerBurst = int(fb.Burst)
	// The congestion signal: the peer's queueing delay, or half the rise
	// of the round trip if that is more (when the peer's estimate lags).
	signal := max(ms(fb.QueueMs), rise/2)
	s.st.QueueDelay = signal
	s.pace(signal, t)
	s.protect(signal, t)
	if signal < s.cfg.ClearDelay && ms(fb.EchoMs) >= measureAfter || s.slow {
		s.measured = true
	}
}

func ms(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }

// pace answers a slow path: queueing delay at CongestedDelay or more.
// While the redundancy is above slowDepth, a step halves it: the repeats
// are what fill the path (a lossy path's loss asked for them), and the
// audio matters more, unless the queue is long. Then each step lowers the
// bitrate and bundles one frame more per packet (more for a long queue),
// until the queue drains.
// While the path is constrained the redundancy stays within what is left
// (depthCap). Steps back up come one per clearHold of a clear path:
// bundling back to bundleAbove, then room for the redundancy that the
// peer's loss calls for, then the bitrate, then less bundling. A step up
// that makes the queue grow (2×ClearDelay within clearHold) is taken back
// at once, and the next waits twice as long (up to maxUpHold).
func (s *Sender) pace(signal, t time.Duration) {
	floor := max(slowDepth, s.cfg.MinDepth)
	if s.probing {
		switch {
		case signal >= 2*s.cfg.ClearDelay:
			s.probing, s.clearSince, s.lastUp = false, -1, t
			s.upHold = min(2*s.upHold, maxUpHold)
			s.depthCap = s.probeCap
			s.change(s.probeRate, s.probeFPP, min(s.depth, s.probeCap), fmt.Sprintf("the step up made a queue: %v", signal.Round(time.Millisecond)))
			return
		case t-s.lastUp >= clearHold:
			s.probing, s.upHold = false, clearHold
		}
	}
	switch {
	case signal >= s.cfg.CongestedDelay:
		s.slow, s.slowAt, s.clearSince, s.probing = true, t, -1, false
		baseRTT, _ := s.rtt.base(t)
		if t-s.lastDown < stepHold+baseRTT {
			return
		}
		if s.lastDown > 0 && signal+drainBy < s.downSignal {
			// Draining since the last step: wait and see.
			s.lastDown, s.downSignal = t, signal
			return
		}
		s.lastDown, s.downSignal = t, signal
		why := fmt.Sprintf("slow path: queueing delay %v, RTT %v (at least %v)",
			signal.Round(time.Millisecond), s.st.RTT.Round(time.Millisecond), baseRTT.Round(time.Millisecond))
		// Halve the repeats first. A queue of 2×CongestedDelay or more
		// (the path far slower than what is sent) also takes the audio
		// down at once: one step down the ladder, and one more per
		// 2×CongestedDelay of queue, since on a slow path the next
		// step comes only a base round trip (seconds, there) later.
		steps := int(signal / (2 * s.cfg.CongestedDelay))
		depth := min(s.depth, max(s.depth/2, floor))
		if s.depth <= floor {
			steps++
		}
		s.depthCap = depth
		rate, fpp := max(s.rate-steps, 0), min(s.fpp+steps, s.cfg.MaxFramesPerPacket)
		if rate > 0 || s.rate > 0 {
			fpp = min(fpp, max(s.fpp, bundleAbove)) // bundle beyond it only once at the lowest bitrate
		}
		s.change(rate, fpp, depth, why)
	case signal < s.cfg.ClearDelay:
		if s.clearSince < 0 {
			s.clearSince = t
		}
		if s.probing || t-s.clearSince < clearHold || t-s.lastUp < s.upHold || t-s.slowAt < clearHold {
			return
		}
		rate, fpp, depthCap := s.rate, s.fpp, s.depthCap
		switch {
		case fpp > bundleAbove:
			fpp-- // back to 60 ms packets before the bitrate rises
		case s.want > s.depth && s.depth >= depthCap:
			depthCap = min(s.want, s.depth+max(1, s.depth/2)) // the loss is not repaired
		case rate < s.top:
			rate++
		case fpp > 1:
			fpp--
		default:
			return
		}
		s.probing, s.probeRate, s.probeFPP, s.probeCap, s.lastUp = true, s.rate, s.fpp, s.depthCap, t
		s.depthCap = depthCap
		s.change(rate, fpp, max(s.depth, min(s.want, depthCap)), fmt.Sprintf("path clear for %v", (t-max(s.clearSince, s.slowAt)).Round(time.Second)))
	default:
		s.clearSince = -1
	}
}

// protect sets the redundancy to cover the loss the peer reports: enough
// that random loss leaves at most residualLoss, and at least the longest
// burst. On a slow path (in the last slowHold, or while the bitrate is
// still below where it started) it stays within the room pace left for it
// (depthCap: the loss may be the queue's, and more repeats would make it
// worse); and it does not rise while the queueing delay is half way to
// CongestedDelay.
func (s *Sender) protect(signal, t time.Duration) {
	loss, burst := s.st.PeerLoss, s.st.PeerBurst
	need := 0
	if loss > 0 {
		need = int(math.Ceil(math.Log(residualLoss)/math.Log(loss))) - 1
	}
	need = min(max(need, burst, s.cfg.MinDepth), s.cfg.MaxDepth)
	s.want = need
	if s.slow && t-s.slowAt < slowHold || s.rate < s.top {
		need = min(need, s.depthCap)
	}
	why := func() string { return fmt.Sprintf("%.0f%% loss, bursts of %d", loss*100, burst) }
	switch {
	case need > s.depth && signal >= s.cfg.CongestedDelay/2:
		// Loss while a queue grows is the queue's (or frames late
		// behind it): wait for pace to tell.
	case need > s.depth:
		s.depthHoldTo = t + depthHold
		s.change(s.rate, s.fpp, need, why())
	case need == s.depth:
		s.depthHoldTo = t + depthHold
	case t >= s.depthHoldTo:
		s.depthHoldTo = t + depthStep
		s.change(s.rate, s.fpp, s.depth-1, why())
	}
}

// change moves to a bitrate, bundling and redundancy, saying why.
func (s *Sender) change(rate, fpp, depth int, why string) {
	var what []string
	if rate != s.rate {
		what = append(what, fmt.Sprintf("bitrate %d→%d", s.cfg.Bitrates[s.rate], s.cfg.Bitrates[rate]))
	}
	if fpp != s.fpp {
		what = append(what, fmt.Sprintf("frames per packet %d→%d (%v a packet)", s.fpp, fpp, time.Duration(fpp)*s.cfg.FrameDuration))
	}
	if depth != s.depth {
		what = append(what, fmt.Sprintf("redundancy %d→%d", s.depth, depth))
	}
	if len(what) == 0 {
		return
	}
	s.rate, s.fpp, s.depth = rate, fpp, depth
	s.st.Changes++
	s.st.Reason = strings.Join(what, ", ") + ": " + why
}

// Skip leaves the next n sequence numbers unused, and the frames not yet
// sent unsent: the audio went another way meanwhile (a call that moved to
// WebRTC and back). Frames before the skip are not repeated after it, so
// that the receiver does not play them again as if they were new.
func (s *Sender) Skip(n int) {
	if n <= 0 {
		return
	}
	s.seq += uint64(n)
	s.floor, s.pending = s.seq, 0
}

// SetMaxDepth bounds the redundancy from now on (why says what for, in
// the Reason of the change). The tunnel lowers it on a carrier that
// delivers everything or nothing (a WebSocket, over TCP): there, loss is a
// frozen flow, which repeating frames cannot repair and only speeds up,
// since the censor counts bytes.
func (s *Sender) SetMaxDepth(n int, why string) {
	n = min(max(n, 0), MaxFrames-1)
	if n == s.cfg.MaxDepth {
		return
	}
	s.cfg.MaxDepth = n
	s.cfg.MinDepth = min(s.cfg.MinDepth, n)
	if s.depth > n {
		s.change(s.rate, s.fpp, n, why)
	}
}

// Measured says whether the sender knows the path: the peer reported no
// queue (under ClearDelay) once it had received measureAfter of our
// media, or the path was slow. Until then, at the start of a call, it
// does not know whether the path has room to spare.
func (s *Sender) Measured() bool { return s.measured }

// Bitrate is the encoder bitrate the sender chooses now, in bit/s.
func (s *Sender) Bitrate() int { return s.cfg.Bitrates[s.rate] }

// Constrained says whether the path has no room to spare: it was slow
// (queueing delay at CongestedDelay) in the last slowHold, or the sender
// has not yet stepped back up to where it was before.
func (s *Sender) Constrained(now time.Time) bool {
	if !s.started {
		return false
	}
	return s.slow && now.Sub(s.start)-s.slowAt < slowHold || s.rate < s.top || s.fpp > 1
}

// Stats reports what the sender did and chose.
func (s *Sender) Stats() SenderStats {
	st := s.st
	st.Depth, st.FramesPerPacket, st.Bitrate = s.depth, s.fpp, s.cfg.Bitrates[s.rate]
	return st
}
