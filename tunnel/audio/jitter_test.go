package audio

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// at is the simulated clock: ms after simStart.
func at(ms int) time.Time { return simStart.Add(time.Duration(ms) * time.Millisecond) }

func packet(seq uint64, fresh int, frames ...[]byte) *Packet {
	return &Packet{Seq: seq, Fresh: fresh, Frames: frames, Clock: uint32(seq * 20)}
}

func TestJitterBufferBasics(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	if f, st := jb.Pop(at(0)); st != Waiting || f != nil {
		t.Fatalf("Pop before any packet: %v", st)
	}
	if jb.Feedback(at(0)) != nil {
		t.Fatalf("Feedback before any packet")
	}
	// Frame 10 arrives at 0 ms; playout starts at 0 + 60 ms (StartDelay).
	if got := jb.Push(packet(10, 1, []byte{10}, []byte{9}), at(0)); len(got) != 1 || got[0].Seq != 10 {
		t.Fatalf("Push returned %v, want frame 10 only (9 is before playout)", got)
	}
	if _, st := jb.Pop(at(40)); st != Waiting {
		t.Fatalf("Pop at 40 ms: %v, want waiting", st)
	}
	jb.Push(packet(11, 1, []byte{11}, []byte{10}), at(20)) // 10 again: a duplicate
	// 12 is lost; 13 repairs it.
	jb.Push(packet(13, 1, []byte{13}, []byte{12}), at(60))
	want := []struct {
		b  byte
		st FrameStatus
	}{{10, Played}, {11, Played}, {12, Repaired}, {13, Played}, {0, Concealed}}
	for i, w := range want {
		f, st := jb.Pop(at(60 + 20*i))
		if st != w.st || (w.b != 0 && (len(f) != 1 || f[0] != w.b)) {
			t.Errorf("slot %d: %v %v, want %v %d", i, st, f, w.st, w.b)
		}
	}
	// 14 comes after its slot: late; again: a duplicate.
	jb.Push(packet(14, 1, []byte{14}), at(150))
	jb.Push(packet(15, 1, []byte{15}, []byte{14}), at(160))
	st := jb.Stats()
	t.Logf("%+v", st)
	if st.Played != 4 || st.Repaired != 1 || st.Concealed != 1 || st.Late != 1 || st.Duplicates != 2 || st.Received != 6 {
		t.Errorf("stats %+v", st)
	}
	if st.LongestGap != 20*time.Millisecond {
		t.Errorf("longest gap %v", st.LongestGap)
	}
	// 12 was lost before repair, but the buffer is still warming up: the
	// loss is not reported (TestJitterBufferLossReport).
	fb := jb.Feedback(at(500))
	if fb.Highest != 15 || fb.Loss != 0 || fb.Burst != 0 || fb.EchoMs != 300 || fb.HeldMs != 340 {
		t.Errorf("feedback %+v", fb)
	}
}

// TestJitterBufferLossReport: the feedback reports the frames whose
// first-hand copy had not come by their slot, once they are lossGrace old
// (a late one that comes meanwhile is not lost), and not those of the
// warm-up, when the target delay was a guess.
func TestJitterBufferLossReport(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	late := packet(70, 1, []byte{70, 1}, []byte{69, 1})
	for i := range 100 {
		switch {
		case i >= 3 && i < 7: // lost in the warm-up: a burst of 5 before repair
		case i >= 50 && i < 53: // lost: 3 before repair
		case i == 70:
		case i == 71: // without a copy of 70
			jb.Push(packet(71, 1, []byte{71, 1}), at(20*i))
		default:
			jb.Push(packet(uint64(i), 1, []byte{byte(i), 1}, []byte{byte(i - 1), 1}), at(20*i))
		}
		if i == 77 {
			jb.Push(late, at(20*70+150)) // after its slot, within lossGrace
		}
		jb.Pop(at(20*i + 10))
		if i == 55 {
			if fb := jb.Feedback(at(20*i + 10)); fb.Loss != 0 {
				t.Errorf("loss reported at 1.1 s: %+v; want none (the warm-up's does not count, 50..52 are not lossGrace old)", fb)
			}
		}
	}
	st := jb.Stats()
	t.Logf("%+v", st)
	fb := jb.Feedback(at(20*100 + 500))
	t.Logf("%+v", fb)
	// 3 of the 70 to 100 slots decided since the warm-up: 7 to 11 in 256ths.
	if fb.Burst != 3 || fb.Loss < 7 || fb.Loss > 11 {
		t.Errorf("feedback: loss %d/256, bursts of %d; want 3 frames lost in a row (50..52), not the warm-up's 5 or the late 70",
			fb.Loss, fb.Burst)
	}
	if st.Late != 1 {
		t.Errorf("%d late, want 1 (70)", st.Late)
	}
}

