package call

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// oggOfSize is an Ogg Opus stream of n 20 ms packets of size bytes each
// (TOC byte 31<<3: CELT FB 20 ms), every one marked with its version tag
// and number.
func oggOfSize(t *testing.T, n, size int, tag byte) *OggReader {
	t.Helper()
	var b bytes.Buffer
	w, err := NewOggWriter(&b, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := make([]byte, size)
		p[0], p[1], p[2] = 31<<3, tag, byte(i)
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewOggReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLadderPicksTheVersionThatFits(t *testing.T) {
	// 20, 40 and 60 bytes every 20 ms: 8, 16 and 24 kbit/s, given out of order.
	l, err := loadLadder([]*OggReader{oggOfSize(t, 10, 60, 24), oggOfSize(t, 10, 20, 8), oggOfSize(t, 5, 40, 16)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{8000, 16000, 24000}; !slices.Equal(l.rates, want) {
		t.Fatalf("rates %v, want %v", l.rates, want)
	}
	for _, c := range []struct {
		n, rate int
		tag     byte
		ok      bool
	}{
		{0, 32000, 24, true},
		{3, 24000, 24, true},
		{3, 22000, 24, true}, // within a tenth
		{3, 20000, 16, true},
		{4, 16000, 16, true},
		{5, 16000, 0, false}, // the 16 kbit/s version has ended: the file itself
		{1, 12000, 8, true},
		{1, 6000, 8, true}, // nothing fits: the lowest
		{10, 6000, 0, false},
	} {
		f, index, ok := l.pick(c.n, c.rate)
		if ok != c.ok || ok && (f[1] != c.tag || f[2] != byte(c.n) || index != map[byte]int{24: 0, 8: 1, 16: 2}[c.tag]) {
			t.Errorf("pick(%d, %d) = %v, %d, %v; want version %d, %v", c.n, c.rate, f, index, ok, c.tag, c.ok)
		}
	}
}

func TestLadderRejectsOtherFrameSizes(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewOggWriter(&b, 1)
	w.WritePacket([]byte{28 << 3, 1, 2}) // 2.5 ms
	w.Close()
	r, err := NewOggReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadLadder([]*OggReader{r}); err == nil || !strings.Contains(err.Error(), "frames of 2.5ms") {
		t.Errorf("loadLadder of 2.5 ms frames: %v", err)
	}
}
