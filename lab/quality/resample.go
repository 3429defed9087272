package quality

import (
	"fmt"
	"math"
)

// The resampling filter: a sinc low-pass cut off at the Nyquist frequency
// of the lower of the two rates, windowed by a Kaiser window.
// resampleZeros zero crossings of the sinc on each side of the centre, at
// the lower rate, and a Kaiser β of 8 give a stop band about 80 dB down
// and a transition band about 8% of the lower rate wide, centred on its
// Nyquist frequency. For STOI at 10 kHz that means a flat pass band up to
// about 4.6 kHz, above its highest band (4.3 kHz), and what aliases lands
// above 4.6 kHz, outside every band.
const (
	resampleZeros = 32
	resampleBeta  = 8.0
	// maxTable bounds the filter table: to/gcd(from, to) phases, each of
	// about 2·resampleZeros·max(1, from/to) taps. Every rate in common use
	// fits with room to spare (22050 Hz to 10 kHz needs 200 × 142).
	maxTable = 1 << 22
)

// Resample converts x, sampled at from Hz, to the rate to Hz, by rational
// polyphase resampling with a windowed-sinc filter (see resampleZeros). The
// output has ⌈len(x)·to/from⌉ samples, aligned with the input (no delay),
// and samples beyond the ends of x count as zero.
func Resample(x []float64, from, to int) ([]float64, error) {
	if from <= 0 || to <= 0 {
		return nil, fmt.Errorf("resample %d Hz to %d Hz: %w", from, to, ErrSampleRate)
	}
	if from == to {
		return append([]float64(nil), x...), nil
	}
	g := gcd(from, to)
	up, down := to/g, from/g // output sample n sits at input time n·down/up
	// fc is the cut-off in cycles per input sample; half the filter's
	// length, in input samples.
	fc := 0.5 * min(1, float64(up)/float64(down))
	half := resampleZeros / (2 * fc)
	taps := 2 * int(math.Ceil(half))
	if up*taps > maxTable {
		return nil, fmt.Errorf("resample %d Hz to %d Hz: the ratio %d/%d is too fine: %w", from, to, up, down, ErrSampleRate)
	}
	// The filter for phase p (output time base + p/up) weights input
	// samples base-taps/2+1 … base+taps/2.
	table := make([][]float64, up)
	i0beta := besselI0(resampleBeta)
	for p := range up {
		h := make([]float64, taps)
		frac := float64(p) / float64(up)
		sum := 0.0
		for j := range h {
			t := frac - float64(j-taps/2+1) // output time minus input sample time
			u := t / half
			if u <= -1 || u >= 1 {
				continue
			}
			h[j] = 2 * fc * sinc(2*fc*t) * besselI0(resampleBeta*math.Sqrt(1-u*u)) / i0beta
			sum += h[j]
		}
		for j := range h { // unit gain at DC for every phase
			h[j] /= sum
		}
		table[p] = h
	}
	n := (int64(len(x))*int64(up) + int64(down) - 1) / int64(down)
	y := make([]float64, n)
	for i := range y {
		pos := int64(i) * int64(down)
		base, p := int(pos/int64(up)), int(pos%int64(up))
		h := table[p]
		first := base - taps/2 + 1
		lo, hi := max(0, -first), min(taps, len(x)-first)
		acc := 0.0
		for j := lo; j < hi; j++ {
			acc += h[j] * x[first+j]
		}
		y[i] = acc
	}
	return y, nil
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (enough terms for the arguments of a Kaiser window).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 200; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