func TestJitterBufferBounds(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	jb.Push(packet(100, 1, []byte{1}), at(0))
	for i := range 10 {
		jb.Pop(at(60 + 20*i))
	}
	jb.Push(packet(100+ringSize, 1, []byte{2}), at(260)) // nothing buffered: a resync
	if st := jb.Stats(); st.Resyncs != 1 {
		t.Fatalf("stats after a far jump: %+v", st)
	}
	if f, st := jb.Pop(at(400)); st != Played || f[0] != 2 {
		t.Errorf("after the resync: %v %v", st, f)
	}
	jb.Push(packet(100+ringSize+1, 1, []byte{3}), at(420))
	// Far ahead of buffered frames: the oldest make room.
	jb.Push(packet(100+2*ringSize, 1, []byte{4}), at(440))
	if st := jb.Stats(); st.Skipped != ringSize/2 || st.Resyncs != 1 {
		t.Errorf("stats after a jump ahead: %+v", st)
	}
	jb.Push(packet(100, 1, []byte{5}), at(450)) // long gone: dropped
	if st := jb.Stats(); st.Dropped != 1 {
		t.Errorf("stats: %+v", st)
	}
}

// The delay shrinks by skipping silence first.
func TestJitterBufferSkipsSilence(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	speech := make([]byte, 60)
	// A burst of lateness raises the target; then frames come on time.
	ms := 0
	for seq := range uint64(400) {
		f := speech
		if seq%10 == 0 {
			f = []byte{0xf8} // a silent frame
		}
		arrive := int(seq) * 20
		if seq >= 50 && seq < 55 {
			arrive += 200
		}
		for ; ms <= arrive; ms++ {
			if ms%20 == 5 {
				jb.Pop(at(ms))
			}
		}
		jb.Push(packet(seq, 1, f), at(arrive))
	}
	st := jb.Stats()
	t.Logf("%+v", st)
	if st.MaxTargetDelay < 200*time.Millisecond || st.TargetDelay > 40*time.Millisecond {
		t.Errorf("target delay %v, max %v", st.TargetDelay, st.MaxTargetDelay)
	}
	if st.Skipped == 0 || st.Delay > 80*time.Millisecond {
		t.Errorf("skipped %d frames, delay %v: the delay did not shrink", st.Skipped, st.Delay)
	}
}

func TestSenderPackets(t *testing.T) {
	s := NewSender(SenderConfig{})
	var p Packet
	for i := range 3 {
		b, ok := s.Push([]byte{byte(i)}, at(20*i), nil)
		if !ok {
			t.Fatalf("frame %d: no packet", i)
		}
		if err := p.Parse(b); err != nil {
			t.Fatal(err)
		}
	}
	// Depth 1: frame 2, and 1 again.
	if p.Seq != 2 || p.Fresh != 1 || len(p.Frames) != 2 || p.Frames[1][0] != 1 || p.Clock != 40 || p.Feedback != nil {
		t.Errorf("third packet: %+v", p)
	}
	// The peer reports 10% loss in runs of 3; its report echoes our clock.
	s.Feedback(&Feedback{Highest: 2, Loss: 26, Burst: 3, EchoMs: 40, HeldMs: 5}, at(100))
	st := s.Stats()
	if st.Depth != 3 || st.RTT != 55*time.Millisecond || st.Reason != "redundancy 1→3: 10% loss, bursts of 3" {
		t.Errorf("after a report of loss: %+v", st)
	}
	// A frame too long for one packet with its redundancy: the earlier
	// frames are left out.
	big := make([]byte, 1000)
	s.Push(big, at(60), nil)
	b, _ := s.Push(big, at(80), &Feedback{Highest: 7})
	if err := p.Parse(b); err != nil {
		t.Fatal(err)
	}
	if len(p.Frames) != 1 || p.Feedback == nil || s.Stats().Trimmed == 0 {
		t.Errorf("a big frame: %d frames, trimmed %d", len(p.Frames), s.Stats().Trimmed)
	}
}

