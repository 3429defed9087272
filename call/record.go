package call

import (
	"sync"

	"github.com/pion/rtp"
)

// reorderWindow is how many packets past a missing one the recorder waits
// for it before it records the gap: 10 packets, 200 ms of 20 ms audio.
const reorderWindow = 10

// maxGapPackets bounds the concealment written for one gap, so that a jump
// in sequence numbers (a restarted sender) cannot fill the disk: 60 s.
const maxGapSamples = 60 * opusRate

// recorder puts received RTP packets in sequence order, counts them, and
// writes their Opus payloads to an OggWriter (if any), with concealment
// frames where packets are missing. Only the receiving goroutine calls push
// and finish (or others, one at a time); counts may be read by any.
type recorder struct {
	w *OggWriter // nil: count only

	started bool
	next    uint16 // sequence number of the next packet to record
	nextTS  uint32 // its expected RTP timestamp
	pending map[uint16]*rtp.Packet
	err     error // the first write error; recording stops there

	mu       sync.Mutex // guards the counts
	received int        // distinct packets that arrived
	lost     int        // packets given up for lost
	late     int        // packets that came after being given up, or twice
	gaps     int        // runs of lost packets
}

func newRecorder(w *OggWriter) *recorder {
	return &recorder{w: w, pending: make(map[uint16]*rtp.Packet)}
}

// push takes one received packet.
func (r *recorder) push(p *rtp.Packet) {
	if len(p.Payload) == 0 {
		return // padding only
	}
	if !r.started {
		r.started, r.next, r.nextTS = true, p.SequenceNumber, p.Timestamp
	}
	d := int16(p.SequenceNumber - r.next) // RFC 3550 sequence numbers wrap at 2^16
	_, dup := r.pending[p.SequenceNumber]
	if d < 0 || dup {
		r.count(func() { r.late++ })
		return
	}
	r.count(func() { r.received++ })
	r.pending[p.SequenceNumber] = p
	r.drain()
	for len(r.pending) > reorderWindow {
		r.skip()
		r.drain()
	}
}

// flush records what is still waiting: no more packets will come.
func (r *recorder) flush() {
	for len(r.pending) > 0 {
		r.skip()
		r.drain()
	}
}

// restart records what is still waiting and takes the next packet as the
// start of a new stream: the time since the last one was recorded from
// elsewhere (the tunnel), so the packets missing between are not a gap.
func (r *recorder) restart() {
	r.flush()
	r.started = false
}

// finish records what is still waiting and ends the Ogg stream.
func (r *recorder) finish() error {
	r.flush()
	if r.w != nil && r.err == nil {
		r.err = r.w.Close()
	}
	return r.err
}

// drain records the packets that are next in sequence.
func (r *recorder) drain() {
	for {
		p, ok := r.pending[r.next]
		if !ok {
			return
		}
		delete(r.pending, r.next)
		r.write(p.Payload)
		n, _ := packetSamples(p.Payload)
		r.next++
		r.nextTS = p.Timestamp + uint32(n)
	}
}

// skip gives up the missing packets before the earliest one waiting,
// recording a gap as long as their timestamps say.
func (r *recorder) skip() {
	first, ok := uint16(0), false
	for s := range r.pending {
		if !ok || int16(s-first) < 0 {
			first, ok = s, true
		}
	}
	if !ok {
		return
	}
	missing := int(first - r.next)
	gap := int(int32(r.pending[first].Timestamp - r.nextTS))
	if gap < 0 || gap > maxGapSamples {
		gap = min(missing*960, maxGapSamples) // timestamps make no sense: assume 20 ms packets
	}
	for _, c := range concealment(gap) {
		r.write(c)
	}
	r.count(func() { r.lost += missing; r.gaps++ })
	r.next, r.nextTS = first, r.pending[first].Timestamp
}

func (r *recorder) write(p []byte) {
	if r.w == nil || r.err != nil {
		return
	}
	if _, err := packetSamples(p); err != nil {
		return // not Opus: leave it out rather than break the file
	}
	r.err = r.w.WritePacket(p)
}

func (r *recorder) count(f func()) {
	r.mu.Lock()
	f()
	r.mu.Unlock()
}

// counts returns the packets received, lost, late and the gaps.
func (r *recorder) counts() (received, lost, late, gaps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received, r.lost, r.late, r.gaps
}
