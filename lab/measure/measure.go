// Package measure turns what a lab call leaves behind (the packet traces of
// both sides, written by "parley call/answer --trace", and the Ogg Opus
// file that was sent) into what a listener would have heard: which frames
// were played, which were lost or came too late, the longest gap, and the
// delay the path added.
//
// The receiver is modelled, not observed: tier 1's CLI records every packet
// that arrives, however late, but a real receiver plays each frame at a
// fixed moment after its sender captured it and drops what comes later. The
// model gives the call one playout delay, the 95th percentile of its
// packets' one-way delays (at least Options.MinDelay, at most
// Options.MaxDelay): about what an adaptive jitter buffer such as WebRTC's
// NetEq settles on for a steady path, without its adaptation. A frame is
// played if its packet arrived no later than its send time plus that delay;
// the rest are lost to the listener and concealed. Both sides run on one
// machine (the lab's namespaces share its clock), so one-way delays are
// measured directly.
//
// PlayedOgg writes the audio the listener would have heard: the sent
// packets that were played, and concealment frames (which decoders treat
// as lost) for the others, so that STOI can compare it with what was sent.
package measure

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/parleychat/parley/call"
)

// Packet is one line of a --trace file.
type Packet struct {
	Seq       uint16
	Timestamp uint32 // RTP, 48 kHz
	Size      int
	At        time.Time
	Version   int // of a sent frame: the file it came from, 0 for --send, i for the i-th of --send-lower
}

// End returns the time of the last packet of a trace, sent or received:
// about when that side's call ended.
func End(sent, received []Packet) time.Time {
	var end time.Time
	for _, ps := range [][]Packet{sent, received} {
		for _, p := range ps {
			if p.At.After(end) {
				end = p.At
			}
		}
	}
	return end
}

// ReadTrace reads a --trace file: the packets sent and those received, in
// file order (leaving out the frames played, see ReadPlayed).
func ReadTrace(r io.Reader) (sent, received []Packet, err error) {
	t, err := ReadTraces(r)
	return t.Sent, t.Received, err
}

// Trace is a --trace file: the packets sent ("out"), received ("in") and,
// for a tunnelled call, the frames its jitter buffer played ("play", at
// the moment it played them), each in file order.
type Trace struct {
	Sent, Received, Played []Packet
}

// ReadTraces reads a --trace file. Its last line, if cut short (the
// process was killed while writing it), is left out.
func ReadTraces(r io.Reader) (Trace, error) {
	var t Trace
	var bad error
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		var l struct {
			Dir  string `json:"dir"`
			Seq  *int   `json:"seq"`
			TS   uint32 `json:"ts"`
			Size int    `json:"size"`
			At   int64  `json:"at_us"`
			Ver  int    `json:"version"`
		}
		if bad != nil { // a broken line that was not the last
			return t, bad
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			// The last line may be cut short by a process killed while
			// writing it: only that one is forgiven.
			bad = fmt.Errorf("trace line %d: %w", n, err)
			continue
		}
		if l.Seq == nil || *l.Seq < 0 || *l.Seq > 0xFFFF || l.At <= 0 {
			return t, fmt.Errorf("trace line %d: no valid seq or at_us", n)
		}
		p := Packet{Seq: uint16(*l.Seq), Timestamp: l.TS, Size: l.Size, At: time.UnixMicro(l.At), Version: l.Ver}
		switch l.Dir {
		case "out":
			t.Sent = append(t.Sent, p)
		case "in":
			t.Received = append(t.Received, p)
		case "play":
			t.Played = append(t.Played, p)
		default:
			return t, fmt.Errorf("trace line %d: dir %q, want out, in or play", n, l.Dir)
		}
	}
	return t, sc.Err()
}

// Options tune the receiver model.
type Options struct {
	// MinDelay and MaxDelay bound the playout delay (defaults 20 ms and
	// 1 s: WebRTC's jitter buffer keeps at least a frame, and gives up
	// on packets later than about a second).
	MinDelay, MaxDelay time.Duration
	// Percentile of the one-way delays that sets the playout delay
	// (default 95).
	Percentile float64
	// Until, if set, is when the receiver stopped listening (the call
	// ended there): packets sent after it are not counted, nor those sent
	// less than the playout delay before it, which were still waiting to
	// be played when the call ended: the hang-up, not the path, kept them
	// from the listener.
	Until time.Time
}