// TestSenderBundlesMoreAtTheBottom: packets bundle 3 frames while the
// bitrate steps down; a queue that stays long once it is at its lowest
// makes packets of up to 8 frames; once the path clears, packets shrink,
// a frame a step, before the bitrate rises.
func TestSenderBundlesMoreAtTheBottom(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{0}, at(0), nil)
	var fpps []int
	for i, ms := range []int{1000, 2000, 3000, 4000, 5000} {
		// The echo says the round trip was 50 ms: the base RTT stays low.
		s.Feedback(&Feedback{QueueMs: 300, EchoMs: uint32(ms - 50), HeldMs: 0}, at(ms))
		st := s.Stats()
		if i > 0 && st.Bitrate != 6000 {
			t.Fatalf("report %d: bitrate %d, want the lowest", i, st.Bitrate)
		}
		fpps = append(fpps, st.FramesPerPacket)
	}
	if !slices.Equal(fpps, []int{3, 3, 5, 7, 8}) {
		t.Errorf("frames a packet after each report of a long queue: %v, want [3 3 5 7 8]", fpps)
	}
	// A clear path: the first step back up is one frame less a packet, at
	// the same bitrate.
	for ms := 6000; ms <= 12000; ms += 500 {
		s.Feedback(&Feedback{QueueMs: 0, EchoMs: uint32(ms - 50)}, at(ms))
		if st := s.Stats(); st.FramesPerPacket < 8 {
			if st.FramesPerPacket != 7 || st.Bitrate != 6000 {
				t.Fatalf("first step up: %d frames a packet at %d bit/s, want 7 at 6000", st.FramesPerPacket, st.Bitrate)
			}
			return
		}
	}
	t.Fatalf("no step up on a clear path: %+v", s.Stats())
}

func TestSenderBundles(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{0}, at(0), nil)
	// A long queue: bottom bitrate, three frames a packet.
	s.Feedback(&Feedback{QueueMs: 900, HeldMs: 950}, at(1000))
	st := s.Stats()
	t.Logf("%q", st.Reason)
	if st.FramesPerPacket != 3 || st.Bitrate != 6000 || st.Depth != 1 {
		t.Fatalf("after a report of a long queue: %+v", st)
	}
	sent := 0
	var p Packet
	for i := 1; i <= 9; i++ {
		if b, ok := s.Push([]byte{byte(i)}, at(1000+20*i), nil); ok {
			sent++
			p.Parse(b)
		}
	}
	if sent != 3 || p.Seq != 9 || p.Fresh != 3 || len(p.Frames) != 4 {
		t.Errorf("9 frames in %d packets; the last: %+v", sent, p)
	}
}

func BenchmarkPushPop(b *testing.B) {
	snd := NewSender(SenderConfig{})
	jb := NewJitterBuffer(JitterConfig{})
	frame := make([]byte, 60)
	var p Packet
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now := simStart.Add(time.Duration(i) * frameDur)
		pkt, ok := snd.Push(frame, now, jb.Feedback(now))
		if ok {
			p.Parse(pkt)
			jb.Push(&p, now)
			snd.Feedback(p.Feedback, now)
		}
		jb.Pop(now)
		i++
	}
}

