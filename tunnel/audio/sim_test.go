package audio

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A simulated call: side A sends to side B over a path with impairments,
// B sends back over a clean path (30 ms), both once per 20 ms frame, each
// packet carrying its sender's receiver report. The encoder is modelled
// by frame sizes: the Sender's chosen bitrate × 20 ms, the sequence number
// in the first bytes so that playout can be checked.

var simStart = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const frameDur = 20 * time.Millisecond

// path decides when a packet sent at t arrives, if it does.
type path interface {
	send(t time.Duration, size int) (arrive time.Duration, ok bool)
}

type fixed struct{ delay time.Duration }

func (p fixed) send(t time.Duration, _ int) (time.Duration, bool) { return t + p.delay, true }

// randomLoss drops each packet with probability loss.
type randomLoss struct {
	delay time.Duration
	loss  float64
	rng   *rand.Rand
}

func (p *randomLoss) send(t time.Duration, _ int) (time.Duration, bool) {
	return t + p.delay, p.rng.Float64() >= p.loss
}

// gilbertElliott drops packets in bursts: from the good state (no loss) to
// the bad one with probability p per packet, back with probability q; in
// the bad state each packet is lost with probability loss.
type gilbertElliott struct {
	delay   time.Duration
	p, q    float64
	loss    float64
	bad     bool
	rng     *rand.Rand
	run     int // current run of lost packets
	longest int
}

func (g *gilbertElliott) send(t time.Duration, _ int) (time.Duration, bool) {
	if g.bad {
		g.bad = g.rng.Float64() >= g.q
	} else {
		g.bad = g.rng.Float64() < g.p
	}
	if g.bad && g.rng.Float64() < g.loss {
		g.run++
		g.longest = max(g.longest, g.run)
		return 0, false
	}
	g.run = 0
	return t + g.delay, true
}

// jitter delays each packet by base + uniform(−spread, +spread): packets
// overtake one another.
type jitter struct {
	base, spread time.Duration
	rng          *rand.Rand
}

func (p *jitter) send(t time.Duration, _ int) (time.Duration, bool) {
	return t + p.base - p.spread + time.Duration(p.rng.Int64N(int64(2*p.spread)+1)), true
}

// labJitter delays each packet as the lab's jitter-150 profile does on
// each of hops links (netlab: 60 ms ± 150 ms, uniform, clipped at 0),
// after next (if any) has passed it.
type labJitter struct {
	hops int
	next path
	rng  *rand.Rand
}

func (p *labJitter) send(t time.Duration, size int) (time.Duration, bool) {
	if p.next != nil {
		var ok bool
		if t, ok = p.next.send(t, size); !ok {
			return 0, false
		}
	}
	for range p.hops {
		t += max(-90*time.Millisecond+time.Duration(p.rng.Int64N(int64(300*time.Millisecond)+1)), 0)
	}
	return t, true
}

// bottleneck serves packets (plus per-packet overhead: SFrame, the
// carrier, TLS, TCP/IP) at rate bit/s through a FIFO, like a TCP flow
// through a slow link; a packet that would wait more than limit is
// dropped (the carrier's queue is full).
type bottleneck struct {
	delay    time.Duration
	rate     int
	overhead int
	limit    time.Duration
	free     time.Duration // when the link is free
	dropped  int
	rng      *rand.Rand
	loss     float64
}

func (p *bottleneck) send(t time.Duration, size int) (time.Duration, bool) {
	if p.rng != nil && p.rng.Float64() < p.loss {
		return 0, false
	}
	if p.free-t > p.limit {
		p.dropped++
		return 0, false
	}
	p.free = max(p.free, t) + time.Duration(int64(size+p.overhead)*8*int64(time.Second)/int64(p.rate))
	return p.free + p.delay, true
}

// freeze holds every packet sent in [from, to) until to, then releases
// them in order: a frozen TCP flow replaced by a new one.
type freeze struct {
	delay    time.Duration
	from, to time.Duration
}

