package quality

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// speechLike returns seconds of a signal with speech's gross structure,
// needing no tools: three resonances of white noise (near the first three
// formants of a vowel, 500, 1500 and 2500 Hz, plus a hiss band at 4 kHz
// when the rate allows), each amplitude-modulated at a syllabic rate
// (3–6 Hz) with its own phase, and a 250 ms pause every 1.2 s. Peak about
// 0.5. The same seed gives the same signal.
func speechLike(rate int, seconds float64, seed uint64) []float64 {
	rng := newRand(seed)
	n := int(seconds * float64(rate))
	out := make([]float64, n)
	type band struct{ freq, mod, phase float64 }
	bands := []band{{500, 3.1, 0}, {1500, 4.3, 1.1}, {2500, 5.2, 2.3}, {4000, 5.9, 0.7}}
	for _, b := range bands {
		if b.freq >= 0.45*float64(rate) {
			continue
		}
		r := 0.985
		c1, c2 := 2*r*math.Cos(2*math.Pi*b.freq/float64(rate)), -r*r
		var y1, y2 float64
		for i := range out {
			y := rng.NormFloat64()*(1-r) + c1*y1 + c2*y2
			y2, y1 = y1, y
			t := float64(i) / float64(rate)
			env := math.Max(0, math.Sin(2*math.Pi*b.mod*t+b.phase))
			out[i] += y * env * env
		}
	}
	for i := range out {
		if math.Mod(float64(i)/float64(rate), 1.2) >= 0.95 {
			out[i] = 0
		}
	}
	scale(out, 0.5/peak(out))
	return out
}

func peak(x []float64) float64 {
	var p float64
	for _, v := range x {
		p = max(p, math.Abs(v))
	}
	return p
}

func scale(x []float64, k float64) {
	for i := range x {
		x[i] *= k
	}
}

func power(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s / float64(len(x))
}

// whiteNoise returns n samples of Gaussian noise of the given power.
func whiteNoise(n int, pow float64, seed uint64) []float64 {
	rng := newRand(seed ^ 0x5bd1e995)
	out := make([]float64, n)
	for i := range out {
		out[i] = rng.NormFloat64() * math.Sqrt(pow)
	}
	return out
}

// withNoise returns x plus white noise snr dB below x's power (over the
// whole signal, pauses included).
func withNoise(x []float64, snr float64, seed uint64) []float64 {
	noise := whiteNoise(len(x), power(x)/math.Pow(10, snr/10), seed)
	for i := range noise {
		noise[i] += x[i]
	}
	return noise
}

// delayed returns x delayed by d samples: d zeros, then x, cut to len(x).
func delayed(x []float64, d int) []float64 {
	out := make([]float64, len(x))
	copy(out[d:], x)
	return out
}

// espeak speaks text with espeak-ng and returns the speech and its sample
// rate (22050 Hz). Without espeak-ng the test is skipped, or fails when
// CI=true, where the tool must be installed.
func espeak(t *testing.T, text string) ([]float64, int) {
	t.Helper()
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		msg := "espeak-ng is not installed (apt-get install espeak-ng): the tests on real speech need it to synthesise their speech"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	path := filepath.Join(t.TempDir(), "speech.wav")
	if out, err := exec.Command(bin, "-w", path, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x, rate, err := ReadWAV(f)
	if err != nil {
		t.Fatalf("reading espeak-ng's WAV: %v", err)
	}
	if len(x) < rate {
		t.Fatalf("espeak-ng gave %d samples at %d Hz, want at least a second", len(x), rate)
	}
	return x, rate
}

const sentence = "The quick brown fox jumps over the lazy dog. " +
	"Please call Stella and ask her to bring these things with her from the store: " +
	"six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob."

func mustSTOI(t *testing.T, clean, degraded []float64, rate int) float64 {
	t.Helper()
	d, err := STOI(clean, degraded, rate)
	if err != nil {
		t.Fatalf("STOI: %v", err)
	}
	return d
}

func isErr(err, target error) bool { return errors.Is(err, target) }

// throughWAV returns x as it comes back from a 16-bit WAV file.
func throughWAV(t *testing.T, x []float64, rate int) []float64 {
	t.Helper()
	var b bytes.Buffer
	if err := WriteWAV(&b, x, rate); err != nil {
		t.Fatal(err)
	}
	y, r, err := ReadWAV(&b)
	if err != nil || r != rate {
		t.Fatalf("ReadWAV: %v, %d Hz", err, r)
	}
	return y
}

const msDur = 1e6 // a millisecond, as a time.Duration constant

// noiseSource is a small deterministic generator (xorshift64*, and
// Box–Muller for Gaussians), so that the test signals, and the reference
// values computed from them, never change with the Go release.
type noiseSource struct {
	s     uint64
	spare float64
	has   bool
}

func newRand(seed uint64) *noiseSource {
	return &noiseSource{s: seed*0x9E3779B97F4A7C15 + 1}
}

func (r *noiseSource) Uint64() uint64 {
	r.s ^= r.s >> 12
	r.s ^= r.s << 25
	r.s ^= r.s >> 27
	return r.s * 0x2545F4914F6CDD1D
}

// Float64 is uniform in [0, 1).
func (r *noiseSource) Float64() float64 { return float64(r.Uint64()>>11) / (1 << 53) }

func (r *noiseSource) NormFloat64() float64 {
	if r.has {
		r.has = false
		return r.spare
	}
	u1, u2 := 1-r.Float64(), r.Float64()
	m := math.Sqrt(-2 * math.Log(u1))
	r.spare, r.has = m*math.Sin(2*math.Pi*u2), true
	return m * math.Cos(2*math.Pi*u2)
}