// Playout is what the modelled receiver made of a call, in the order the
// packets were sent.
type Playout struct {
	Sent     int // packets sent
	Arrived  int // distinct packets that arrived
	Played   int // arrived in time to be played
	Late     int // arrived, after their playout time
	Lost     int // never arrived
	Repeated int // arrived more than once (counted once)
	// PlayedPct is Played/Sent in percent.
	PlayedPct float64
	// LongestGap is the longest run of frames not played.
	LongestGap time.Duration
	// Delay is the playout delay: from sending a frame to playing it.
	Delay time.Duration
	// MedianDelay and P95Delay are of the one-way delays of the packets
	// that arrived.
	MedianDelay, P95Delay time.Duration
	// Heard says, for each packet sent, whether it was played.
	Heard []bool
	// Duration is the audio sent.
	Duration time.Duration
}

// Analyze models the receiver of the packets sent, of which received
// arrived.
func Analyze(sent, received []Packet, o Options) Playout {
	o.defaults()
	sent = o.cut(sent)
	p := Playout{Sent: len(sent), Heard: make([]bool, len(sent))}
	if len(sent) == 0 {
		return p
	}
	arrival, delays := p.arrivals(sent, seqIndex(sent), received)
	if len(delays) > 0 {
		p.Delay = min(max(percentile(delays, o.Percentile), o.MinDelay), o.MaxDelay)
	}
	if !o.Until.IsZero() {
		if kept := cutAt(sent, o.Until.Add(-p.Delay)); len(kept) < len(sent) {
			o.Until = time.Time{}
			return Analyze(kept, received, o)
		}
	}
	for i, s := range sent {
		switch {
		case arrival[i].IsZero():
		case arrival[i].Sub(s.At) <= p.Delay:
			p.Heard[i] = true
			p.Played++
		default:
			p.Late++
		}
	}
	p.finish(sent)
	return p
}

