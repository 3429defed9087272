package quality

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WAV layout (RIFF, little-endian): "RIFF", size, "WAVE", then chunks of
// a 4-byte id, a 4-byte size and the body, padded to an even length. The
// "fmt " chunk: format tag (1 = integer PCM, 0xFFFE = extensible, whose
// sub-format GUID then begins with the real tag), channels, sample rate,
// byte rate, block align, bits per sample. The "data" chunk: the samples,
// channels interleaved.
const (
	wavPCM        = 1
	wavExtensible = 0xFFFE
)

// ReadWAV reads a WAV file of 16-bit integer PCM (also in the extensible
// format) and returns its samples scaled to [-1, 1) and its sample rate.
// Several channels are mixed down to one by averaging. Any other format
// (8, 24 or 32 bits, floating point, A-law, μ-law) is an error wrapping
// ErrFormat. A data chunk whose size runs past the end of the file (as
// streaming writers leave it) is read to the end of the file.
func ReadWAV(r io.Reader) (samples []float64, sampleRate int, err error) {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, 0, fmt.Errorf("WAV header: %w", err)
	}
	if string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("not a RIFF/WAVE file: %w", ErrFormat)
	}
	var (
		haveFmt  bool
		channels int
	)
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, 0, fmt.Errorf("WAV has no data chunk: %w", ErrFormat)
			}
			return nil, 0, fmt.Errorf("WAV chunk header: %w", err)
		}
		id, size := string(ch[0:4]), binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if size < 16 || size > 1<<10 {
				return nil, 0, fmt.Errorf("WAV fmt chunk of %d bytes: %w", size, ErrFormat)
			}
			body := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, body); err != nil {
				return nil, 0, fmt.Errorf("WAV fmt chunk: %w", err)
			}
			tag := binary.LittleEndian.Uint16(body[0:2])
			if tag == wavExtensible && size >= 26 {
				tag = binary.LittleEndian.Uint16(body[24:26])
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			sampleRate = int(binary.LittleEndian.Uint32(body[4:8]))
			bitsPerSample := binary.LittleEndian.Uint16(body[14:16])
			if tag != wavPCM {
				return nil, 0, fmt.Errorf("WAV format tag %#x, want integer PCM: %w", tag, ErrFormat)
			}
			if bitsPerSample != 16 {
				return nil, 0, fmt.Errorf("WAV with %d-bit samples, want 16: %w", bitsPerSample, ErrFormat)
			}
			if channels < 1 {
				return nil, 0, fmt.Errorf("WAV with %d channels: %w", channels, ErrFormat)
			}
			if sampleRate <= 0 {
				return nil, 0, fmt.Errorf("WAV at %d Hz: %w", sampleRate, ErrSampleRate)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, fmt.Errorf("WAV data before fmt chunk: %w", ErrFormat)
			}
			data, err := io.ReadAll(io.LimitReader(r, int64(size)))
			if err != nil {
				return nil, 0, fmt.Errorf("WAV data: %w", err)
			}
			return downmix(data, channels), sampleRate, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size%2)); err != nil {
				return nil, 0, fmt.Errorf("WAV %q chunk: %w", id, err)
			}
		}
	}
}

// downmix averages the channels of interleaved 16-bit samples; a partial
// last frame is dropped.
func downmix(data []byte, channels int) []float64 {
	frames := len(data) / (2 * channels)
	out := make([]float64, frames)
	for i := range out {
		var sum float64
		for c := range channels {
			at := 2 * (i*channels + c)
			sum += float64(int16(binary.LittleEndian.Uint16(data[at:])))
		}
		out[i] = sum / float64(channels) / 32768
	}
	return out
}

// WriteWAV writes samples as a mono 16-bit PCM WAV file at sampleRate Hz.
// Samples are scaled by 32768, rounded and clipped to the 16-bit range
// (NaN is written as 0).
func WriteWAV(w io.Writer, samples []float64, sampleRate int) error {
	if sampleRate <= 0 {
		return fmt.Errorf("write WAV at %d Hz: %w", sampleRate, ErrSampleRate)
	}
	dataSize := 2 * len(samples)
	if int64(dataSize) > math.MaxUint32-36 {
		return fmt.Errorf("write WAV: %d samples do not fit a RIFF file: %w", len(samples), ErrFormat)
	}
	var b bytes.Buffer
	b.Grow(44 + dataSize)
	le := binary.LittleEndian
	b.WriteString("RIFF")
	b.Write(le.AppendUint32(nil, uint32(36+dataSize)))
	b.WriteString("WAVEfmt ")
	b.Write(le.AppendUint32(nil, 16))
	b.Write(le.AppendUint16(nil, wavPCM))
	b.Write(le.AppendUint16(nil, 1)) // channels
	b.Write(le.AppendUint32(nil, uint32(sampleRate)))
	b.Write(le.AppendUint32(nil, uint32(2*sampleRate))) // byte rate
	b.Write(le.AppendUint16(nil, 2))                    // block align
	b.Write(le.AppendUint16(nil, 16))                   // bits per sample
	b.WriteString("data")
	b.Write(le.AppendUint32(nil, uint32(dataSize)))
	for _, s := range samples {
		v := math.Round(s * 32768)
		if math.IsNaN(v) {
			v = 0
		}
		v = max(math.MinInt16, min(math.MaxInt16, v))
		b.Write(le.AppendUint16(nil, uint16(int16(v))))
	}
	_, err := w.Write(b.Bytes())
	return err
}