func TestPushPopAllocs(t *testing.T) {
	snd := NewSender(SenderConfig{})
	jb := NewJitterBuffer(JitterConfig{})
	frame := make([]byte, 60)
	var p Packet
	i := 0
	step := func() {
		now := simStart.Add(time.Duration(i) * frameDur)
		pkt, _ := snd.Push(frame, now, jb.Feedback(now))
		p.Parse(pkt)
		jb.Push(&p, now)
		snd.Feedback(p.Feedback, now)
		jb.Pop(now)
		i++
	}
	for range 300 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Errorf("a frame through Sender and JitterBuffer allocates %v times", n)
	}
}

// A playout clock that stops for 3 s catches up at once.
func TestJitterBufferCatchesUp(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	for i := range 300 {
		jb.Push(packet(uint64(i), 1, []byte{1, 2, 3, 4}), at(20*i))
		if i < 100 || i >= 250 {
			jb.Pop(at(20*i + 5))
		}
	}
	st := jb.Stats()
	t.Logf("%+v", st)
	if st.Skipped < 140 || st.Delay > 100*time.Millisecond || st.LongestGap > 0 {
		t.Errorf("after a stop of the playout clock: skipped %d, delay %v", st.Skipped, st.Delay)
	}
}

// The target delay covers the sender's redundancy, and comes down soon
// after the sender repeats less (it left a lossy path for a WebSocket).
func TestJitterBufferFollowsDepth(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	frames := func(seq, n int) [][]byte {
		var fs [][]byte
		for i := range n {
			fs = append(fs, []byte{byte(seq - i), 1, 2, 3})
		}
		return fs
	}
	target := func(from, to, depth int) time.Duration {
		for i := from; i < to; i++ {
			jb.Push(packet(uint64(i), 1, frames(i, 1+min(depth, i))...), at(20*i))
			jb.Pop(at(20*i + 5))
		}
		return jb.Stats().TargetDelay
	}
	if got := target(0, 100, 10); got < 200*time.Millisecond {
		t.Fatalf("target %v under a redundancy of 10 frames, want at least 200 ms", got)
	}
	if got := target(100, 110, 1); got < 200*time.Millisecond {
		t.Errorf("target %v 0.2 s after the redundancy fell: a trimmed packet should not move it", got)
	}
	if got := target(110, 200, 1); got > 60*time.Millisecond {
		t.Errorf("target %v 2 s after the redundancy fell to 1 frame", got)
	}
}

func TestSenderSetMaxDepth(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{1}, at(0), nil)
	s.Feedback(&Feedback{Highest: 0, Loss: 60, Burst: 6, EchoMs: 0}, at(40))
	if d := s.Stats().Depth; d < 6 {
		t.Fatalf("depth %d after bursts of 6", d)
	}
	s.SetMaxDepth(1, "a reliable carrier")
	if st := s.Stats(); st.Depth != 1 || !strings.HasSuffix(st.Reason, "→1: a reliable carrier") {
		t.Errorf("after SetMaxDepth(1): depth %d, reason %q", st.Depth, st.Reason)
	}
	s.Feedback(&Feedback{Highest: 0, Loss: 60, Burst: 6, EchoMs: 40}, at(80))
	if d := s.Stats().Depth; d != 1 {
		t.Errorf("loss reported after SetMaxDepth(1) raised the depth to %d", d)
	}
	s.SetMaxDepth(12, "a lossy carrier")
	s.Feedback(&Feedback{Highest: 0, Loss: 60, Burst: 6, EchoMs: 80}, at(120))
	if d := s.Stats().Depth; d < 6 {
		t.Errorf("depth %d after SetMaxDepth(12) and bursts of 6", d)
	}
}

