package audio

import (
	"fmt"
	"slices"
	"time"
)

// FrameStatus says what JitterBuffer.Pop returned for a playout slot.
type FrameStatus uint8

const (
	// Waiting: playout has not started; play nothing.
	Waiting FrameStatus = iota
	// Played: the frame, whose first copy came in time.
	Played
	// Repaired: the frame, from a redundant copy: its first copy was lost
	// or came too late.
	Repaired
	// Concealed: no frame for this slot (it is missing, or the buffer
	// grows its delay); play an empty Opus frame so that the decoder
	// conceals it.
	Concealed
)

func (s FrameStatus) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Played:
		return "played"
	case Repaired:
		return "repaired"
	case Concealed:
		return "concealed"
	}
	return fmt.Sprintf("FrameStatus(%d)", uint8(s))
}

// Frame is one frame that JitterBuffer.Push took in.
type Frame struct {
	Seq  uint64
	Data []byte
	// Resent: it came in a packet pushed with PushResent or PushAside.
	Resent bool
}

// JitterConfig configures a JitterBuffer. Zero fields take their defaults.
type JitterConfig struct {
	FrameDuration time.Duration // of every frame (at least 1 ms): 20 ms
	MinDelay      time.Duration // lowest target delay: 20 ms
	MaxDelay      time.Duration // highest target delay: 1 s
	StartDelay    time.Duration // target until frames have been measured: 60 ms
	// Window is how far back the frames' arrival lateness counts for the
	// target delay: 5 s.
	Window time.Duration
	// Percentile of the lateness that the target delay covers: 0.995.
	Percentile float64
}

func (c *JitterConfig) setDefaults() {
	if c.FrameDuration < time.Millisecond {
		c.FrameDuration = 20 * time.Millisecond
	}
	if c.MinDelay <= 0 {
		c.MinDelay = 20 * time.Millisecond
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = time.Second
	}
	c.MaxDelay = max(c.MaxDelay, c.MinDelay)
	if c.StartDelay <= 0 {
		c.StartDelay = 60 * time.Millisecond
	}
	c.StartDelay = min(max(c.StartDelay, c.MinDelay), c.MaxDelay)
	if c.Window <= 0 {
		c.Window = 5 * time.Second
	}
	if c.Percentile <= 0 || c.Percentile > 1 {
		c.Percentile = 0.995
	}
}

// JitterStats is what a JitterBuffer did.
type JitterStats struct {
	Packets   int // packets pushed
	Received  int // distinct frames received
	Played    int // frames played, Repaired ones included
	Repaired  int // frames played from a redundant copy
	Concealed int // slots concealed because their frame was missing
	// Trailing counts the slots concealed since the last frame that
	// came, none of which came yet: the stream ended there (the other
	// side hung up, and the hang-up came after its last frame), or its
	// frames are still to come. They count in Concealed and LongestGap
	// once a later frame shows that they were missing.
	Trailing   int
	Inserted   int // slots concealed to grow the delay (the frame played later)
	Skipped    int // frames skipped to shrink the delay
	Late       int // frames that came after their slot
	Duplicates int // copies of frames already received
	Dropped    int // frames too far ahead of the playout, or too far behind, to keep
	Resyncs    int // playout restarted at a frame far ahead of it

	LongestGap     time.Duration // longest run of Concealed slots (Trailing ones not)
	Delay          time.Duration // current playout delay above the earliest arrivals
	TargetDelay    time.Duration // current target for Delay
	MaxTargetDelay time.Duration
	QueueDelay     time.Duration // one-way delay above its minimum (Feedback's estimate)
	// LossBeforeRepair is the share of the frames due so far (after the
	// warm-up) whose first-hand copy had not come by their slot.
	LossBeforeRepair float64
}

// The jitter buffer's ring holds frames from ringSize/2 behind the next
// frame to play (to tell late frames from duplicates) to ringSize/2 ahead
// (MaxDelay of 20 ms frames, plus a full packet).
const ringSize = 256

// silence is the size at or below which a frame counts as silence, the
// frame to skip when the delay shrinks: Opus DTX and comfort noise frames
// are 1–3 bytes, and 0 means the sender had no audio.
const silence = 3

// skipEvery bounds how often the delay shrinks by skipping a frame that
// is not silence: once per skipEvery slots when it is a little above its
// target (see skipInterval).
const skipEvery = 25

