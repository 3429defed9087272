package call

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// ladder is the audio to send at lower bitrates (Media.SendLower), frame by
// frame. The CLI has no Opus encoder: where a tunnelled call's sender
// chooses a lower bitrate for a slow path, as a browser would set its
// encoder to, the call sends each frame from the version that fits.
type ladder struct {
	rates  []int      // bit/s of each version, ascending
	frames [][][]byte // frames[i][n]: frame n of version i
	index  []int      // of each version in Media.SendLower
}

// maxLadderFrames bounds what a lower version may hold in memory: an hour
// of 20 ms frames.
const maxLadderFrames = 180_000

// loadLadder reads the lower versions whole and measures their bitrates.
func loadLadder(rs []*OggReader) (*ladder, error) {
	type version struct {
		rate, index int
		frames      [][]byte
	}
	var vs []version
	for i, r := range rs {
		v := version{index: i}
		var bytes int
		var d time.Duration
		for {
			p, err := r.ReadPacket()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("lower version %d: %w", i+1, err)
			}
			if len(v.frames) == maxLadderFrames {
				return nil, fmt.Errorf("lower version %d: longer than %d frames", i+1, maxLadderFrames)
			}
			pd, _ := PacketDuration(p)
			if pd != frameDuration {
				return nil, fmt.Errorf("lower version %d: frames of %v, want %v (opusenc's default)", i+1, pd, frameDuration)
			}
			v.frames = append(v.frames, p)
			bytes += len(p)
			d += pd
		}
		if d == 0 {
			return nil, fmt.Errorf("lower version %d: no audio", i+1)
		}
		v.rate = int(float64(bytes*8) / d.Seconds())
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b version) int { return a.rate - b.rate })
	l := &ladder{}
	for _, v := range vs {
		l.rates = append(l.rates, v.rate)
		l.frames = append(l.frames, v.frames)
		l.index = append(l.index, v.index)
	}
	return l, nil
}

// pick returns frame n of the highest version whose bitrate fits rate
// (within a tenth: opusenc's variable bitrate strays from the one asked
// for), or of the lowest if none fits, and the version's index in
// Media.SendLower; ok is false past the versions' end, where the file
// itself is sent.
func (l *ladder) pick(n, rate int) (frame []byte, index int, ok bool) {
	if len(l.rates) == 0 {
		return nil, 0, false
	}
	i := 0
	for i+1 < len(l.rates) && l.rates[i+1] <= rate*11/10 {
		i++
	}
	if n >= len(l.frames[i]) {
		return nil, 0, false
	}
	return l.frames[i][n], l.index[i], true
}