// A sender on a path that queued the media is constrained until it is
// back where it started.
func TestSenderConstrained(t *testing.T) {
	s := NewSender(SenderConfig{})
	if s.Constrained(at(0)) {
		t.Fatal("constrained before the first frame")
	}
	s.Push([]byte{1}, at(0), nil)
	s.Feedback(&Feedback{QueueMs: 0, EchoMs: 0}, at(20))
	if s.Constrained(at(20)) {
		t.Fatal("constrained on a clear path")
	}
	s.Feedback(&Feedback{QueueMs: 300, EchoMs: 20}, at(1000))
	if !s.Constrained(at(1000)) || s.Bitrate() >= 24000 {
		t.Fatalf("after a 300 ms queue: constrained %v at %d bit/s", s.Constrained(at(1000)), s.Bitrate())
	}
	if !s.Constrained(at(20000)) {
		t.Error("no longer constrained 19 s after the queue, still below its start")
	}
	// Loss long after the queue, the bitrate still below its start: the
	// queue's loss, which redundancy would make worse.
	s.Feedback(&Feedback{QueueMs: 0, Loss: 100, Burst: 4, EchoMs: 40000}, at(40020))
	if st := s.Stats(); st.Depth > 1 {
		t.Errorf("redundancy %d for loss on a path that had to slow down (%s)", st.Depth, st.Reason)
	}
}

// TestSenderMeasured: the path is measured once the peer has had a
// second of the media and reports no queue, or once it was slow; a queue
// or a report on less media leaves it unknown.
func TestSenderMeasured(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{1}, at(0), nil)
	s.Feedback(&Feedback{QueueMs: 0, EchoMs: 500}, at(520))
	s.Feedback(&Feedback{QueueMs: 50, EchoMs: 1200}, at(1220))
	if s.Measured() {
		t.Fatal("measured after half a second of media, and then a queue")
	}
	s.Feedback(&Feedback{QueueMs: 5, EchoMs: 1400}, at(1420))
	if !s.Measured() {
		t.Fatal("not measured after a clear report on 1.4 s of media")
	}
	slow := NewSender(SenderConfig{})
	slow.Push([]byte{1}, at(0), nil)
	slow.Feedback(&Feedback{QueueMs: 400, EchoMs: 300}, at(900))
	if !slow.Measured() {
		t.Error("a slow path is not measured")
	}
}

// TestJitterBufferFirstCopies: the target follows when frames can be
// played, their first copies: every other packet is 200 ms late, but the
// next one, on time, repeats its frame, so no frame waits for it. Its
// late first-hand copies are lateness, not loss.
func TestJitterBufferFirstCopies(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	send := func(i int) {
		jb.Push(packet(uint64(i), 1, []byte{byte(i), 1}, []byte{byte(i - 1), 1}), at(20*i+200*(1-i%2)))
	}
	for i := range 300 {
		switch {
		case i%2 == 1:
			send(i)
		case i >= 10:
			send(i - 10) // 200 ms late
		}
		jb.Pop(at(20*i + 10))
	}
	st := jb.Stats()
	fb := jb.Feedback(at(20 * 300))
	t.Logf("%+v %+v", st, fb)
	if st.TargetDelay > 60*time.Millisecond {
		t.Errorf("target %v: want it to follow the repeats that come on time (≤ 60 ms), not the late packets", st.TargetDelay)
	}
	if fb.Loss != 0 || st.Concealed > 2 {
		t.Errorf("loss %d/256, %d concealed: want none", fb.Loss, st.Concealed)
	}
}

// TestJitterBufferLossFew: one frame lost of the few decided since the
// warm-up is reported as a burst, not as a loss rate (1 in 7 would ask
// for 3 repeats).
func TestJitterBufferLossFew(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	for i := range 26 {
		if i != 22 {
			jb.Push(packet(uint64(i), 1, []byte{byte(i), 1}), at(20*i))
		}
		jb.Pop(at(20*i + 10))
	}
	fb := jb.Feedback(at(2000))
	st := jb.Stats()
	t.Logf("%+v %+v", st, fb)
	if st.LossBeforeRepair == 0 || st.LossBeforeRepair < 1.0/lossFew {
		t.Fatalf("loss before repair %.2f: want frame 22 lost among fewer than %d decided, or the test shows nothing", st.LossBeforeRepair, lossFew)
	}
	if fb.Loss != 0 || fb.Burst != 1 {
		t.Errorf("feedback: loss %d/256, bursts of %d; want no rate yet, a burst of 1", fb.Loss, fb.Burst)
	}
}