func (p freeze) send(t time.Duration, _ int) (time.Duration, bool) {
	if t >= p.from && t < p.to {
		return p.to + p.delay + time.Duration(t-p.from)/1000, true
	}
	return t + p.delay, true
}

type inFlight struct {
	at  time.Duration
	pkt []byte
}

type side struct {
	snd    *Sender
	jb     *JitterBuffer
	queue  []inFlight // to the other side, by arrival
	pkt    Packet
	seq    uint64
	played uint64 // highest sequence number played + 1
}

// simResult is what a simulated call came to at B, and what A chose.
type simResult struct {
	jb                  JitterStats
	snd                 SenderStats
	due                 int     // frames whose slot came: played + concealed + skipped
	playedShare         float64 // played / due
	minRate, maxFPP     int     // over the call
	maxDepth            int
	rateAfter, fppAfter []int // samples every second
	concealedAfter      map[time.Duration]int
	bytesPerFrame       float64
	delays              []time.Duration // B's playout delay, once a second
	disorder            bool            // a frame played out of order
}

func simulate(t *testing.T, d time.Duration, fwd path, checkpoints ...time.Duration) simResult {
	t.Helper()
	back := fixed{30 * time.Millisecond}
	a := &side{snd: NewSender(SenderConfig{}), jb: NewJitterBuffer(JitterConfig{})}
	b := &side{snd: NewSender(SenderConfig{}), jb: NewJitterBuffer(JitterConfig{})}
	res := simResult{minRate: 1 << 30, concealedAfter: map[time.Duration]int{}}
	frame := make([]byte, 0, MaxFrameLen)
	send := func(from, to *side, p path, now time.Duration) {
		size := from.snd.Bitrate() * int(frameDur/time.Millisecond) / 8000
		frame = binary.BigEndian.AppendUint64(frame[:0], from.seq)
		for len(frame) < size {
			frame = append(frame, byte(len(frame)))
		}
		from.seq++
		pkt, ok := from.snd.Push(frame, simStart.Add(now), from.jb.Feedback(simStart.Add(now)))
		if !ok {
			return
		}
		at, ok := p.send(now, len(pkt))
		if !ok {
			return
		}
		f := inFlight{at, slices.Clone(pkt)}
		i, _ := slices.BinarySearchFunc(from.queue, at, func(e inFlight, at time.Duration) int {
			if e.at <= at {
				return -1
			}
			return 1
		})
		from.queue = slices.Insert(from.queue, i, f)
	}
	deliver := func(from, to *side, now time.Duration) {
		for len(from.queue) > 0 && from.queue[0].at <= now {
			if err := to.pkt.Parse(from.queue[0].pkt); err != nil {
				t.Fatalf("parse: %v", err)
			}
			from.queue = from.queue[1:]
			to.jb.Push(&to.pkt, simStart.Add(now))
			to.snd.Feedback(to.pkt.Feedback, simStart.Add(now))
		}
	}
	pop := func(s *side, now time.Duration) {
		f, st := s.jb.Pop(simStart.Add(now))
		if st == Played || st == Repaired {
			seq := binary.BigEndian.Uint64(f)
			if seq < s.played {
				res.disorder = true
			}
			s.played = seq + 1
		}
	}
	for now := time.Duration(0); now < d; now += time.Millisecond {
		if now%frameDur == 0 {
			send(a, b, fwd, now)
			send(b, a, back, now)
			st := a.snd.Stats()
			res.minRate = min(res.minRate, st.Bitrate)
			res.maxFPP = max(res.maxFPP, st.FramesPerPacket)
			res.maxDepth = max(res.maxDepth, st.Depth)
		}
		deliver(a, b, now)
		deliver(b, a, now)
		if now%frameDur == 7*time.Millisecond { // the playout clock, out of phase
			pop(a, now)
			pop(b, now)
		}
		if now%time.Second == 0 {
			st := a.snd.Stats()
			res.rateAfter = append(res.rateAfter, st.Bitrate)
			res.fppAfter = append(res.fppAfter, st.FramesPerPacket)
			res.delays = append(res.delays, b.jb.Stats().Delay)
		}
		for _, c := range checkpoints {
			if now == c {
				res.concealedAfter[c] = b.jb.Stats().Concealed + b.jb.Stats().Inserted
			}
		}
	}
	res.jb, res.snd = b.jb.Stats(), a.snd.Stats()
	res.due = res.jb.Played + res.jb.Concealed + res.jb.Skipped
	res.playedShare = float64(res.jb.Played) / float64(res.due)
	res.bytesPerFrame = float64(res.snd.Bytes) / float64(res.snd.Frames)
	if res.disorder {
		t.Errorf("frames played out of order")
	}
	return res
}