// Observe is Analyze for a receiver whose playout is known: played are the
// frames its jitter buffer played, when it played them (a tunnelled call's
// "play" trace). A frame that arrived and was not played came too late for
// it. The playout delay is the median, over the frames played, of the time
// from sending a frame to playing it.
func Observe(sent, received, played []Packet, o Options) Playout {
	o.defaults()
	sent = o.cut(sent)
	if d, ok := endDelay(sent, played); ok && !o.Until.IsZero() {
		sent = cutAt(sent, o.Until.Add(-d))
	}
	p := Playout{Sent: len(sent), Heard: make([]bool, len(sent))}
	if len(sent) == 0 {
		return p
	}
	index := seqIndex(sent)
	arrival, _ := p.arrivals(sent, index, received)
	var delays []time.Duration
	for _, r := range played {
		i, ok := index[r.Seq]
		if !ok || r.Timestamp != sent[i].Timestamp || p.Heard[i] {
			continue
		}
		p.Heard[i] = true
		p.Played++
		delays = append(delays, r.At.Sub(sent[i].At))
	}
	for i := range sent {
		if !p.Heard[i] && !arrival[i].IsZero() {
			p.Late++
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		p.Delay = percentile(delays, 50)
	}
	p.finish(sent)
	return p
}

func (o *Options) defaults() {
	if o.MinDelay <= 0 {
		o.MinDelay = 20 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Second
	}
	if o.Percentile <= 0 || o.Percentile > 100 {
		o.Percentile = 95
	}
}

// cut leaves out the packets sent after o.Until.
func (o *Options) cut(sent []Packet) []Packet {
	if o.Until.IsZero() {
		return sent
	}
	return cutAt(sent, o.Until)
}

// cutAt leaves out the packets sent after t.
func cutAt(sent []Packet, t time.Time) []Packet {
	n := len(sent)
	for n > 0 && sent[n-1].At.After(t) {
		n--
	}
	return sent[:n]
}

// endDelay is the playout delay at the end of the call: from sending to
// playing the last frame played.
func endDelay(sent, played []Packet) (time.Duration, bool) {
	index := seqIndex(sent)
	var last Packet
	var d time.Duration
	for _, r := range played {
		if i, ok := index[r.Seq]; ok && r.Timestamp == sent[i].Timestamp && !r.At.Before(last.At) {
			last, d = r, r.At.Sub(sent[i].At)
		}
	}
	return d, !last.At.IsZero()
}

// seqIndex maps the sequence numbers of sent to their positions.
func seqIndex(sent []Packet) map[uint16]int {
	index := make(map[uint16]int, len(sent))
	for i, s := range sent {
		index[s.Seq] = i
	}
	return index
}

// arrivals pairs received with sent (index is seqIndex(sent)): when each
// packet sent first arrived (zero if it never did), and the sorted one-way
// delays of those that did. It counts Arrived, Lost, Repeated, MedianDelay
// and P95Delay.
func (p *Playout) arrivals(sent []Packet, index map[uint16]int, received []Packet) ([]time.Time, []time.Duration) {
	arrival := make([]time.Time, len(sent))
	var delays []time.Duration
	for _, r := range received {
		i, ok := index[r.Seq]
		if !ok || r.Timestamp != sent[i].Timestamp {
			continue // not one of ours (or a sequence number reused after a wrap)
		}
		if !arrival[i].IsZero() {
			p.Repeated++
			continue
		}
		arrival[i] = r.At
		delays = append(delays, r.At.Sub(sent[i].At))
	}
	p.Arrived = len(delays)
	p.Lost = p.Sent - p.Arrived
	if len(delays) > 0 {
		slices.Sort(delays)
		p.MedianDelay = percentile(delays, 50)
		p.P95Delay = percentile(delays, 95)
	}
	return arrival, delays
}

// finish counts the longest gap, PlayedPct and Duration from Heard.
func (p *Playout) finish(sent []Packet) {
	frame := 20 * time.Millisecond
	if len(sent) > 1 {
		if d := time.Duration(sent[1].Timestamp-sent[0].Timestamp) * time.Second / 48000; d > 0 && d <= 120*time.Millisecond {
			frame = d
		}
	}
	var gap, run time.Duration
	for _, h := range p.Heard {
		if h {
			run = 0
		} else {
			run += frame
			gap = max(gap, run)
		}
	}
	p.LongestGap = gap
	p.PlayedPct = 100 * float64(p.Played) / float64(p.Sent)
	p.Duration = time.Duration(len(sent)) * frame
}

// percentile of sorted d, by the nearest rank.
func percentile(d []time.Duration, pct float64) time.Duration {
	i := int(pct/100*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// MixOgg writes to w, as an Ogg Opus stream, the frames a call sent when
// it sent each from one of several versions of the same audio: frame i
// of versions[from[i]] (versions[0] is the file itself, the others lower
// bitrates of it; a frame beyond from, or beyond its version, comes from
// versions[0]). The streams are read from their start.
func MixOgg(versions []io.Reader, from []int, w io.Writer) error {
	frames := make([][][]byte, len(versions))
	for v, src := range versions {
		r, err := call.NewOggReader(src)
		if err != nil {
			return fmt.Errorf("version %d: %w", v, err)
		}
		for {
			p, err := r.ReadPacket()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
			frames[v] = append(frames[v], p)
		}
	}
	out, err := call.NewOggWriter(w, 1)
	if err != nil {
		return err
	}
	for i, p := range frames[0] {
		if i < len(from) && from[i] > 0 && from[i] < len(frames) && i < len(frames[from[i]]) {
			p = frames[from[i]][i]
		}
		if err := out.WritePacket(p); err != nil {
			return err
		}
	}
	return out.Close()
}

// PlayedOgg writes to w, as an Ogg Opus stream, the audio of sent (the Ogg
// Opus file the call sent, read from its start) as the listener would have
// heard it: packet i as sent if heard[i], else concealment frames of the
// same duration. Packets of sent beyond heard (the call ended first) are
// left out.
func PlayedOgg(sent io.Reader, heard []bool, w io.Writer) error {
	r, err := call.NewOggReader(sent)
	if err != nil {
		return err
	}
	out, err := call.NewOggWriter(w, r.Channels())
	if err != nil {
		return err
	}
	for i := range heard {
		pkt, err := r.ReadPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if heard[i] {
			err = out.WritePacket(pkt)
		} else {
			d, _ := call.PacketDuration(pkt)
			for _, c := range call.Concealment(d) {
				if err = out.WritePacket(c); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return out.Close()
}
