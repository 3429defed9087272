package quality

import (
	"math"
	"math/cmplx"
	"testing"
)

func sine(rate int, freq, seconds float64) []float64 {
	x := make([]float64, int(seconds*float64(rate)))
	for i := range x {
		x[i] = 0.5 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
	}
	return x
}

// rms of x away from its ends (where the filter sees zeros).
func rmsInterior(x []float64, margin int) float64 {
	return math.Sqrt(power(x[margin : len(x)-margin]))
}

func TestResamplePassBand(t *testing.T) {
	for _, c := range []struct{ from, to int }{
		{48000, 10000}, {22050, 10000}, {16000, 10000}, {44100, 10000},
		{8000, 10000}, {10000, 48000}, {48000, 16000},
	} {
		for _, freq := range []float64{200, 1000, 3500} {
			x := sine(c.from, freq, 0.5)
			y, err := Resample(x, c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if want := (len(x)*c.to + c.from - 1) / c.from; len(y) != want {
				t.Errorf("%d→%d: %d samples, want %d", c.from, c.to, len(y), want)
			}
			// Compare with the sine sampled directly at the new rate.
			want := sine(c.to, freq, 0.5)
			margin := c.to / 20
			var worst float64
			for i := margin; i < min(len(y), len(want))-margin; i++ {
				worst = max(worst, math.Abs(y[i]-want[i]))
			}
			if worst > 2e-3 {
				t.Errorf("%d→%d Hz, %v Hz sine: off by up to %.2g", c.from, c.to, freq, worst)
			}
		}
	}
}

// What lies above the new Nyquist frequency must not fold back into the
// band STOI uses (≤ 4.3 kHz).
func TestResampleStopBand(t *testing.T) {
	for _, c := range []struct {
		from int
		freq float64
	}{
		{48000, 5700}, {48000, 7000}, {48000, 12000}, {22050, 6000}, {16000, 7000},
	} {
		y, err := Resample(sine(c.from, c.freq, 0.5), c.from, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if db := 20 * math.Log10(rmsInterior(y, 500)/(0.5/math.Sqrt2)); db > -60 {
			t.Errorf("%d Hz, %v Hz sine to 10 kHz: alias at %.1f dB, want below -60 dB", c.from, c.freq, db)
		}
	}
}

func TestResampleIdentityAndErrors(t *testing.T) {
	x := []float64{1, 2, 3}
	y, err := Resample(x, 10000, 10000)
	if err != nil || len(y) != 3 || &y[0] == &x[0] || y[2] != 3 {
		t.Errorf("same rate: %v, %v; want a copy", y, err)
	}
	for _, r := range [][2]int{{0, 10000}, {10000, -1}} {
		if _, err := Resample(x, r[0], r[1]); !isErr(err, ErrSampleRate) {
			t.Errorf("%v: err = %v, want ErrSampleRate", r, err)
		}
	}
	if _, err := Resample(x, 1_000_003, 10000); !isErr(err, ErrSampleRate) {
		t.Errorf("a ratio too fine for the filter table: err = %v, want ErrSampleRate", err)
	}
	if y, err := Resample(nil, 48000, 10000); err != nil || len(y) != 0 {
		t.Errorf("empty: %v, %v", y, err)
	}
}

func TestFFT(t *testing.T) {
	rng := newRand(5)
	for _, n := range []int{1, 2, 8, 64, 512} {
		re, im := make([]float64, n), make([]float64, n)
		in := make([]complex128, n)
		for i := range re {
			re[i], im[i] = rng.NormFloat64(), rng.NormFloat64()
			in[i] = complex(re[i], im[i])
		}
		fft(re, im, false)
		for k := range n { // the DFT by its definition
			var want complex128
			for j, v := range in {
				want += v * cmplx.Exp(complex(0, -2*math.Pi*float64(j*k)/float64(n)))
			}
			if cmplx.Abs(complex(re[k], im[k])-want) > 1e-9 {
				t.Fatalf("n=%d bin %d: %v, want %v", n, k, complex(re[k], im[k]), want)
			}
		}
		fft(re, im, true)
		for i := range in {
			if cmplx.Abs(complex(re[i], im[i])/complex(float64(n), 0)-in[i]) > 1e-9 {
				t.Fatalf("n=%d: inverse does not return the input at %d", n, i)
			}
		}
	}
}
