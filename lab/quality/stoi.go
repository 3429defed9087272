package quality

import (
	"fmt"
	"math"
)

// STOI's parameters, as published (Taal et al. 2011, section II and the
// authors' reference code): the signals are compared at 10 kHz in frames
// of 256 samples (Hann window, 50% overlap) zero-padded to a 512-point
// FFT, grouped into 15 one-third octave bands from 150 Hz (centre
// frequencies 150 Hz … 3.8 kHz), in analysis segments of 30 frames
// (384 ms), with the degraded envelope clipped at β = -15 dB
// signal-to-distortion ratio. Frames more than 40 dB below the loudest
// frame of the clean signal are dropped from both signals first.
const (
	stoiRate     = 10000
	stoiFrame    = 256
	stoiHop      = stoiFrame / 2
	stoiFFT      = 512
	stoiBands    = 15
	stoiMinFreq  = 150.0
	stoiSegment  = 30
	stoiBeta     = -15.0
	stoiDynRange = 40.0
)

// tiny keeps divisions finite for all-zero vectors (the reference code's
// machine epsilon).
const tiny = 2.220446049250313e-16

// STOI returns the short-time objective intelligibility of degraded
// against clean, both sampled at sampleRate Hz: a number that rises with
// intelligibility, 1 for a signal compared with itself and near 0 for
// speech that cannot be made out.
//
// The algorithm is that of Taal, Hendriks, Heusdens and Jensen, "An
// Algorithm for Intelligibility Prediction of Time–Frequency Weighted Noisy
// Speech", IEEE TASLP 19(7), 2011, with the parameters above: both signals
// are resampled to 10 kHz (Resample); frames more than 40 dB below the
// clean signal's loudest are removed from both signals; the rest are split
// into one-third octave band envelopes; in every 384 ms segment and band
// the degraded envelope is scaled to the clean one's energy, clipped to at
// most the clean envelope times 1+10^(-β/20), and correlated with it; STOI
// is the mean correlation over bands and segments.
//
// The signals must have the same length (else ErrLengthMismatch): STOI
// compares them sample by sample, so they must already be lined up (Align,
// Overlap); trimming silently would hide a misalignment. After silent
// frames are removed at least 30 frames (about 0.4 s of speech) must
// remain, else ErrTooShort; the reference implementation returns 1e-5
// with a warning instead.
func STOI(clean, degraded []float64, sampleRate int) (float64, error) {
	if sampleRate <= 0 {
		return 0, fmt.Errorf("STOI: %d Hz: %w", sampleRate, ErrSampleRate)
	}
	if len(clean) != len(degraded) {
		return 0, fmt.Errorf("STOI: %d clean samples, %d degraded: %w", len(clean), len(degraded), ErrLengthMismatch)
	}
	x, err := Resample(clean, sampleRate, stoiRate)
	if err != nil {
		return 0, fmt.Errorf("STOI: %w", err)
	}
	y, err := Resample(degraded, sampleRate, stoiRate)
	if err != nil {
		return 0, fmt.Errorf("STOI: %w", err)
	}
	x, y = removeSilentFrames(x, y)
	xb, yb := bandEnvelopes(x), bandEnvelopes(y)
	frames := len(xb)
	if frames < stoiSegment {
		return 0, fmt.Errorf("STOI: %d frames of speech at 10 kHz, need %d: %w", frames, stoiSegment, ErrTooShort)
	}

	clip := 1 + math.Pow(10, -stoiBeta/20)
	var sum float64
	xs, ys := make([]float64, stoiSegment), make([]float64, stoiSegment)
	segments := frames - stoiSegment + 1
	for m := range segments {
		for j := range stoiBands {
			for n := range stoiSegment {
				xs[n], ys[n] = xb[m+n][j], yb[m+n][j]
			}
			sum += segmentCorrelation(xs, ys, clip)
		}
	}
	return sum / float64(segments*stoiBands), nil
}