// depthFollow is how long the repair horizon stays at the sender's highest
// redundancy once packets repeat fewer frames.
const depthFollow = time.Second

// decision is whether a frame was lost before repair: its first-hand copy
// had not come by its slot. A first-hand copy that comes later, within
// lossGrace, turns the loss into lateness: redundancy cannot help when
// every packet is held up (a frozen TCP flow), the delay target can.
type decision struct {
	seq  uint64
	at   time.Duration // the slot's time
	lost bool
	ok   bool
}

// Loss reports cover the frames of the last lossWindow slots that were due
// lossGrace ago or more, once warmup frames' lateness has been measured:
// before that, the target is StartDelay, a guess, and a path that delays
// frames more than that would seem to lose them (the sender would answer
// with redundancy it does not need, and fill a narrow path with it). The
// share lost is reported once lossFew frames are decided: one lost frame
// of the first three is no loss rate.
const (
	warmup     = 20
	lossFew    = 10
	lossWindow = 100
	lossGrace  = 300 * time.Millisecond
)

type slot struct {
	seq       uint64
	have      bool
	firstHand bool // its first-hand copy (fresh in its packet) came
	data      []byte
}

// JitterBuffer is the receiving end of the tunnel's audio: it takes every
// copy of every frame (Push) and gives the frame for each playout slot
// (Pop), concealing the missing ones, with a delay that adapts to the
// lateness of the frames (doc.go). It is not safe for concurrent use.
type JitterBuffer struct {
	cfg      JitterConfig
	d        time.Duration
	base     time.Time // of the buffer's clock: the first Push
	any      bool      // a packet has come
	started  bool      // playout has begun
	seq0     uint64    // the first frame's sequence number, origin of offsets
	next     uint64    // the next frame to play
	highest  uint64
	ring     [ringSize]slot
	fresh    []Frame
	pops     int // slots since playout began
	lastSkip int
	gap      int // current run of Concealed slots
	trail    int // JitterStats.Trailing

	// Arrival offsets (arrival − seq×D), the last cap(offs) of them, of
	// the frames' first copies, fresh or repeated: when each frame could
	// be played. The lateness of a frame is its offset above their
	// minimum.
	offs    []time.Duration
	offI    int
	hist    []int32
	minOff  time.Duration
	target  time.Duration
	cur     time.Duration        // playout delay above minOff
	depth   int                  // most redundant frames in a packet over the last depthFollow
	depthAt time.Duration        // when a packet had that many
	lost    [lossWindow]decision // by sequence number
	decided int
	lossAll int

	oneWay minFilter // arrival − sender clock, for the queueing delay
	queue  time.Duration

	echoClock uint32
	echoAt    time.Duration
	fb        Feedback
	st        JitterStats
}

// NewJitterBuffer returns an empty jitter buffer.
func NewJitterBuffer(cfg JitterConfig) *JitterBuffer {
	cfg.setDefaults()
	n := max(int(cfg.Window/cfg.FrameDuration), 10)
	jb := &JitterBuffer{
		cfg:    cfg,
		d:      cfg.FrameDuration,
		offs:   make([]time.Duration, 0, n),
		hist:   make([]int32, cfg.MaxDelay/(cfg.FrameDuration/4)+1),
		target: cfg.StartDelay,
	}
	return jb
}

func (jb *JitterBuffer) since(now time.Time) time.Duration {
	return now.Sub(jb.base)
}

// offset is the playout time of frame seq on an ideal schedule with no
// delay: seq × FrameDuration, from the first frame.
func (jb *JitterBuffer) offset(seq uint64) time.Duration {
	return time.Duration(int64(seq-jb.seq0)) * jb.d
}

// Push takes a packet that arrived at now: every frame in it that the
// buffer has not seen, late ones included. It returns those frames (Data
// aliases the buffer or p; the slice is reused by the next Push). The
// buffer keeps copies of p's frames.
func (jb *JitterBuffer) Push(p *Packet, now time.Time) []Frame {
	return jb.push(p, now, false, false)
}

// PushResent is Push for a packet sent again (the server's replay after a
// move): its frames are played if they are in time, as repairs, but its
// lateness, which is the move's and not the path's, sets neither the
// playout delay's target nor the queueing delay, and its frames count as
// lost before repair (their first copies were).
func (jb *JitterBuffer) PushResent(p *Packet, now time.Time) []Frame {
	return jb.push(p, now, true, true)
}

