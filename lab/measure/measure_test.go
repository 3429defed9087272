package measure

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parleychat/parley/call"
)

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// stream returns n packets sent every 20 ms from sequence number first,
// and those received after delay(i) (skipped when delay returns < 0).
func stream(n int, first uint16, delay func(i int) time.Duration) (sent, received []Packet) {
	for i := range n {
		s := Packet{Seq: first + uint16(i), Timestamp: 1000 + uint32(i)*960, Size: 80, At: t0.Add(time.Duration(i) * 20 * time.Millisecond)}
		sent = append(sent, s)
		if d := delay(i); d >= 0 {
			r := s
			r.At = s.At.Add(d)
			received = append(received, r)
		}
	}
	return sent, received
}

func TestAnalyze(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		first uint16
		delay func(i int) time.Duration
		o     Options
		want  Playout // compared: the counts, LongestGap, Delay, MedianDelay
	}{
		{"clean", 7, func(int) time.Duration { return ms }, Options{},
			Playout{Sent: 100, Arrived: 100, Played: 100, PlayedPct: 100, Delay: 20 * ms, MedianDelay: ms}},
		{"loss", 65530, func(i int) time.Duration { // across the sequence number wrap
			if i >= 10 && i < 15 || i == 50 {
				return -1
			}
			return 2 * ms
		}, Options{}, Playout{Sent: 100, Arrived: 94, Played: 94, Lost: 6, PlayedPct: 94, LongestGap: 100 * ms, Delay: 20 * ms, MedianDelay: 2 * ms}},
		{"a few late", 0, func(i int) time.Duration {
			if i%40 == 39 { // 2 of 100
				return 500 * ms
			}
			return 10 * ms
		}, Options{}, Playout{Sent: 100, Arrived: 100, Played: 98, Late: 2, PlayedPct: 98, LongestGap: 20 * ms, Delay: 20 * ms, MedianDelay: 10 * ms}},
		{"jitter sets the delay", 0, func(i int) time.Duration {
			return time.Duration(i%10) * 30 * ms // 0..270 ms
		}, Options{}, Playout{Sent: 100, Arrived: 100, Played: 100, PlayedPct: 100, Delay: 270 * ms, MedianDelay: 120 * ms}},
		{"capped delay", 0, func(i int) time.Duration {
			return time.Duration(i%10) * 30 * ms
		}, Options{MaxDelay: 200 * ms}, Playout{Sent: 100, Arrived: 100, Played: 70, Late: 30, PlayedPct: 70, LongestGap: 60 * ms, Delay: 200 * ms, MedianDelay: 120 * ms}},
		{"until", 0, func(i int) time.Duration {
			if i >= 90 {
				return -1 // the receiver had hung up
			}
			return ms
		}, Options{Until: t0.Add(89*20*ms + 5*ms)}, Playout{Sent: 89, Arrived: 89, Played: 89, PlayedPct: 100, Delay: 20 * ms, MedianDelay: ms}},
		// The last packet before the hang-up arrived, but its playout (20
		// ms after sending) would have come after it: not counted either.
		{"nothing arrives", 0, func(int) time.Duration { return -1 }, Options{},
			Playout{Sent: 100, Lost: 100, LongestGap: 2 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, received := stream(100, tc.first, tc.delay)
			got := Analyze(sent, received, tc.o)
			w := tc.want
			if got.Sent != w.Sent || got.Arrived != w.Arrived || got.Played != w.Played || got.Late != w.Late || got.Lost != w.Lost ||
				got.PlayedPct != w.PlayedPct || got.LongestGap != w.LongestGap || got.Delay != w.Delay || got.MedianDelay != w.MedianDelay {
				t.Errorf("got  %+v\nwant %+v", brief(got), brief(w))
			}
			played := 0
			for _, h := range got.Heard {
				if h {
					played++
				}
			}
			if len(got.Heard) != got.Sent || played != got.Played {
				t.Errorf("Heard has %d entries, %d true; want %d, %d", len(got.Heard), played, got.Sent, got.Played)
			}
			if got.Duration != time.Duration(got.Sent)*20*ms {
				t.Errorf("duration %v for %d packets", got.Duration, got.Sent)
			}
		})
	}
}

