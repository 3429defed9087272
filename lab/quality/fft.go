package quality

import (
	"math"
	"math/bits"
)

// fft is an in-place radix-2 decimation-in-time FFT over re and im, whose
// common length must be a power of two. inverse computes the unscaled
// inverse transform (the caller divides by the length).
func fft(re, im []float64, inverse bool) {
	n := len(re)
	if n <= 1 {
		return
	}
	shift := 64 - bits.TrailingZeros(uint(n))
	for i := range n {
		j := int(bits.Reverse64(uint64(i)) >> shift)
		if j > i {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	// Twiddles for the largest stage; stage size uses every (n/size)th.
	half := n / 2
	cos, sin := make([]float64, half), make([]float64, half)
	sign := -1.0
	if inverse {
		sign = 1
	}
	for k := range half {
		cos[k] = math.Cos(2 * math.Pi * float64(k) / float64(n))
		sin[k] = sign * math.Sin(2*math.Pi*float64(k)/float64(n))
	}
	for size := 2; size <= n; size <<= 1 {
		h, stride := size/2, n/size
		for start := 0; start < n; start += size {
			for k := range h {
				wr, wi := cos[k*stride], sin[k*stride]
				a, b := start+k, start+k+h
				tr := wr*re[b] - wi*im[b]
				ti := wr*im[b] + wi*re[b]
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
}

// nextPow2 is the least power of two ≥ n.
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