// A slow path that the repeats fill (a lossy path, narrow: QUIC's
// congestion window on the lab's jitter-150 path): the sender halves the
// redundancy before it touches the audio, and once the path has been
// clear for a while it gives the loss its repeats back before the
// bitrate; a step up that makes a queue is taken back.
func TestSenderShedsRepeatsFirst(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{1}, at(0), nil)
	report := func(ms, queueMs int) SenderStats {
		s.Feedback(&Feedback{Loss: 128, Burst: 2, QueueMs: uint32(queueMs), EchoMs: uint32(ms - 20)}, at(ms))
		return s.Stats()
	}
	if st := report(20, 0); st.Depth != 9 {
		t.Fatalf("redundancy %d for 50%% loss, want 9 (%s)", st.Depth, st.Reason)
	}
	for i, want := range []int{4, 2, 1} {
		st := report(1000+600*i, 150)
		if st.Depth != want || st.Bitrate != 24000 || st.FramesPerPacket != 1 {
			t.Fatalf("step %d on a slow path: redundancy %d, bitrate %d, %d frames a packet; want redundancy %d, the audio as it was (%s)",
				i+1, st.Depth, st.Bitrate, st.FramesPerPacket, want, st.Reason)
		}
	}
	if st := report(2800, 150); st.Depth != 1 || st.Bitrate >= 24000 {
		t.Fatalf("at redundancy 1, a slow path: redundancy %d, bitrate %d; want the bitrate lower (%s)", st.Depth, st.Bitrate, st.Reason)
	}
	rate := s.Bitrate()
	var st SenderStats
	for ms := 3000; ms <= 8000; ms += 200 {
		if st = report(ms, 0); st.Depth != 1 && ms < 7800 {
			t.Fatalf("redundancy %d at %d ms, %d ms after the last slow step: want 1 until the path has been clear for 5 s (%s)", st.Depth, ms, ms-2800, st.Reason)
		}
	}
	if st.Depth != 2 || st.Bitrate != rate {
		t.Errorf("path clear for 5 s, 50%% loss: redundancy %d, bitrate %d; want redundancy 2 first, bitrate %d (%s)", st.Depth, st.Bitrate, rate, st.Reason)
	}
	if st = report(8200, 50); st.Depth != 1 || st.Bitrate != rate {
		t.Errorf("the step up made a queue: redundancy %d, bitrate %d; want it taken back to 1 (%s)", st.Depth, st.Bitrate, st.Reason)
	}
}

// A long queue (the path far slower than what is sent, rate-32k) takes
// the audio down at the first step too, with the repeats: the next step
// comes only a base round trip later, seconds on such a path.
func TestSenderLongQueueStepsBoth(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.Push([]byte{1}, at(0), nil)
	s.Feedback(&Feedback{Loss: 128, Burst: 2, EchoMs: 0}, at(20))
	s.Feedback(&Feedback{Loss: 128, Burst: 2, QueueMs: 450, EchoMs: 980}, at(1000))
	if st := s.Stats(); st.Depth != 4 || st.Bitrate != 12000 || st.FramesPerPacket != 3 {
		t.Errorf("a 450-ms queue at redundancy 9: redundancy %d, bitrate %d, %d frames a packet; want 4, 12000 (two rungs down), 3 (%s)",
			st.Depth, st.Bitrate, st.FramesPerPacket, st.Reason)
	}
}

// TestSenderSkip: after a skip, the sequence numbers go on past it and
// the frames before it are not repeated.
func TestSenderSkip(t *testing.T) {
	s := NewSender(SenderConfig{})
	s.SetMaxDepth(3, "test")
	s.Feedback(&Feedback{Highest: 0, Loss: 26, Burst: 3}, at(0)) // redundancy up
	var p Packet
	for i := range 3 {
		b, _ := s.Push([]byte{byte(i + 1)}, at(20*i), nil)
		if err := p.Parse(b); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.Frames) < 2 {
		t.Fatalf("before the skip, packets repeat nothing: %+v", p)
	}
	s.Skip(50)
	b, _ := s.Push([]byte{9}, at(1100), nil)
	if err := p.Parse(b); err != nil {
		t.Fatal(err)
	}
	if p.Seq != 53 || len(p.Frames) != 1 || p.Frames[0][0] != 9 {
		t.Errorf("after a skip of 50: %+v", p)
	}
	b, _ = s.Push([]byte{10}, at(1120), nil)
	if err := p.Parse(b); err != nil {
		t.Fatal(err)
	}
	if p.Seq != 54 || len(p.Frames) != 2 || p.Frames[1][0] != 9 {
		t.Errorf("the frame after: %+v", p)
	}
}