func brief(p Playout) Playout {
	p.Heard = nil
	return p
}

func TestAnalyzeIgnoresStrangers(t *testing.T) {
	sent, received := stream(10, 100, func(int) time.Duration { return time.Millisecond })
	received = append(received,
		received[3],                             // a duplicate
		Packet{Seq: 5000, Timestamp: 1, At: t0}, // not sent
		Packet{Seq: 104, Timestamp: 99, At: t0.Add(time.Second)}, // a reused sequence number
	)
	got := Analyze(sent, received, Options{})
	if got.Arrived != 10 || got.Played != 10 || got.Repeated != 1 {
		t.Errorf("got %+v", brief(got))
	}
}

func TestReadTrace(t *testing.T) {
	in := `{"dir":"out","seq":1,"ts":960,"size":81,"at_us":1764320400000000}
{"dir":"in","seq":9,"ts":1920,"size":70,"at_us":1764320400020000}
{"dir":"out","seq":2,"ts":1920,"size":82,"at_us":1764320400020000}
`
	sent, received, err := ReadTrace(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 2 || len(received) != 1 || sent[1].Seq != 2 || sent[1].Timestamp != 1920 || sent[1].Size != 82 ||
		!received[0].At.Equal(time.UnixMicro(1764320400020000)) {
		t.Errorf("sent %+v, received %+v", sent, received)
	}
	if end := End(sent, received); !end.Equal(time.UnixMicro(1764320400020000)) {
		t.Errorf("End = %v", end)
	}
	for _, bad := range []string{
		"{\"dir\":\"out\",\"seq\":1\n{\"dir\":\"in\",\"seq\":1,\"at_us\":5}", // broken, and not the last line
		`{"dir":"sideways","seq":1,"at_us":5}`,
		`{"dir":"in","ts":1,"at_us":5}`,
		`{"dir":"in","seq":70000,"at_us":5}`,
		`{"dir":"in","seq":1}`,
	} {
		if _, _, err := ReadTrace(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadTrace(%s) succeeded", bad)
		}
	}
}

// oggOf is an Ogg Opus stream of n CELT 20 ms packets tagged tag, i.
func oggOf(t *testing.T, n int, tag byte) ([]byte, [][]byte) {
	t.Helper()
	var src bytes.Buffer
	w, err := call.NewOggWriter(&src, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for i := range n {
		p := []byte{0xF8, 0xFF, tag, byte(i)} // CELT FB 20 ms
		pkts = append(pkts, p)
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return src.Bytes(), pkts
}

func readOgg(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	or, err := call.NewOggReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for {
		p, err := or.ReadPacket()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
}

func TestMixOgg(t *testing.T) {
	main, mp := oggOf(t, 6, 0)
	low, lp := oggOf(t, 4, 1)
	lower, wp := oggOf(t, 6, 2)
	var out bytes.Buffer
	if err := MixOgg([]io.Reader{bytes.NewReader(main), bytes.NewReader(low), bytes.NewReader(lower)}, []int{0, 1, 2, 1, 1}, &out); err != nil {
		t.Fatal(err)
	}
	// Frame 4 of version 1 does not exist, and frame 5 is past from: the file itself.
	want := [][]byte{mp[0], lp[1], wp[2], lp[3], mp[4], mp[5]}
	if diff := cmp.Diff(want, readOgg(t, &out)); diff != "" {
		t.Errorf("mixed frames (-want +got):\n%s", diff)
	}
	if err := MixOgg([]io.Reader{bytes.NewReader(main), strings.NewReader("not ogg")}, nil, io.Discard); err == nil {
		t.Error("MixOgg of a non-Ogg version succeeded")
	}
}

func TestPlayedOgg(t *testing.T) {
	src, pkts := oggOf(t, 6, 0xFE)
	heard := []bool{true, false, true, true, false} // the 6th was not counted
	var out bytes.Buffer
	if err := PlayedOgg(bytes.NewReader(src), heard, &out); err != nil {
		t.Fatal(err)
	}
	got := readOgg(t, &out)
	conceal := call.Concealment(20 * time.Millisecond)
	want := [][]byte{pkts[0], conceal[0], pkts[2], pkts[3], conceal[0]}
	if len(conceal) != 1 || len(got) != len(want) {
		t.Fatalf("got %d packets %x, want %x", len(got), got, want)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("packet %d: %x, want %x", i, got[i], want[i])
		}
	}
	if err := PlayedOgg(strings.NewReader("not ogg"), heard, io.Discard); err == nil {
		t.Error("PlayedOgg of a non-Ogg file succeeded")
	}
}

// observed is a call of 50 frames from sequence number first whose frames
// 10–14 never came and 30 came too late; the others came 5 ms after they
// were sent and were played delay after, if before until (when set).
func observed(first uint16, delay time.Duration, until time.Time) (sent, received, played []Packet) {
	sent, received = stream(50, first, func(i int) time.Duration {
		if i >= 10 && i < 15 {
			return -1
		}
		return 5 * time.Millisecond
	})
	for i, s := range sent {
		p := s
		p.At = s.At.Add(delay)
		if i >= 10 && i < 15 || i == 30 || !until.IsZero() && p.At.After(until) {
			continue
		}
		played = append(played, p)
	}
	return sent, received, played
}

// TestObserve: a receiver whose playout is known. Frames 10–14 never came
// and 30 came but was not played (too late for the jitter buffer); the
// buffer played the others 60 ms after they were sent.
func TestObserve(t *testing.T) {
	ms := time.Millisecond
	sent, received, played := observed(65520, 60*ms, time.Time{})
	played = append(played, Packet{Seq: 3, Timestamp: 1}) // not one of ours
	p := Observe(sent, received, played, Options{})
	if p.Sent != 50 || p.Arrived != 45 || p.Lost != 5 || p.Played != 44 || p.Late != 1 ||
		p.LongestGap != 100*ms || p.Delay != 60*ms || p.MedianDelay != 5*ms || p.Heard[30] || !p.Heard[31] {
		t.Errorf("Observe: %+v", p)
	}
}

// TestObserveUntil: frames sent less than the playout delay before the
// listener hung up were still in its jitter buffer: they are not counted,
// and make no gap at the end.
func TestObserveUntil(t *testing.T) {
	ms := time.Millisecond
	until := t0.Add(49*20*ms + 5*ms) // 5 ms after the last frame was sent
	sent, received, played := observed(0, 250*ms, until)
	p := Observe(sent, received, played, Options{Until: until})
	// Frames 37 on would have played after the hang-up (at 740 ms + 250).
	if p.Sent != 37 || p.Played != 31 || p.Lost != 5 || p.LongestGap != 100*ms || p.Delay != 250*ms {
		t.Errorf("Observe: %+v", brief(p))
	}
}

func TestReadTraces(t *testing.T) {
	in := `{"dir":"out","seq":1,"ts":960,"size":81,"at_us":1764320400000000}
{"dir":"play","seq":1,"ts":960,"size":81,"at_us":1764320400060000}
{"dir":"in","seq":1,"ts":960,"size":81,"at_us":1764320400010000}
`
	tr, err := ReadTraces(strings.NewReader(in))
	if err != nil || len(tr.Sent) != 1 || len(tr.Received) != 1 || len(tr.Played) != 1 || !tr.Played[0].At.Equal(time.UnixMicro(1764320400060000)) {
		t.Errorf("ReadTraces: %+v, %v", tr, err)
	}
	sent, received, err := ReadTrace(strings.NewReader(in))
	if err != nil || len(sent) != 1 || len(received) != 1 {
		t.Errorf("ReadTrace with a play line: %d sent, %d received, %v", len(sent), len(received), err)
	}
	// A process killed while writing cuts its last line short: forgiven.
	cut := in + `{"dir":"in","seq":2,"ts":19`
	if tr, err := ReadTraces(strings.NewReader(cut)); err != nil || len(tr.Received) != 1 {
		t.Errorf("ReadTraces with its last line cut short: %+v, %v", tr, err)
	}
	// A broken line with others after it is not.
	if _, err := ReadTraces(strings.NewReader(`{"dir":"in","seq":2,"ts":19` + "\n" + in)); err == nil || !strings.Contains(err.Error(), "trace line 1") {
		t.Errorf("ReadTraces with a broken first line: %v", err)
	}
}