func (r simResult) log(t *testing.T) {
	t.Helper()
	j, s := r.jb, r.snd
	t.Logf("receiver: due %d, played %d (%.2f%%), repaired %d, concealed %d, inserted %d, skipped %d, late %d, duplicates %d, dropped %d",
		r.due, j.Played, 100*r.playedShare, j.Repaired, j.Concealed, j.Inserted, j.Skipped, j.Late, j.Duplicates, j.Dropped)
	t.Logf("receiver: loss before repair %.2f%%, longest gap %v, target delay %v (max %v), delay %v, queueing delay %v",
		100*j.LossBeforeRepair, j.LongestGap, j.TargetDelay, j.MaxTargetDelay, j.Delay, j.QueueDelay)
	t.Logf("sender: redundancy %d (max %d), %d frames a packet (max %d), bitrate %d (min %d), %.1f bytes a frame, RTT %v, %d changes, last: %q",
		s.Depth, r.maxDepth, s.FramesPerPacket, r.maxFPP, s.Bitrate, r.minRate, r.bytesPerFrame, s.RTT, s.Changes, s.Reason)
}

const simLength = 60 * time.Second

func TestSimClean(t *testing.T) {
	r := simulate(t, simLength, fixed{40 * time.Millisecond})
	r.log(t)
	if r.jb.Concealed+r.jb.Inserted+r.jb.Late != 0 || r.playedShare < 0.999 {
		t.Errorf("a clean path lost audio")
	}
	if r.jb.MaxTargetDelay > 60*time.Millisecond || r.jb.TargetDelay > 30*time.Millisecond {
		t.Errorf("target delay %v (max %v) on a clean path", r.jb.TargetDelay, r.jb.MaxTargetDelay)
	}
	if r.maxDepth != 1 || r.maxFPP != 1 || r.minRate != 24000 || r.snd.Changes != 0 {
		t.Errorf("the sender changed on a clean path")
	}
}

func TestSimRandomLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := simulate(t, simLength, &randomLoss{delay: 40 * time.Millisecond, loss: 0.10, rng: rng})
	r.log(t)
	if r.playedShare < 0.99 {
		t.Errorf("played %.2f%% of frames with 10%% loss, want ≥ 99%%", 100*r.playedShare)
	}
	if r.jb.LossBeforeRepair < 0.08 || r.jb.LossBeforeRepair > 0.12 {
		t.Errorf("loss before repair measured as %.2f%%", 100*r.jb.LossBeforeRepair)
	}
	if r.snd.Depth < 2 {
		t.Errorf("redundancy %d with 10%% loss", r.snd.Depth)
	}
	// Loss without queueing is not congestion.
	if r.maxFPP != 1 || r.minRate != 24000 {
		t.Errorf("random loss made the sender bundle (%d frames a packet) or lower the bitrate (%d)", r.maxFPP, r.minRate)
	}
}

func TestSimBurstLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ge := &gilbertElliott{delay: 40 * time.Millisecond, p: 1.0 / 14, q: 1.0 / 4, loss: 0.9, rng: rng}
	r := simulate(t, simLength, ge)
	r.log(t)
	t.Logf("path: longest run of lost packets %d", ge.longest)
	if r.jb.LongestGap > 200*time.Millisecond {
		t.Errorf("longest gap %v with bursty loss, want ≤ 200 ms", r.jb.LongestGap)
	}
	if r.playedShare < 0.97 {
		t.Errorf("played %.2f%% of frames with bursty loss, want ≥ 97%%", 100*r.playedShare)
	}
	if r.jb.LossBeforeRepair < 0.15 {
		t.Errorf("loss before repair measured as %.2f%%, want about 20%%", 100*r.jb.LossBeforeRepair)
	}
	if r.maxFPP != 1 || r.minRate != 24000 {
		t.Errorf("bursty loss made the sender bundle (%d frames a packet) or lower the bitrate (%d)", r.maxFPP, r.minRate)
	}
}

func TestSimJitter(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	r := simulate(t, simLength, &jitter{base: 210 * time.Millisecond, spread: 150 * time.Millisecond, rng: rng})
	r.log(t)
	if r.jb.LongestGap > 200*time.Millisecond {
		t.Errorf("longest gap %v with jitter, want ≤ 200 ms", r.jb.LongestGap)
	}
	if r.jb.MaxTargetDelay > 400*time.Millisecond {
		t.Errorf("target delay up to %v, want ≤ 400 ms", r.jb.MaxTargetDelay)
	}
	if r.playedShare < 0.97 {
		t.Errorf("played %.2f%% of frames with jitter", 100*r.playedShare)
	}
	if r.maxFPP != 1 || r.minRate != 24000 {
		t.Errorf("jitter made the sender bundle (%d frames a packet) or lower the bitrate (%d)", r.maxFPP, r.minRate)
	}
}

func TestSimSlowPath(t *testing.T) {
	settled := 10 * time.Second
	r := simulate(t, simLength, &bottleneck{delay: 40 * time.Millisecond, rate: 32000, overhead: 80, limit: 600 * time.Millisecond}, settled)
	r.log(t)
	t.Logf("sender: bitrate each second %v", r.rateAfter)
	t.Logf("sender: frames per packet each second %v", r.fppAfter)
	t.Logf("receiver: playout delay each second %v", r.delays)
	gaps := r.jb.Concealed + r.jb.Inserted - r.concealedAfter[settled]
	late := slices.Clone(r.delays[settled/time.Second:])
	slices.Sort(late)
	median := late[len(late)/2]
	t.Logf("receiver: from %v on: %d slots concealed of %d, median playout delay %v", settled, gaps, int((simLength-settled)/frameDur), median)
	if r.maxFPP < 2 || r.minRate > 16000 {
		t.Errorf("a 32 kbit/s path: %d frames a packet at most, bitrate %d at least; want bundling and a lower bitrate", r.maxFPP, r.minRate)
	}
	// The start overloads the path (24 kbit/s of audio is 90 kbit/s in
	// 20 ms packets with their headers); once the sender has eased off,
	// the audio flows.
	if gaps*100 > 3*int((simLength-settled)/frameDur) || median > 200*time.Millisecond {
		t.Errorf("the path stayed congested after %v: %d slots concealed, median playout delay %v", settled, gaps, median)
	}
	if r.playedShare < 0.93 {
		t.Errorf("played %.2f%% of frames on a slow path", 100*r.playedShare)
	}
}

// A slow path with random loss: the loss does not stop the sender from
// easing off; and the same loss on a fast path does not make it (see
// TestSimRandomLoss).
func TestSimSlowPathWithLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	r := simulate(t, simLength, &bottleneck{delay: 40 * time.Millisecond, rate: 32000, overhead: 80, limit: 600 * time.Millisecond, rng: rng, loss: 0.05})
	r.log(t)
	if r.maxFPP < 2 || r.minRate > 16000 {
		t.Errorf("a slow lossy path: %d frames a packet at most, bitrate %d at least", r.maxFPP, r.minRate)
	}
}

