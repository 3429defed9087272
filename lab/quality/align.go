package quality

import (
	"fmt"
	"math"
	"time"
)

// Align returns the delay of degraded behind clean, in samples at
// sampleRate: the lag, within ±maxLag, at which the two correlate best,
// so that degraded[i+lag] lines up with clean[i] (a negative lag means
// degraded runs ahead). The correlation at each lag is normalised by the
// energy of the two overlapping parts, so lags with less overlap are not
// penalised, but only lags that leave at least half of the shorter signal
// overlapping count. It is computed with FFTs, in O(n log n).
//
// Align says nothing about quality: a degraded signal that is silence, or
// unrelated to clean, still gets the lag of its best (meaningless) match.
// Use the lag to measure added delay and, with Overlap, to line the
// signals up before STOI.
func Align(clean, degraded []float64, sampleRate int, maxLag time.Duration) (int, error) {
	if sampleRate <= 0 {
		return 0, fmt.Errorf("align: %d Hz: %w", sampleRate, ErrSampleRate)
	}
	if len(clean) == 0 || len(degraded) == 0 {
		return 0, fmt.Errorf("align: empty signal: %w", ErrTooShort)
	}
	limit := int(maxLag.Seconds() * float64(sampleRate))
	if limit < 0 {
		return 0, fmt.Errorf("align: negative maxLag %v", maxLag)
	}

	// c[lag] = Σ clean[i]·degraded[i+lag], from the product of spectra.
	n := nextPow2(len(clean) + len(degraded))
	ar, ai := make([]float64, n), make([]float64, n)
	br, bi := make([]float64, n), make([]float64, n)
	copy(ar, clean)
	copy(br, degraded)
	fft(ar, ai, false)
	fft(br, bi, false)
	for k := range n { // conj(A)·B
		ar[k], ai[k] = ar[k]*br[k]+ai[k]*bi[k], ar[k]*bi[k]-ai[k]*br[k]
	}
	fft(ar, ai, true)
	corr := func(lag int) float64 { // negative lags wrap around
		return ar[(lag+n)%n] / float64(n)
	}

	// Energies of the overlapping parts, from prefix sums of squares.
	ec, ed := prefixEnergy(clean), prefixEnergy(degraded)
	// A few samples of overlap correlate perfectly by chance: lags that
	// leave less than half the shorter signal are not considered.
	minOverlap := max(1, min(len(clean), len(degraded))/2)
	best, bestScore := 0, math.Inf(-1)
	for lag := -limit; lag <= limit; lag++ {
		// Overlap: clean[i] for i in [lo, hi), degraded[i+lag].
		lo, hi := max(0, -lag), min(len(clean), len(degraded)-lag)
		if hi-lo < minOverlap {
			continue
		}
		energy := (ec[hi] - ec[lo]) * (ed[hi+lag] - ed[lo+lag])
		if energy <= 0 {
			continue
		}
		score := corr(lag) / math.Sqrt(energy)
		if score > bestScore {
			best, bestScore = lag, score
		}
	}
	return best, nil
}

func prefixEnergy(x []float64) []float64 {
	p := make([]float64, len(x)+1)
	for i, v := range x {
		p[i+1] = p[i] + v*v
	}
	return p
}

// Overlap returns the parts of clean and degraded that line up when
// degraded lags clean by lag samples (degraded[i+lag] with clean[i]),
// cut to the same length. They share the input slices' storage.
func Overlap(clean, degraded []float64, lag int) (c, d []float64) {
	lo, hi := max(0, -lag), min(len(clean), len(degraded)-lag)
	if hi <= lo {
		return nil, nil
	}
	return clean[lo:hi], degraded[lo+lag : hi+lag]
}