// TestJitterBufferRest: Rest gives the frames not yet played, nil for a
// missing one, and counts them.
func TestJitterBufferRest(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	if jb.Rest() != nil {
		t.Fatal("an empty buffer has a rest")
	}
	jb.Push(packet(10, 1, []byte{10}), at(0))
	jb.Push(packet(11, 1, []byte{11}), at(20))
	jb.Push(packet(13, 1, []byte{13}), at(60))
	if _, st := jb.Pop(at(60)); st != Played {
		t.Fatalf("first pop: %v", st)
	}
	rest := jb.Rest()
	if len(rest) != 3 || rest[0][0] != 11 || rest[1] != nil || rest[2][0] != 13 {
		t.Fatalf("rest: %v", rest)
	}
	if st := jb.Stats(); st.Played != 3 || st.Concealed != 1 {
		t.Errorf("counts after the rest: %+v", st)
	}
	if rest := jb.Rest(); len(rest) != 0 {
		t.Errorf("a second rest: %v", rest)
	}
}

// TestJitterBufferTrailing: the slots concealed after the last frame are
// not counted as missing until a later frame shows that they were: a
// stream that ends (a hang-up that comes after the last frame) loses
// nothing.
func TestJitterBufferTrailing(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	for seq := range 10 {
		jb.Push(packet(uint64(seq), 1, []byte{byte(seq + 1)}), at(20*seq))
	}
	for i := range 15 {
		want := Played
		if i >= 10 {
			want = Concealed
		}
		if _, st := jb.Pop(at(60 + 20*i)); st != want {
			t.Fatalf("slot %d: %v, want %v", i, st, want)
		}
	}
	st := jb.Stats()
	if st.Played != 10 || st.Concealed != 0 || st.Trailing != 5 || st.LongestGap != 0 {
		t.Fatalf("after the stream's end: played %d, concealed %d, trailing %d, longest gap %v; want 10, 0, 5, 0",
			st.Played, st.Concealed, st.Trailing, st.LongestGap)
	}
	// Frame 12 comes late: the slots up to it were missing, those after
	// it may still be the stream's end.
	jb.Push(packet(12, 1, []byte{13}), at(340))
	if st := jb.Stats(); st.Concealed != 3 || st.Trailing != 2 || st.LongestGap != 60*time.Millisecond || st.Late != 1 {
		t.Errorf("after a late frame: %+v", st)
	}
	// Frame 20 comes: the stream went on; the slots before it were missing.
	jb.Push(packet(20, 1, []byte{21}), at(400))
	if st := jb.Stats(); st.Concealed != 5 || st.Trailing != 0 || st.LongestGap != 100*time.Millisecond {
		t.Errorf("after the stream went on: %+v", st)
	}
}

