package quality

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	x := []float64{0, 0.5, -0.5, 1, -1, 2, -2, 1.0 / 32768, 0.25}
	var b bytes.Buffer
	if err := WriteWAV(&b, x, 16000); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 44+2*len(x) {
		t.Fatalf("%d bytes, want %d", b.Len(), 44+2*len(x))
	}
	y, rate, err := ReadWAV(&b)
	if err != nil || rate != 16000 {
		t.Fatalf("ReadWAV: %v, %d Hz", err, rate)
	}
	want := []float64{0, 0.5, -0.5, 32767.0 / 32768, -1, 32767.0 / 32768, -1, 1.0 / 32768, 0.25}
	if len(y) != len(want) {
		t.Fatalf("%d samples, want %d", len(y), len(want))
	}
	for i := range want {
		if y[i] != want[i] {
			t.Errorf("sample %d: %v, want %v", i, y[i], want[i])
		}
	}
	if err := WriteWAV(io.Discard, x, 0); !isErr(err, ErrSampleRate) {
		t.Errorf("0 Hz: err = %v, want ErrSampleRate", err)
	}
}

// wavFile builds a WAV file with the given fmt fields, an extra chunk
// before the data, and the data.
func wavFile(tag, channels uint16, rate uint32, bits uint16, data []byte, extensible bool) []byte {
	le := binary.LittleEndian
	var f bytes.Buffer
	f.WriteString("RIFF")
	f.Write(le.AppendUint32(nil, 0)) // size not checked
	f.WriteString("WAVE")
	f.WriteString("LIST") // an odd-sized chunk to skip, with its pad byte
	f.Write(le.AppendUint32(nil, 3))
	f.Write([]byte{'a', 'b', 'c', 0})
	f.WriteString("fmt ")
	fmtTag := tag
	size := uint32(16)
	if extensible {
		fmtTag, size = wavExtensible, 40
	}
	f.Write(le.AppendUint32(nil, size))
	f.Write(le.AppendUint16(nil, fmtTag))
	f.Write(le.AppendUint16(nil, channels))
	f.Write(le.AppendUint32(nil, rate))
	f.Write(le.AppendUint32(nil, rate*uint32(channels)*uint32(bits)/8))
	f.Write(le.AppendUint16(nil, channels*bits/8))
	f.Write(le.AppendUint16(nil, bits))
	if extensible {
		f.Write(le.AppendUint16(nil, 22))   // cbSize
		f.Write(le.AppendUint16(nil, bits)) // valid bits
		f.Write(le.AppendUint32(nil, 4))    // channel mask
		f.Write(le.AppendUint16(nil, tag))  // sub-format GUID, first 2 bytes
		f.Write(make([]byte, 14))
	}
	f.WriteString("data")
	f.Write(le.AppendUint32(nil, uint32(len(data))))
	f.Write(data)
	return f.Bytes()
}

func pcm16(v ...int16) []byte {
	var b []byte
	for _, s := range v {
		b = binary.LittleEndian.AppendUint16(b, uint16(s))
	}
	return b
}

func TestReadWAVFormats(t *testing.T) {
	// Stereo is mixed down by averaging; a trailing half frame is dropped.
	stereo := wavFile(wavPCM, 2, 48000, 16, append(pcm16(16384, 0, -32768, -32768, 100, 300), 7, 0), false)
	x, rate, err := ReadWAV(bytes.NewReader(stereo))
	if err != nil || rate != 48000 {
		t.Fatalf("stereo: %v, %d Hz", err, rate)
	}
	if want := []float64{0.25, -1, 200.0 / 32768}; len(x) != 3 || x[0] != want[0] || x[1] != want[1] || x[2] != want[2] {
		t.Errorf("stereo: %v, want %v", x, want)
	}
	// Extensible format with PCM inside (opusdec writes it for some layouts).
	ext := wavFile(wavPCM, 1, 16000, 16, pcm16(-16384), true)
	if x, rate, err := ReadWAV(bytes.NewReader(ext)); err != nil || rate != 16000 || len(x) != 1 || x[0] != -0.5 {
		t.Errorf("extensible PCM: %v, %d, %v", x, rate, err)
	}
	// A data size running past the end (streamed WAV) reads to the end.
	streamed := wavFile(wavPCM, 1, 22050, 16, pcm16(1, 2, 3), false)
	binary.LittleEndian.PutUint32(streamed[len(streamed)-6-4:], 0xFFFFFFFF)
	if x, _, err := ReadWAV(bytes.NewReader(streamed)); err != nil || len(x) != 3 {
		t.Errorf("streamed: %d samples, %v; want 3", len(x), err)
	}

	for _, c := range []struct {
		name string
		file []byte
	}{
		{"8-bit", wavFile(wavPCM, 1, 8000, 8, []byte{1, 2}, false)},
		{"24-bit", wavFile(wavPCM, 1, 48000, 24, make([]byte, 6), false)},
		{"float", wavFile(3, 1, 48000, 32, make([]byte, 8), false)},
		{"extensible float", wavFile(3, 1, 48000, 32, make([]byte, 8), true)},
		{"A-law", wavFile(6, 1, 8000, 8, []byte{1}, false)},
		{"no channels", wavFile(wavPCM, 0, 8000, 16, nil, false)},
		{"not RIFF", []byte("RIFX\x00\x00\x00\x00WAVE")},
		{"no data", wavFile(wavPCM, 1, 8000, 16, nil, false)[:12+12+24]},
	} {
		if _, _, err := ReadWAV(bytes.NewReader(c.file)); !isErr(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", c.name, err)
		}
	}
	if _, _, err := ReadWAV(bytes.NewReader(wavFile(wavPCM, 1, 0, 16, nil, false))); !isErr(err, ErrSampleRate) {
		t.Errorf("0 Hz: err = %v, want ErrSampleRate", err)
	}
	if _, _, err := ReadWAV(bytes.NewReader([]byte("RIFF"))); err == nil {
		t.Error("truncated header: no error")
	}
}

func FuzzReadWAV(f *testing.F) {
	var b bytes.Buffer
	WriteWAV(&b, []float64{0.1, -0.2}, 8000)
	f.Add(b.Bytes())
	f.Add(wavFile(wavPCM, 2, 48000, 16, pcm16(1, 2, 3, 4), true))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, rate, err := ReadWAV(bytes.NewReader(data))
		if err == nil && (rate <= 0 || len(x) > len(data)/2) {
			t.Fatalf("%d samples at %d Hz from %d bytes", len(x), rate, len(data))
		}
	})
}