// PushAside is Push for a packet that came another way than the call's
// path (a copy on the other carrier of a trial, or on the carrier just
// left): its frames count as Push's do, but its lateness, which is that
// other way's, sets neither the target nor the queueing delay.
func (jb *JitterBuffer) PushAside(p *Packet, now time.Time) []Frame {
	return jb.push(p, now, true, false)
}

func (jb *JitterBuffer) push(p *Packet, now time.Time, untimed, resent bool) []Frame {
	jb.fresh = jb.fresh[:0]
	if p == nil || len(p.Frames) == 0 {
		return nil
	}
	if !jb.any {
		jb.any = true
		jb.base = now
		jb.highest = p.Seq
		jb.next = p.Seq - uint64(max(p.Fresh, 1)-1)
		jb.seq0 = jb.next
		jb.echoClock = p.Clock
	}
	t := jb.since(now)
	jb.st.Packets++
	if !untimed {
		jb.oneWay.add(t, t-time.Duration(p.Clock)*time.Millisecond)
	}
	if p.Clock >= jb.echoClock {
		jb.echoClock, jb.echoAt = p.Clock, t
	}
	for i, f := range p.Frames {
		if uint64(i) > p.Seq {
			break
		}
		jb.add(p.Seq-uint64(i), f, i < p.Fresh && !resent, untimed, t)
	}
	jb.highest = max(jb.highest, p.Seq)
	jb.confirmTrailing()
	// The redundancy the sender chose sets a repair horizon: the lateness
	// of a repair of the longest burst it covers. When the sender repeats
	// less (its path no longer loses, or it moved to a WebSocket, where
	// TCP repairs), the horizon follows after depthFollow, which a packet
	// trimmed to fit (SenderStats.Trimmed) now and then does not reach.
	if r := len(p.Frames) - p.Fresh; r >= jb.depth || t-jb.depthAt > depthFollow {
		jb.depth, jb.depthAt = r, t
	}
	return jb.fresh
}

// add takes frame seq of a packet that came at t; untimed: the packet's
// lateness does not count (PushResent, PushAside).
func (jb *JitterBuffer) add(seq uint64, f []byte, firstHand, untimed bool, t time.Duration) {
	const half = ringSize / 2
	s := &jb.ring[seq%ringSize]
	switch {
	case seq < jb.next:
		if !jb.started {
			return // older than where playout will start
		}
		if jb.next-seq > half {
			jb.st.Dropped++
			return
		}
		if firstHand {
			jb.lateFirstHand(seq)
		}
		if s.seq == seq && s.have {
			jb.st.Duplicates++
			return
		}
		// Its slot has been played: too late, but its lateness counts.
		*s = slot{seq: seq, have: true, firstHand: firstHand, data: s.data[:0]}
		jb.st.Late++
		jb.st.Received++
		if !untimed {
			jb.sampleLateness(t - jb.offset(seq))
		}
		jb.fresh = append(jb.fresh, Frame{Seq: seq, Data: f, Resent: untimed})
		return
	case seq >= jb.next+half && jb.empty():
		// Nothing is buffered and the stream is far ahead (the sender
		// restarted, or a long outage): start playout over from it.
		jb.st.Resyncs++
		jb.next, jb.started = seq, false
		jb.offs, jb.offI = jb.offs[:0], 0 // lateness from before says nothing now
	case seq >= jb.next+half:
		// The playout is far behind (its clock stopped): make room, the
		// newer audio matters more.
		for jb.next+half <= seq {
			jb.decide(jb.slot(jb.next), t)
			jb.next++
			jb.st.Skipped++
		}
	}
	if s.seq == seq && s.have {
		jb.st.Duplicates++
		if firstHand {
			s.firstHand = true // it came after a redundant copy, but in time
		}
		return
	}
	*s = slot{seq: seq, have: true, firstHand: firstHand, data: append(s.data[:0], f...)}
	jb.st.Received++
	if !untimed {
		jb.sampleLateness(t - jb.offset(seq))
	}
	jb.fresh = append(jb.fresh, Frame{Seq: seq, Data: s.data, Resent: untimed})
}

// empty reports whether no frame waits to be played.
func (jb *JitterBuffer) empty() bool {
	for i := range uint64(ringSize / 2) {
		if s := &jb.ring[(jb.next+i)%ringSize]; s.have && s.seq == jb.next+i {
			return false
		}
	}
	return true
}

