package audio

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The example of doc.go, byte for byte.
func TestPacketExample(t *testing.T) {
	p := &Packet{Seq: 5, Clock: 100, Fresh: 1, Frames: [][]byte{{0xAA, 0xBB}, {}}}
	got := hex.EncodeToString(p.Append(nil))
	if want := "0100056402010" + "2aabb00"; got != want {
		t.Fatalf("encoding: %s, want %s", got, want)
	}
	if p.Len() != len(got)/2 {
		t.Errorf("Len %d, encoding %d bytes", p.Len(), len(got)/2)
	}
}

var cmpPacket = cmp.Options{cmpopts.IgnoreUnexported(Packet{}), cmpopts.EquateEmpty()}

func TestPacketRoundTrip(t *testing.T) {
	for _, p := range []*Packet{
		{Seq: 0, Fresh: 1, Frames: [][]byte{{1}}},
		{Seq: 1000, Clock: 123456, Fresh: 2, Frames: [][]byte{{1, 2, 3}, nil, bytes.Repeat([]byte{9}, 300)}},
		{Seq: MaxSeq, Clock: MaxMillis, Fresh: 16, Frames: make([][]byte, 16),
			Feedback: &Feedback{Highest: MaxSeq, Loss: 255, Burst: 7, QueueMs: 1, TargetMs: 200, EchoMs: MaxMillis, HeldMs: 3}},
		{Seq: 15, Fresh: 1, Frames: [][]byte{bytes.Repeat([]byte{7}, 1000)}, Feedback: &Feedback{}},
	} {
		if err := p.Check(); err != nil {
			t.Fatalf("Check: %v", err)
		}
		b := p.Append(nil)
		if len(b) != p.Len() {
			t.Errorf("Len %d, encoding %d bytes", p.Len(), len(b))
		}
		q, err := ParsePacket(b)
		if err != nil {
			t.Fatalf("ParsePacket(%x): %v", b, err)
		}
		if d := cmp.Diff(p, q, cmpPacket); d != "" {
			t.Errorf("round trip (-sent +parsed):\n%s", d)
		}
	}
}

func TestParsePacketRejects(t *testing.T) {
	valid := (&Packet{Seq: 300, Clock: 5, Fresh: 1, Frames: [][]byte{{1, 2}, {3}}, Feedback: &Feedback{Highest: 9}}).Append(nil)
	long := (&Packet{Seq: 1, Fresh: 1, Frames: [][]byte{make([]byte, 600), make([]byte, 600)}}).Append(nil)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated in the version"},
		{"version", []byte{2, 0, 0, 0, 1, 1, 0}, "unknown version 2"},
		{"flags", []byte{1, 2, 0, 0, 1, 1, 0}, "unknown flags"},
		{"no frames", []byte{1, 0, 0, 0, 0, 1}, "0 frames"},
		{"17 frames", []byte{1, 0, 20, 0, 17, 1}, "17 frames"},
		{"fresh 0", []byte{1, 0, 0, 0, 1, 0, 0}, "0 fresh frames"},
		{"fresh > n", []byte{1, 0, 5, 0, 1, 2, 0}, "2 fresh frames of 1"},
		{"before seq 0", []byte{1, 0, 0, 0, 2, 1, 0, 0}, "before sequence number 0"},
		{"frame too long", []byte{1, 0, 0, 0, 1, 1, 0xfc, 0x09}, "frame length 1276 is above 1275"},
		{"frame truncated", []byte{1, 0, 0, 0, 1, 1, 3, 1, 2}, "truncated in the frame"},
		{"varint not shortest", []byte{1, 0, 0x80, 0, 0, 1, 1, 0}, "not in its shortest form"},
		{"varint overflow", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, "overflows"},
		{"seq above 2^53-1", []byte{1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 1, 1, 0}, "above 9007199254740991"},
		{"clock above 2^32-1", []byte{1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 1, 0}, "clock 4294967296 is above"},
		{"feedback truncated", valid[:len(valid)-1], "truncated in the feedback's held time"},
		{"trailing", append(append([]byte{}, valid...), 0), "trailing bytes"},
		{"too long", append(long, make([]byte, MaxPacket)...), "packet too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePacket(tc.b)
			if err == nil {
				t.Fatalf("ParsePacket(%x) = %+v, want an error", tc.b, p)
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrMalformed saying %q", err, tc.want)
			}
		})
	}
	if _, err := ParsePacket(valid); err != nil {
		t.Errorf("the valid packet: %v", err)
	}
}

func TestPacketParseReuses(t *testing.T) {
	var p Packet
	b := (&Packet{Seq: 9, Fresh: 2, Frames: [][]byte{{1}, {2}, {3}}, Feedback: &Feedback{Loss: 3}}).Append(nil)
	c := (&Packet{Seq: 10, Fresh: 1, Frames: [][]byte{{4}}}).Append(nil)
	if err := p.Parse(b); err != nil || p.Feedback == nil || p.Feedback.Loss != 3 {
		t.Fatalf("Parse: %v, %+v", err, p)
	}
	allocs := testing.AllocsPerRun(100, func() {
		p.Parse(b)
		p.Parse(c)
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %v times", allocs)
	}
	if p.Feedback != nil || len(p.Frames) != 1 {
		t.Errorf("after a packet without feedback: %+v", p)
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add([]byte{1, 0, 5, 0x64, 2, 1, 2, 0xAA, 0xBB, 0})
	f.Add((&Packet{Seq: 1 << 40, Clock: 77, Fresh: 3, Frames: [][]byte{{1}, {2, 2}, nil, {4, 4, 4, 4}},
		Feedback: &Feedback{Highest: 12, Loss: 20, Burst: 3, QueueMs: 140, TargetMs: 80, EchoMs: 900, HeldMs: 12}}).Append(nil))
	f.Add([]byte{1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := p.Check(); err != nil {
			t.Fatalf("parsed a packet that Check rejects: %v", err)
		}
		again := p.Append(nil)
		if !bytes.Equal(again, b) { // the encoding is canonical
			t.Fatalf("re-encoded %x as %x", b, again)
		}
		q, err := ParsePacket(again)
		if err != nil {
			t.Fatalf("re-encoded packet: %v", err)
		}
		if d := cmp.Diff(p, q, cmpPacket); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
		// Whatever it says, a jitter buffer takes it.
		jb := NewJitterBuffer(JitterConfig{})
		jb.Push(p, simStart)
		jb.Pop(simStart)
		jb.Feedback(simStart)
	})
}