// TestJitterBufferResent: packets sent again after a move (the server's
// replay of the last half second) come late by design. Pushed as resent,
// their frames that are still in time play, as repairs, but their
// lateness moves neither the target delay nor the queueing delay; pushed
// as ordinary packets, the same lateness would raise the target by about
// as much.
func TestJitterBufferResent(t *testing.T) {
	run := func(resent bool) (JitterStats, []FrameStatus) {
		jb := NewJitterBuffer(JitterConfig{})
		push := jb.Push
		if resent {
			push = jb.PushResent
		}
		var around []FrameStatus // slots 118..122
		for i := range 200 {
			if i != 120 && (i < 105 || i > 110) { // lost on the way
				jb.Push(packet(uint64(i), 1, []byte{byte(i), 1, 2}, []byte{byte(i - 1), 1, 2}), at(20*i))
			}
			if i == 119 {
				// The replay: the last 400 ms, and 120 ahead of its
				// loss (as a trial's other carrier may bring it).
				for s := 100; s <= 120; s++ {
					push(packet(uint64(s), 1, []byte{byte(s), 1, 2}, []byte{byte(s - 1), 1, 2}), at(20*i+5))
				}
			}
			_, st := jb.Pop(at(20*i + 10))
			if i >= 118+3 && i <= 122+3 { // the slots are played about three frames after they come
				around = append(around, st)
			}
		}
		return jb.Stats(), around
	}
	st, around := run(true)
	t.Logf("resent: %+v %v", st, around)
	if st.MaxTargetDelay > 100*time.Millisecond || st.QueueDelay > 0 {
		t.Errorf("resent packets moved the target to %v (queueing delay %v), want it where the path keeps it",
			st.MaxTargetDelay, st.QueueDelay)
	}
	if st.Concealed != 5 || st.Late != 5 || !slices.Contains(around, Repaired) {
		t.Errorf("frame 120, lost on the path and resent in time: slots %v; %d concealed, %d late; "+
			"want it played as a repair, and 105..109 (lost, resent too late) concealed and late", around, st.Concealed, st.Late)
	}
	if ord, _ := run(false); ord.MaxTargetDelay < 300*time.Millisecond {
		t.Errorf("the same packets pushed as ordinary ones left the target at %v: the test shows nothing", ord.MaxTargetDelay)
	}
}

// TestJitterBufferAside: copies that came the other way (the other carrier
// of a trial) count as the path's for loss, since the frame did come, but
// their lateness sets neither the target nor the queueing delay.
func TestJitterBufferAside(t *testing.T) {
	jb := NewJitterBuffer(JitterConfig{})
	for i := range 200 {
		p := packet(uint64(i), 1, []byte{byte(i), 1, 2}, []byte{byte(i - 1), 1, 2})
		switch {
		case i >= 100 && i < 110: // lost on the path
		case i%2 == 1:
			jb.PushAside(p, at(20*i)) // in time, the other way
		default:
			jb.Push(p, at(20*i))
		}
		if i >= 120 && i < 130 { // the other way brings 100..109, 400 ms late
			jb.PushAside(packet(uint64(i-20), 1, []byte{byte(i - 20), 1, 2}), at(20*i))
		}
		jb.Pop(at(20*i + 10))
	}
	st := jb.Stats()
	t.Logf("%+v", st)
	if st.MaxTargetDelay > 100*time.Millisecond || st.QueueDelay > 0 {
		t.Errorf("copies that came the other way moved the target to %v (queueing delay %v)", st.MaxTargetDelay, st.QueueDelay)
	}
	// Lost before repair: 100..109 (109 repaired by 110), 10 of the ~160
	// slots after the warm-up (the buffer samples the lateness of every
	// other frame); the odd frames that came the other way in time are
	// not (as repairs, they would make it half).
	if st.LossBeforeRepair > 0.07 || st.Late != 9 {
		t.Errorf("loss before repair %.2f, %d late; want 10 of ~160 lost (every other frame came the other way, in time), 9 late",
			st.LossBeforeRepair, st.Late)
	}
}

// A sender without redundancy (MinDepth < 0) gets none from a slow path.
func TestSenderSlowPathAddsNoRepeats(t *testing.T) {
	s := NewSender(SenderConfig{MinDepth: -1})
	s.Push([]byte{1}, at(0), nil)
	s.Feedback(&Feedback{QueueMs: 150, EchoMs: 980}, at(1000))
	if st := s.Stats(); st.Depth != 0 || st.Bitrate >= 24000 || st.Changes != 1 || !strings.Contains(st.Reason, "slow path") {
		t.Errorf("a slow path at redundancy 0: redundancy %d, bitrate %d, %d changes, the last %q; want one change: the bitrate lower, no repeats",
			st.Depth, st.Bitrate, st.Changes, st.Reason)
	}
}
