package call

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// testPacket is audio packet i of a synthesized stream: one 20 ms CELT
// fullband frame (TOC 0xF8) whose bytes also number it. Any bytes after a
// TOC are a decodable CELT frame; 0xFF 0xFE alone would be silence.
func testPacket(i int) []byte {
	return []byte{0xF8, 0xFF, 0xFE, byte(i >> 16), byte(i >> 8), byte(i)}
}

// synthOgg returns an Ogg Opus stream of n numbered 20 ms packets, and the
// packets.
func synthOgg(t testing.TB, n int) ([]byte, [][]byte) {
	t.Helper()
	var b bytes.Buffer
	w, err := NewOggWriter(&b, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for i := range n {
		p := testPacket(i)
		pkts = append(pkts, p)
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), pkts
}

func readAll(t testing.TB, b []byte) [][]byte {
	t.Helper()
	r, err := NewOggReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		p, err := r.ReadPacket()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("packet %d: %v", len(out), err)
		}
		out = append(out, p)
	}
}

func TestOggRoundTrip(t *testing.T) {
	b, want := synthOgg(t, 123)
	if diff := cmp.Diff(want, readAll(t, b)); diff != "" {
		t.Errorf("packets differ (-want +got):\n%s", diff)
	}
	// pion's reader agrees about the pages: checksums, headers, granules.
	r, head, err := oggreader.NewWith(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if head.Channels != 1 || head.SampleRate != opusRate {
		t.Errorf("OpusHead: %+v", head)
	}
	var last uint64
	pages := 0
	for {
		_, h, err := r.ParseNextPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = h.GranulePosition
		pages++
	}
	if last != 123*960 || pages != 1+3 { // OpusTags, then 50+50+23 packets
		t.Errorf("last granule %d, %d pages after OpusHead; want %d and 4", last, pages, 123*960)
	}
}

// rawPage builds one Ogg page.
func rawPage(flags byte, serial, seq uint32, granule uint64, lacing, payload []byte) []byte {
	p := make([]byte, pageHeaderLen)
	copy(p, "OggS")
	p[5] = flags
	binary.LittleEndian.PutUint64(p[6:], granule)
	binary.LittleEndian.PutUint32(p[14:], serial)
	binary.LittleEndian.PutUint32(p[18:], seq)
	p[26] = byte(len(lacing))
	p = append(append(p, lacing...), payload...)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(0, p))
	return p
}

func TestOggReaderSplitsPages(t *testing.T) {
	head := append([]byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00"), 0)
	tags := []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00")
	big := append([]byte{0xF8}, bytes.Repeat([]byte{7}, 600)...) // 601 bytes: lacing 255 255 91
	small := []byte{0xF8, 1, 2}
	var s bytes.Buffer
	s.Write(rawPage(flagFirst, 9, 0, 0, []byte{19}, head))
	s.Write(rawPage(0, 777, 0, 0, []byte{3}, []byte{1, 2, 3})) // another stream: skipped
	s.Write(rawPage(0, 9, 1, 0, []byte{byte(len(tags))}, tags))
	// Two packets on one page, then one that spans two pages.
	s.Write(rawPage(0, 9, 2, 1920, []byte{3, 3, 255}, append(append(append([]byte{}, small...), small...), big[:255]...)))
	s.Write(rawPage(flagContinued|flagLast, 9, 3, 2880, []byte{255, 91}, big[255:]))
	got := readAll(t, s.Bytes())
	if diff := cmp.Diff([][]byte{small, small, big}, got); diff != "" {
		t.Errorf("packets (-want +got):\n%s", diff)
	}

	bad := bytes.Clone(s.Bytes())
	bad[len(bad)-1] ^= 1
	r, err := NewOggReader(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = r.ReadPacket()
	}
	if !errors.Is(err, ErrBadOgg) {
		t.Errorf("a damaged page: %v, want ErrBadOgg", err)
	}
	if _, err := NewOggReader(bytes.NewReader([]byte("RIFF....WAVEfmt "))); !errors.Is(err, ErrBadOgg) {
		t.Errorf("a WAV file: %v, want ErrBadOgg", err)
	}
}

func TestPacketDuration(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		want time.Duration
	}{
		{[]byte{0xF8, 0xFF, 0xFE}, 20 * time.Millisecond},     // CELT FB 20 ms, one frame
		{[]byte{0xE0}, 2500 * time.Microsecond},               // CELT FB 2.5 ms, empty frame
		{[]byte{0x08, 1, 2}, 20 * time.Millisecond},           // SILK NB 20 ms
		{[]byte{0x11, 1, 2}, 80 * time.Millisecond},           // SILK NB 40 ms, two frames
		{[]byte{0x1B, 0x02, 1}, 120 * time.Millisecond},       // SILK NB 60 ms, code 3, two frames
		{[]byte{0x78, 1}, 20 * time.Millisecond},              // Hybrid FB 20 ms
		{[]byte{0xFB, 0x06}, 120 * time.Millisecond},          // CELT 20 ms ×6
		{[]byte{0x53, 0x03, 0, 0, 0}, 120 * time.Millisecond}, // SILK WB 40 ms ×3
	} {
		got, err := PacketDuration(tc.p)
		if err != nil || got != tc.want {
			t.Errorf("%x: %v, %v; want %v", tc.p, got, err, tc.want)
		}
	}
	for _, bad := range [][]byte{nil, {0xFB}, {0xFB, 0x00}, {0xFB, 0x07}, {0x1B, 0x03}} {
		if _, err := PacketDuration(bad); !errors.Is(err, ErrBadOpus) {
			t.Errorf("%x: %v, want ErrBadOpus", bad, err)
		}
	}
	var total int
	for _, p := range concealment(960*3 + 240 + 50) {
		n, err := packetSamples(p)
		if err != nil || len(p) != 1 {
			t.Fatalf("concealment packet %x: %v", p, err)
		}
		total += n
	}
	if total != 960*3+240 {
		t.Errorf("concealment lasts %d samples", total)
	}
}

func FuzzOggReader(f *testing.F) {
	b, _ := synthOgg(f, 60)
	f.Add(b)
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewOggReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10000 {
			if _, err := r.ReadPacket(); err != nil {
				return
			}
		}
	})
}

func FuzzPacketDuration(f *testing.F) {
	f.Add([]byte{0xF8, 0xFF, 0xFE})
	f.Add([]byte{0xFB, 0x06})
	f.Fuzz(func(t *testing.T, p []byte) {
		d, err := PacketDuration(p)
		if err == nil && (d <= 0 || d > 120*time.Millisecond) {
			t.Errorf("%x lasts %v", p, d)
		}
	})
}
