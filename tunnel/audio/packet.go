package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the packet format's version, its first byte. Bump it when a
// packet of the new format would be misread by a decoder of this one;
// decoders reject other versions (and unknown flags) rather than guess.
const Version = 1

// Limits of the packet format; doc.go explains each field.
const (
	// MaxFrames bounds the frames of one packet.
	MaxFrames = 16
	// MaxFrameLen is the longest Opus packet (RFC 6716 section 3.2.1:
	// 1275 bytes of frame data).
	MaxFrameLen = 1275
	// MaxPacket bounds an encoded packet: SFrame's header (at most 17
	// bytes) and tag (10 bytes for AES_128_CTR_HMAC_SHA256_80) around it
	// still fit a tunnel media payload (tunnel.MaxMedia, 1100 bytes).
	MaxPacket = 1072
	// MaxSeq bounds frame sequence numbers, so that JavaScript numbers
	// hold them exactly (2⁵³−1).
	MaxSeq = 1<<53 - 1
	// MaxMillis bounds every field in milliseconds (49 days).
	MaxMillis = 1<<32 - 1
)

const flagFeedback = 1 << 0

// Errors of ParsePacket. Each returned error wraps ErrMalformed and one of
// these says why, with the offending value.
var (
	ErrMalformed = errors.New("audio: malformed packet")
	ErrVersion   = errors.New("unknown version")
	ErrTooLong   = errors.New("packet too long")
	ErrTruncated = errors.New("packet truncated")
	ErrTrailing  = errors.New("trailing bytes")
)

// Packet is one packet of the tunnel's audio: the plaintext that SFrame
// encrypts. Frames are consecutive Opus packets, newest first: Frames[i]
// has sequence number Seq-i. The first Fresh frames are new in this
// packet; the others repeat frames sent before, to repair losses.
type Packet struct {
	Seq    uint64   // sequence number of Frames[0], the newest frame
	Clock  uint32   // sender clock: milliseconds since the sender's first frame
	Fresh  int      // frames new in this packet: 1..len(Frames)
	Frames [][]byte // newest first; an empty frame means the sender had no audio for it
	// Feedback is the sender's report on the audio it receives, for the
	// other direction; nil if it has none yet.
	Feedback *Feedback

	fb Feedback // storage for Feedback, so that Parse does not allocate
}

// Feedback is a receiver's report on the audio it receives, carried in the
// packets it sends the other way. From it the other side's Sender adapts
// its redundancy, bundling and bitrate, and measures the round trip as
// RTCP's sender and receiver reports do (RFC 3550 section 6.4.1): RTT =
// now − EchoMs − HeldMs, on the sender's own clock.
type Feedback struct {
	Highest  uint64 // highest frame sequence number received
	Loss     uint8  // frames lost before repair over the last 100 slots, in 1/256 (255 for all)
	Burst    uint8  // longest run of frames lost before repair over those slots
	QueueMs  uint32 // queueing delay: one-way delay now above its recent minimum
	TargetMs uint32 // the receiver's jitter buffer delay target
	EchoMs   uint32 // the Clock of the latest packet received
	HeldMs   uint32 // milliseconds since that packet arrived
}

// Check reports whether ParsePacket would accept p's encoding.
func (p *Packet) Check() error {
	n := len(p.Frames)
	switch {
	case n < 1 || n > MaxFrames:
		return fmt.Errorf("%w: %d frames, want 1..%d", ErrMalformed, n, MaxFrames)
	case p.Fresh < 1 || p.Fresh > n:
		return fmt.Errorf("%w: %d fresh frames of %d", ErrMalformed, p.Fresh, n)
	case p.Seq > MaxSeq:
		return fmt.Errorf("%w: sequence number %d above %d", ErrMalformed, p.Seq, uint64(MaxSeq))
	case p.Seq < uint64(n-1):
		return fmt.Errorf("%w: %d frames before sequence number 0", ErrMalformed, n-1-int(p.Seq))
	}
	for i, f := range p.Frames {
		if len(f) > MaxFrameLen {
			return fmt.Errorf("%w: frame %d is %d bytes, at most %d", ErrMalformed, p.Seq-uint64(i), len(f), MaxFrameLen)
		}
	}
	if fb := p.Feedback; fb != nil && fb.Highest > MaxSeq {
		return fmt.Errorf("%w: feedback's highest sequence number %d above %d", ErrMalformed, fb.Highest, uint64(MaxSeq))
	}
	if l := p.Len(); l > MaxPacket {
		return fmt.Errorf("%w: %w: %d bytes, at most %d", ErrMalformed, ErrTooLong, l, MaxPacket)
	}
	return nil
}

// Len is the length of p's encoding.
func (p *Packet) Len() int {
	l := 2 + uvarintLen(p.Seq) + uvarintLen(uint64(p.Clock)) + 2
	for _, f := range p.Frames {
		l += uvarintLen(uint64(len(f))) + len(f)
	}
	if fb := p.Feedback; fb != nil {
		l += uvarintLen(fb.Highest) + 2 + uvarintLen(uint64(fb.QueueMs)) + uvarintLen(uint64(fb.TargetMs)) +
			uvarintLen(uint64(fb.EchoMs)) + uvarintLen(uint64(fb.HeldMs))
	}
	return l
}