func (jb *JitterBuffer) sampleLateness(off time.Duration) {
	if len(jb.offs) < cap(jb.offs) {
		jb.offs = append(jb.offs, off)
		return
	}
	jb.offs[jb.offI] = off
	jb.offI = (jb.offI + 1) % len(jb.offs)
}

// adapt recomputes the minimum offset and the target delay: the
// Percentile of the lateness over the window, or the repair horizon of
// the sender's redundancy if that is more, plus half a frame.
func (jb *JitterBuffer) adapt() {
	if len(jb.offs) == 0 {
		return
	}
	m := jb.offs[0]
	for _, o := range jb.offs[1:] {
		m = min(m, o)
	}
	jb.minOff = m
	clear(jb.hist)
	w := jb.d / 4
	for _, o := range jb.offs {
		jb.hist[min(int((o-m)/w), len(jb.hist)-1)]++
	}
	k := int32(jb.cfg.Percentile*float64(len(jb.offs)) + 0.999)
	var n int32
	var p time.Duration
	for i, c := range jb.hist {
		if n += c; n >= k {
			p = time.Duration(i+1) * w
			break
		}
	}
	t := max(p, time.Duration(jb.depth)*jb.d) + jb.d/2
	if len(jb.offs) < warmup {
		t = max(t, jb.cfg.StartDelay)
	}
	jb.target = min(max(t, jb.cfg.MinDelay), jb.cfg.MaxDelay)
	jb.st.MaxTargetDelay = max(jb.st.MaxTargetDelay, jb.target)
}

// Next is the sequence number of the frame the next Pop is to play, once
// playout has started: after a Pop that played a frame, that frame's is
// Next() − 1.
func (jb *JitterBuffer) Next() uint64 { return jb.next }

// Rest returns the frames still to be played, from the next slot to the
// highest frame received (nil for those that did not come), and counts
// them as played or concealed: for a receiver whose audio goes on another
// way from now, which plays them at once rather than lose them. The
// buffer is done with then.
func (jb *JitterBuffer) Rest() [][]byte {
	if !jb.any {
		return nil
	}
	var rest [][]byte
	for seq := jb.next; seq <= jb.highest && seq < jb.next+ringSize/2; seq++ {
		s := jb.slot(seq)
		if s == nil {
			jb.st.Concealed++
			rest = append(rest, nil)
			continue
		}
		jb.st.Played++
		rest = append(rest, slices.Clone(s.data))
	}
	jb.next = max(jb.next, jb.highest+1)
	return rest
}

// Pop gives the frame to play in the slot at now. Call it once per
// FrameDuration from the playout clock. The frame aliases the buffer
// until the next Push. For Concealed, play an empty Opus frame; for
// Waiting, nothing.
func (jb *JitterBuffer) Pop(now time.Time) ([]byte, FrameStatus) {
	if !jb.any {
		return nil, Waiting
	}
	t := jb.since(now)
	jb.adapt()
	jb.cur = t - (jb.offset(jb.next) + jb.minOff)
	starting := !jb.started
	if starting {
		if jb.cur < jb.target {
			return nil, Waiting
		}
		jb.started = true
	}
	jb.pops++
	if over := jb.cur - jb.target; !starting && over > jb.cfg.MaxDelay {
		// The playout clock stopped (a suspended tab, a stalled
		// process): catch up at once rather than play stale audio.
		n := uint64((over - jb.d) / jb.d)
		for range n {
			jb.decide(jb.slot(jb.next), t)
			jb.next++
		}
		jb.st.Skipped += int(n)
		jb.cur -= time.Duration(n) * jb.d
	}
	s := jb.slot(jb.next)
	switch {
	case starting:
	case s == nil && jb.target-jb.cur > jb.d/2:
		// The frame is missing and the delay is short of its target:
		// grow it here, where there is a gap anyway, rather than lose
		// the frame if it is only late.
		jb.st.Inserted++
		return nil, jb.conceal()
	case jb.cur-jb.target >= jb.d+jb.d/2 && (s == nil || len(s.data) <= silence || jb.pops-jb.lastSkip >= jb.skipInterval()):
		// Shrink: skip a missing or silent frame, or now and then any.
		jb.decide(s, t)
		jb.st.Skipped++
		jb.lastSkip = jb.pops
		jb.next++
		jb.cur -= jb.d
		s = jb.slot(jb.next)
	}
	jb.decide(s, t)
	jb.next++
	if s == nil {
		jb.st.Concealed++
		if jb.next-1 > jb.highest {
			jb.trail++
		}
		return nil, jb.conceal()
	}
	jb.endGap()
	jb.st.Played++
	if !s.firstHand {
		jb.st.Repaired++
		return s.data, Repaired
	}
	return s.data, Played
}

