package call

import (
	"fmt"
	"time"
)

// Opus packet durations, from the TOC byte that starts every Opus packet.
// https://www.rfc-editor.org/rfc/rfc6716#section-3.1

// opusRate is the RTP and Ogg clock of Opus, whatever the coded bandwidth
// (RFC 7587 section 4.1, RFC 7845 section 4).
const opusRate = 48000

// frameSamples is the duration of one frame, in 48 kHz samples, for each of
// the 32 configurations of the TOC byte (RFC 6716 section 3.1, Table 2).
var frameSamples = [32]int{
	// SILK-only NB, MB, WB: 10, 20, 40, 60 ms
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
	// Hybrid SWB, FB: 10, 20 ms
	480, 960, 480, 960,
	// CELT-only NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
}

// maxPacketSamples is 120 ms, the longest an Opus packet may last (RFC 6716
// section 3.2.5).
const maxPacketSamples = 120 * opusRate / 1000

// packetSamples returns the duration of the Opus packet p in 48 kHz samples.
// It checks the frame count (RFC 6716 section 3.2, codes 0 to 3) but not
// the frame lengths inside.
func packetSamples(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrBadOpus)
	}
	toc := p[0]
	frames := 0
	switch toc & 3 {
	case 0: // one frame
		frames = 1
	case 1, 2: // two frames, equal or different sizes
		frames = 2
	case 3: // an arbitrary number of frames, counted in the next byte (section 3.2.5)
		if len(p) < 2 {
			return 0, fmt.Errorf("%w: code 3 without a frame count", ErrBadOpus)
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0, fmt.Errorf("%w: zero frames", ErrBadOpus)
		}
	}
	n := frames * frameSamples[toc>>3]
	if n > maxPacketSamples {
		return 0, fmt.Errorf("%w: %d frames of %d samples last over 120 ms", ErrBadOpus, frames, frameSamples[toc>>3])
	}
	return n, nil
}

// PacketDuration returns how long the Opus packet p plays.
func PacketDuration(p []byte) (time.Duration, error) {
	n, err := packetSamples(p)
	return samplesDuration(n), err
}

func samplesDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / opusRate
}

// Concealment returns Opus packets that together last d (rounded down to
// 2.5 ms) and that a decoder conceals as lost: what a recording holds where
// packets never came.
func Concealment(d time.Duration) [][]byte {
	return concealment(int(d * opusRate / time.Second))
}

// concealment returns Opus packets, of TOC bytes alone, that together last
// n samples (rounded down to 2.5 ms): each is one CELT fullband frame of
// zero bytes. A frame of length zero means that nothing was coded for it
// (RFC 6716 section 3.2.1), and decoders conceal it as a lost frame. The
// recording puts them where packets never came.
func concealment(n int) [][]byte {
	const (
		toc20ms  = 31 << 3 // config 31: CELT FB 20 ms, mono, code 0
		toc2_5ms = 28 << 3 // config 28: CELT FB 2.5 ms
	)
	var out [][]byte
	for ; n >= 960; n -= 960 {
		out = append(out, []byte{toc20ms})
	}
	for ; n >= 120; n -= 120 {
		out = append(out, []byte{toc2_5ms})
	}
	return out
}