// Append appends p's encoding (doc.go) to b. It encodes p as it is: a
// Packet that Check rejects encodes to bytes that ParsePacket rejects.
func (p *Packet) Append(b []byte) []byte {
	var flags byte
	if p.Feedback != nil {
		flags |= flagFeedback
	}
	b = append(b, Version, flags)
	b = binary.AppendUvarint(b, p.Seq)
	b = binary.AppendUvarint(b, uint64(p.Clock))
	b = append(b, byte(len(p.Frames)), byte(p.Fresh))
	for _, f := range p.Frames {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	if fb := p.Feedback; fb != nil {
		b = binary.AppendUvarint(b, fb.Highest)
		b = append(b, fb.Loss, fb.Burst)
		b = binary.AppendUvarint(b, uint64(fb.QueueMs))
		b = binary.AppendUvarint(b, uint64(fb.TargetMs))
		b = binary.AppendUvarint(b, uint64(fb.EchoMs))
		b = binary.AppendUvarint(b, uint64(fb.HeldMs))
	}
	return b
}

// ParsePacket decodes a packet. Its frames alias b.
func ParsePacket(b []byte) (*Packet, error) {
	p := new(Packet)
	if err := p.Parse(b); err != nil {
		return nil, err
	}
	return p, nil
}

// Parse decodes b into p, reusing p's storage; p's frames alias b. On
// error p is left in an unspecified state.
func (p *Packet) Parse(b []byte) error {
	if len(b) > MaxPacket {
		return fmt.Errorf("%w: %w: %d bytes, at most %d", ErrMalformed, ErrTooLong, len(b), MaxPacket)
	}
	r := reader{b: b}
	if v := r.byte("version"); r.err == nil && v != Version {
		return fmt.Errorf("%w: %w %d, want %d", ErrMalformed, ErrVersion, v, Version)
	}
	flags := r.byte("flags")
	if r.err == nil && flags&^flagFeedback != 0 {
		return fmt.Errorf("%w: unknown flags %#02x", ErrMalformed, flags&^flagFeedback)
	}
	p.Seq = r.uvarint("sequence number", MaxSeq)
	p.Clock = uint32(r.uvarint("clock", MaxMillis))
	n := int(r.byte("frame count"))
	p.Fresh = int(r.byte("fresh count"))
	if r.err != nil {
		return r.err
	}
	switch {
	case n < 1 || n > MaxFrames:
		return fmt.Errorf("%w: %d frames, want 1..%d", ErrMalformed, n, MaxFrames)
	case p.Fresh < 1 || p.Fresh > n:
		return fmt.Errorf("%w: %d fresh frames of %d", ErrMalformed, p.Fresh, n)
	case p.Seq < uint64(n-1):
		return fmt.Errorf("%w: %d frames before sequence number 0", ErrMalformed, n-1-int(p.Seq))
	}
	p.Frames = p.Frames[:0]
	for i := range n {
		l := int(r.uvarint("frame length", MaxFrameLen))
		f := r.bytes(l, "frame")
		if r.err != nil {
			return fmt.Errorf("%w (frame %d of %d)", r.err, i+1, n)
		}
		p.Frames = append(p.Frames, f)
	}
	p.Feedback = nil
	if flags&flagFeedback != 0 {
		fb := &p.fb
		fb.Highest = r.uvarint("feedback's highest sequence number", MaxSeq)
		fb.Loss = r.byte("feedback's loss")
		fb.Burst = r.byte("feedback's burst")
		fb.QueueMs = uint32(r.uvarint("feedback's queueing delay", MaxMillis))
		fb.TargetMs = uint32(r.uvarint("feedback's target delay", MaxMillis))
		fb.EchoMs = uint32(r.uvarint("feedback's echo", MaxMillis))
		fb.HeldMs = uint32(r.uvarint("feedback's held time", MaxMillis))
		if r.err != nil {
			return r.err
		}
		p.Feedback = fb
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %w: %d after the packet", ErrMalformed, ErrTrailing, len(r.b))
	}
	return nil
}

// reader decodes fields, keeping the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 1 {
		r.err = fmt.Errorf("%w: %w in the %s", ErrMalformed, ErrTruncated, what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: %w in the %s: %d bytes of %d", ErrMalformed, ErrTruncated, what, len(r.b), n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// uvarint reads an unsigned LEB128 number (as encoding/binary writes it)
// in its shortest form, at most max.
func (r *reader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; ; i++ {
		if i == len(r.b) {
			r.err = fmt.Errorf("%w: %w in the %s", ErrMalformed, ErrTruncated, what)
			return 0
		}
		c := r.b[i]
		if i == 9 || i == 8 && c > 1 {
			r.err = fmt.Errorf("%w: the %s overflows 64 bits", ErrMalformed, what)
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				r.err = fmt.Errorf("%w: the %s is not in its shortest form", ErrMalformed, what)
				return 0
			}
			if v > max {
				r.err = fmt.Errorf("%w: the %s %d is above %d", ErrMalformed, what, v, max)
				return 0
			}
			r.b = r.b[i+1:]
			return v
		}
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
