package quality

import (
	"testing"
	"time"
)

func TestAlign(t *testing.T) {
	const rate = 16000
	x := speechLike(rate, 4, 30)
	for _, lag := range []int{0, 1, 37, 800, 4000} {
		// Late and noisy, as a received call is.
		y := withNoise(delayed(x, lag), 5, uint64(lag))
		got, err := Align(x, y, rate, 300*time.Millisecond)
		if err != nil || got != lag {
			t.Errorf("delay %d: Align = %d, %v", lag, got, err)
		}
		c, d := Overlap(x, y, got)
		if len(c) != len(d) || len(c) != len(x)-lag {
			t.Errorf("delay %d: Overlap gives %d and %d samples, want %d", lag, len(c), len(d), len(x)-lag)
		}
	}
	// Degraded ahead of clean: a negative lag.
	y := append([]float64(nil), x[160:]...)
	if got, err := Align(x, y, rate, 100*time.Millisecond); err != nil || got != -160 {
		t.Errorf("ahead by 160: Align = %d, %v", got, err)
	}
	c, d := Overlap(x, y, -160)
	if len(c) != len(y) || len(d) != len(y) || c[0] != y[0] || &d[0] != &y[0] {
		t.Errorf("ahead by 160: Overlap misaligned")
	}
	// Quieter and longer degraded signal (trailing silence) still aligns.
	z := delayed(append(append([]float64(nil), x...), make([]float64, rate)...), 480)
	scale(z, 0.01)
	if got, err := Align(x, z, rate, 100*time.Millisecond); err != nil || got != 480 {
		t.Errorf("quiet, longer: Align = %d, %v; want 480", got, err)
	}
	// A lag beyond maxLag is not found.
	if got, _ := Align(x, delayed(x, 4000), rate, 100*time.Millisecond); got == 4000 {
		t.Errorf("lag 4000 found with maxLag 1600")
	}
}

func TestAlignErrors(t *testing.T) {
	x := speechLike(8000, 1, 31)
	if _, err := Align(nil, x, 8000, time.Second); !isErr(err, ErrTooShort) {
		t.Errorf("empty clean: %v", err)
	}
	if _, err := Align(x, x, 0, time.Second); !isErr(err, ErrSampleRate) {
		t.Errorf("0 Hz: %v", err)
	}
	if _, err := Align(x, x, 8000, -time.Second); err == nil {
		t.Error("negative maxLag: no error")
	}
	if c, d := Overlap(x[:10], x[:10], 50); c != nil || d != nil {
		t.Error("Overlap with no overlap: want nil")
	}
}