// skipInterval is how many slots apart frames that are not silence may be
// skipped: skipEvery while the delay is at most 2 frames above its target,
// more often the further above it is (down to every other slot).
func (jb *JitterBuffer) skipInterval() int {
	excess := max(jb.cur-jb.target, jb.d)
	return max(2, int(int64(skipEvery)*int64(2*jb.d)/int64(excess)))
}

func (jb *JitterBuffer) slot(seq uint64) *slot {
	if s := &jb.ring[seq%ringSize]; s.have && s.seq == seq {
		return s
	}
	return nil
}

func (jb *JitterBuffer) conceal() FrameStatus {
	jb.gap++
	return Concealed
}

// endGap ends the current run of Concealed slots: a frame played.
func (jb *JitterBuffer) endGap() {
	jb.st.LongestGap = max(jb.st.LongestGap, time.Duration(jb.gap)*jb.d)
	jb.gap = 0
}

// confirmTrailing counts the Trailing slots at or below the highest frame
// now received as Concealed: that frame shows they were missing. The
// trailing slots are the last ones before next (skipped ones among them
// make this count a few too many as still trailing).
func (jb *JitterBuffer) confirmTrailing() {
	if jb.trail == 0 {
		return
	}
	if jb.highest+1 >= jb.next {
		jb.trail = 0
		return
	}
	jb.trail = int(min(uint64(jb.trail), jb.next-1-jb.highest))
}

// decide records whether the frame of a slot due at t was lost before
// repair.
func (jb *JitterBuffer) decide(s *slot, t time.Duration) {
	lost := s == nil || !s.firstHand
	if len(jb.offs) < warmup {
		return
	}
	jb.decided++
	if lost {
		jb.lossAll++
	}
	jb.lost[jb.next%lossWindow] = decision{seq: jb.next, at: t, lost: lost, ok: true}
}

// lateFirstHand notes a first-hand copy that came after its slot.
func (jb *JitterBuffer) lateFirstHand(seq uint64) {
	if d := &jb.lost[seq%lossWindow]; d.ok && d.seq == seq {
		d.lost = false
	}
}

// Feedback builds the report on the audio received so far, for the Sender
// of the other direction to carry; nil before any packet came. The report
// is reused by the next call.
func (jb *JitterBuffer) Feedback(now time.Time) *Feedback {
	if !jb.any {
		return nil
	}
	t := jb.since(now)
	// The queueing delay: the one-way delay (arrival − sender clock, whose
	// offset cancels out) above its minimum. If nothing came lately, the
	// last estimate stands.
	if q, ok := jb.oneWay.rise(t); ok {
		jb.queue = q
	}
	n, lost, run, longest := 0, 0, 0, 0
	for i := range uint64(lossWindow) {
		seq := jb.next - lossWindow + i
		d := &jb.lost[seq%lossWindow]
		if !d.ok || d.seq != seq || d.at > t-lossGrace {
			continue
		}
		n++
		if d.lost {
			lost++
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fb := &jb.fb
	*fb = Feedback{Highest: jb.highest, EchoMs: jb.echoClock}
	if n >= lossFew {
		fb.Loss = uint8(min(lost*256/n, 255))
	}
	fb.Burst = uint8(min(longest, 255))
	fb.QueueMs = millis(jb.queue)
	fb.TargetMs = millis(jb.target)
	fb.HeldMs = millis(t - jb.echoAt)
	return fb
}

func millis(d time.Duration) uint32 {
	return uint32(min(max(d.Milliseconds(), 0), MaxMillis))
}

// Stats reports what the buffer did so far.
func (jb *JitterBuffer) Stats() JitterStats {
	st := jb.st
	st.Trailing = jb.trail
	st.Concealed -= st.Trailing
	st.LongestGap = max(st.LongestGap, time.Duration(jb.gap-st.Trailing)*jb.d)
	st.Delay = max(jb.cur, 0)
	st.TargetDelay = jb.target
	st.QueueDelay = jb.queue
	if jb.decided > 0 {
		st.LossBeforeRepair = float64(jb.lossAll) / float64(jb.decided)
	}
	return st
}