// The lab's jitter-150 on both links of the tunnel (no loss): the playout
// delay follows each frame's first copy, fresh or repeated, not its own
// packet when that is late (waiting for those put the median at 367 ms
// here).
func TestSimLabJitter(t *testing.T) {
	for seed := range uint64(3) {
		r := simulate(t, simLength, &labJitter{hops: 2, rng: rand.New(rand.NewPCG(21+seed, 22))})
		delays := slices.Clone(r.delays[5:])
		slices.Sort(delays)
		median := delays[len(delays)/2]
		if r.playedShare < 0.985 || r.jb.LongestGap > 200*time.Millisecond || median > 340*time.Millisecond {
			r.log(t)
			t.Errorf("seed %d: played %.2f%%, longest gap %v, median playout delay %v; want ≥ 98.5%%, ≤ 200 ms, ≤ 340 ms",
				seed, 100*r.playedShare, r.jb.LongestGap, median)
		}
	}
}

// A lossy path with room for the audio but not for all the repeats its
// loss calls for: what QUIC's congestion window leaves on the lab's
// jitter-150 path, where quic-go discards packets that come after it has
// stopped acknowledging their numbers (a fifth on each link). The sender
// sheds repeats before audio, keeps those the path has room for, and
// repairs nearly all of the loss (the old sender, which cut the
// redundancy to 1 at the first queue and kept it there, played 88–94% in
// five of these six runs).
func TestSimNarrowLossyPath(t *testing.T) {
	for _, jitter := range []bool{false, true} {
		for seed := range uint64(3) {
			rng := rand.New(rand.NewPCG(11+seed, 12))
			var p path = &bottleneck{delay: 40 * time.Millisecond, rate: 160000, overhead: 80, limit: 500 * time.Millisecond, rng: rng, loss: 0.2}
			if jitter {
				p = &labJitter{hops: 2, next: p, rng: rng}
			}
			r := simulate(t, simLength, p)
			if r.playedShare < 0.97 || r.jb.LongestGap > 300*time.Millisecond {
				r.log(t)
				t.Errorf("jitter %v, seed %d: played %.2f%%, longest gap %v; want ≥ 97%%, ≤ 300 ms", jitter, seed, 100*r.playedShare, r.jb.LongestGap)
			}
		}
	}
}

func TestSimFreeze(t *testing.T) {
	from, to := 20*time.Second, 20*time.Second+300*time.Millisecond
	r := simulate(t, simLength, freeze{delay: 40 * time.Millisecond, from: from, to: to}, to+time.Second)
	r.log(t)
	after := r.jb.Concealed + r.jb.Inserted - r.concealedAfter[to+time.Second]
	t.Logf("receiver: concealed slots from 1 s after the freeze: %d", after)
	if r.jb.LongestGap > 360*time.Millisecond {
		t.Errorf("longest gap %v for a 300 ms freeze", r.jb.LongestGap)
	}
	if after != 0 {
		t.Errorf("%d slots concealed after the freeze", after)
	}
	if r.jb.TargetDelay > 60*time.Millisecond || r.jb.Delay > 100*time.Millisecond {
		t.Errorf("delay did not come back after the freeze: target %v, delay %v", r.jb.TargetDelay, r.jb.Delay)
	}
	if r.playedShare < 0.98 {
		t.Errorf("played %.2f%%", 100*r.playedShare)
	}
	// Frames held up and then delivered are late, not lost: more
	// redundancy would not have helped.
	if r.maxDepth > 2 || r.maxFPP != 1 {
		t.Errorf("the freeze raised the redundancy to %d, or bundling to %d", r.maxDepth, r.maxFPP)
	}
}