// segmentCorrelation is the intermediate intelligibility measure d_j,m of
// one band over one segment: ys normalised to the energy of xs, clipped at
// clip·xs, and correlated with xs. It overwrites ys.
func segmentCorrelation(xs, ys []float64, clip float64) float64 {
	alpha := norm(xs) / (norm(ys) + tiny)
	for n := range ys {
		ys[n] = min(ys[n]*alpha, xs[n]*clip)
	}
	mx, my := mean(xs), mean(ys)
	var sxy, sxx, syy float64
	for n := range xs {
		dx, dy := xs[n]-mx, ys[n]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	return sxy / ((math.Sqrt(sxx) + tiny) * (math.Sqrt(syy) + tiny))
}

// hann is the frame window of the reference code: a symmetric Hann window
// of N+2 points without its two zero ends, 0.5 - 0.5·cos(2π(n+1)/(N+1)).
var hann = func() []float64 {
	w := make([]float64, stoiFrame)
	for n := range w {
		w[n] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(n+1)/float64(stoiFrame+1))
	}
	return w
}()

// frameStarts is the first sample of each frame of a signal of n samples:
// 0, hop, 2·hop, … while a whole frame fits before the last sample (the
// reference code's framing, which never uses the final start n-frame).
func frameStarts(n int) []int {
	var s []int
	for i := 0; i < n-stoiFrame; i += stoiHop {
		s = append(s, i)
	}
	return s
}

// removeSilentFrames drops, from both signals, the windowed frames whose
// clean energy is more than stoiDynRange dB below the loudest clean frame,
// and rebuilds the two signals from the frames kept by overlap-add.
func removeSilentFrames(x, y []float64) (xs, ys []float64) {
	starts := frameStarts(len(x))
	if len(starts) == 0 {
		return nil, nil
	}
	energy := make([]float64, len(starts))
	loudest := math.Inf(-1)
	for f, s := range starts {
		var e float64
		for n, w := range hann {
			v := w * x[s+n]
			e += v * v
		}
		energy[f] = 20 * math.Log10(math.Sqrt(e)+tiny)
		loudest = max(loudest, energy[f])
	}
	var kept []int
	for f, s := range starts {
		if energy[f] > loudest-stoiDynRange {
			kept = append(kept, s)
		}
	}
	n := (len(kept)-1)*stoiHop + stoiFrame
	xs, ys = make([]float64, n), make([]float64, n)
	for k, s := range kept {
		at := k * stoiHop
		for i, w := range hann {
			xs[at+i] += w * x[s+i]
			ys[at+i] += w * y[s+i]
		}
	}
	return xs, ys
}

// bands holds, for each one-third octave band, the FFT bins [lo, hi) it
// sums: the bins nearest its lower and upper edge frequencies, at
// 150·2^((2k∓1)/6) Hz for band k.
var bands = func() [stoiBands][2]int {
	var b [stoiBands][2]int
	nearest := func(f float64) int {
		bin := int(math.Round(f * stoiFFT / stoiRate))
		return min(bin, stoiFFT/2)
	}
	for k := range b {
		lo := stoiMinFreq * math.Pow(2, (2*float64(k)-1)/6)
		hi := stoiMinFreq * math.Pow(2, (2*float64(k)+1)/6)
		b[k] = [2]int{nearest(lo), nearest(hi)}
	}
	return b
}()

// bandEnvelopes is the short-time one-third octave band magnitude of x:
// for each frame, the square root of the power in each band.
func bandEnvelopes(x []float64) [][stoiBands]float64 {
	starts := frameStarts(len(x))
	env := make([][stoiBands]float64, len(starts))
	re, im := make([]float64, stoiFFT), make([]float64, stoiFFT)
	power := make([]float64, stoiFFT/2+1)
	for f, s := range starts {
		clear(re)
		clear(im)
		for n, w := range hann {
			re[n] = w * x[s+n]
		}
		fft(re, im, false)
		for k := range power {
			power[k] = re[k]*re[k] + im[k]*im[k]
		}
		for j, b := range bands {
			var e float64
			for k := b[0]; k < b[1]; k++ {
				e += power[k]
			}
			env[f][j] = math.Sqrt(e)
		}
	}
	return env
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
