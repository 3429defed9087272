package quality

import (
	"fmt"
	"math"
	"time"
)

// EModel holds the inputs of the ITU-T G.107 (06/2015) E-model,
// https://www.itu.int/rec/T-REC-G.107-201506-I, named as in its Table 1.
// Levels are in dB, loudness ratings in dB, times in ms, noise in dBm0p or
// dB(A) as G.107 says. Defaults returns G.107's default values (Table 3).
type EModel struct {
	SLR  float64 // send loudness rating, dB
	RLR  float64 // receive loudness rating, dB
	STMR float64 // sidetone masking rating, dB
	LSTR float64 // listener sidetone rating, dB (STMR + Dr)
	Ds   float64 // D-value of the telephone, send side
	Dr   float64 // D-value of the telephone, receive side (enters through LSTR)
	TELR float64 // talker echo loudness rating, dB
	WEPL float64 // weighted echo path loss, dB
	T    float64 // mean one-way delay of the echo path, ms
	Tr   float64 // round-trip delay in a 4-wire loop, ms
	Ta   float64 // absolute delay in echo-free connections (mouth to ear), ms
	Qdu  float64 // number of quantization distortion units
	Ie   float64 // equipment impairment factor
	Bpl  float64 // packet-loss robustness factor
	Ppl  float64 // random packet-loss probability, percent
	// BurstR is the burst ratio: 1 for random loss, more for bursty loss
	// (see the function BurstR).
	BurstR float64
	Nc     float64 // circuit noise referred to the 0 dBr point, dBm0p
	Nfor   float64 // noise floor at the receive side, dBmp
	Ps     float64 // room noise at the send side, dB(A)
	Pr     float64 // room noise at the receive side, dB(A)
	A      float64 // advantage factor
	// MT and ST are the delay sensitivity (G.107 §7.4, Table 1): the delay
	// in ms below which Ta does no harm, and how sharply it harms beyond.
	// The defaults, 100 ms and 1, are those for carrier- and
	// enterprise-grade telephony.
	MT, ST float64
}

// Defaults returns the E-model's inputs at G.107's default values
// (G.107 06/2015, Table 3), which give R = 93.2. Bpl's default is 1 there;
// it matters only when Ppl > 0.
func Defaults() EModel {
	return EModel{
		SLR: 8, RLR: 2, STMR: 15, LSTR: 18, Ds: 3, Dr: 3,
		TELR: 65, WEPL: 110, T: 0, Tr: 0, Ta: 0,
		Qdu: 1, Ie: 0, Bpl: 1, Ppl: 0, BurstR: 1,
		Nc: -70, Nfor: -64, Ps: 35, Pr: 35, A: 0,
		MT: 100, ST: 1,
	}
}

// Validate reports inputs outside the ranges where the E-model means
// anything: negative delays, loss outside 0–100%, BurstR < 1, Bpl ≤ 0,
// Qdu < 1, and so on (G.107 Table 3's permitted ranges, widened where the
// lab can honestly exceed them, e.g. delays beyond 500 ms).
func (m EModel) Validate() error {
	check := func(name string, v, lo, hi float64) error {
		if math.IsNaN(v) || v < lo || v > hi {
			return fmt.Errorf("%s = %v, want %v…%v: %w", name, v, lo, hi, ErrParam)
		}
		return nil
	}
	inf := math.Inf(1)
	for _, c := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"T", m.T, 0, inf}, {"Tr", m.Tr, 0, inf}, {"Ta", m.Ta, 0, inf},
		{"Ppl", m.Ppl, 0, 100}, {"BurstR", m.BurstR, 1, inf},
		{"Bpl", m.Bpl, math.SmallestNonzeroFloat64, inf},
		{"Ie", m.Ie, 0, 95}, {"Qdu", m.Qdu, 1, inf},
		{"MT", m.MT, math.SmallestNonzeroFloat64, inf},
		{"ST", m.ST, math.SmallestNonzeroFloat64, inf},
	} {
		if err := check(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	return nil
}

// R returns the transmission rating factor R = Ro − Is − Id − Ie,eff + A
// (G.107 §7.1). It does not validate its inputs; see Validate.
func (m EModel) R() float64 {
	ro, no := m.ro()
	return ro - m.is(ro, no) - m.id(ro, no) - m.ieEff() + m.A
}

func dbSum(levels ...float64) float64 {
	var s float64
	for _, l := range levels {
		s += math.Pow(10, l/10)
	}
	return 10 * math.Log10(s)
}

// ro is the basic signal-to-noise ratio Ro (G.107 §7.2) and the total
// noise No it is computed from.
func (m EModel) ro() (ro, no float64) {
	olr := m.SLR + m.RLR
	nos := m.Ps - m.SLR - m.Ds - 100 + 0.004*sq(m.Ps-olr-m.Ds-14)
	pre := m.Pr + 10*math.Log10(1+math.Pow(10, (10-m.LSTR)/10))
	nor := m.RLR - 121 + pre + 0.008*sq(pre-35)
	nfo := m.Nfor + m.RLR
	no = dbSum(m.Nc, nos, nor, nfo)
	return 15 - 1.5*(m.SLR+no), no
}

// is is the simultaneous impairment factor Is = Iolr + Ist + Iq (§7.3).
func (m EModel) is(ro, no float64) float64 {
	olr := m.SLR + m.RLR
	xolr := olr + 0.2*(64+no-m.RLR)
	iolr := 20 * (math.Pow(1+math.Pow(xolr/8, 8), 1.0/8) - xolr/8)
	ist := m.ist()
	q := 37 - 15*math.Log10(m.Qdu)
	g := 1.07 + 0.258*q + 0.0602*q*q
	y := (ro-100)/15 + 46/8.4 - g/9
	z := 46/30.0 - g/40
	iq := 15 * math.Log10(1+math.Pow(10, y)+math.Pow(10, z))
	return iolr + ist + iq
}

// ist is the impairment by non-optimum sidetone, Ist (§7.3).
func (m EModel) ist() float64 {
	stmro := -10 * math.Log10(math.Pow(10, -m.STMR/10)+math.Exp(-m.T/4)*math.Pow(10, -m.TELR/10))
	return 12*math.Pow(1+math.Pow((stmro-13)/6, 8), 1.0/8) -
		28*math.Pow(1+math.Pow((stmro+1)/19.4, 35), 1.0/35) -
		13*math.Pow(1+math.Pow((stmro-3)/33, 13), 1.0/13) + 29
}

// id is the delay impairment factor Id = Idte + Idle + Idd (§7.4).
func (m EModel) id(ro, no float64) float64 {
	// Talker echo.
	terv := m.TELR - 40*math.Log10((1+m.T/10)/(1+m.T/150)) + 6*math.Exp(-0.3*m.T*m.T)
	if m.STMR < 9 { // low sidetone: echo is more audible
		terv += m.ist() / 2
	}
	roe := -1.5 * (no - m.RLR)
	re := 80 + 2.5*(terv-14)
	idte := ((roe-re)/2 + math.Sqrt(sq(roe-re)/4+100) - 1) * (1 - math.Exp(-m.T))
	// Listener echo.
	rle := 10.5 * (m.WEPL + 7) * math.Pow(m.Tr+1, -0.25)
	idle := (ro-rle)/2 + math.Sqrt(sq(ro-rle)/4+169)
	// Absolute delay.
	var idd float64
	if m.Ta > m.MT {
		x := math.Log10(m.Ta/m.MT) / math.Log10(2)
		e := 6 * m.ST
		idd = 25 * (math.Pow(1+math.Pow(x, e), 1/e) - 3*math.Pow(1+math.Pow(x/3, e), 1/e) + 2)
	}
	return idte + idle + idd
}

// ieEff is the effective equipment impairment factor under packet loss,
// Ie,eff = Ie + (95 − Ie)·Ppl/(Ppl/BurstR + Bpl) (§7.5).
func (m EModel) ieEff() float64 {
	return m.Ie + (95-m.Ie)*m.Ppl/(m.Ppl/m.BurstR+m.Bpl)
}

func sq(x float64) float64 { return x * x }

// MOS converts a rating R to an estimated mean opinion score on the
// 1–5 scale (G.107 Annex B, equation B-4): 1 for R < 0, 4.5 for R > 100,
// and 1 + 0.035R + R(R−60)(100−R)·7·10⁻⁶ between. That cubic dips just
// below 1 (to 0.99) for 0 < R < 6.5; MOS holds it at 1 there so that the
// scale is monotone.
func MOS(r float64) float64 {
	switch {
	case math.IsNaN(r):
		return math.NaN()
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return max(1, 1+0.035*r+r*(r-60)*(100-r)*7e-6)
}

// Codec is what the E-model knows of a codec: its equipment impairment
// factor Ie and its packet-loss robustness factor Bpl, both for
// narrowband (G.107) use.
type Codec struct {
	Name string
	Ie   float64
	Bpl  float64
}

var (
	// G711PLC is G.711 with packet-loss concealment as in G.711 Appendix I:
	// Ie 0, Bpl 25.1 (ITU-T G.113 (11/2007) Appendix I, for random loss).
	G711PLC = Codec{Name: "G.711 with PLC", Ie: 0, Bpl: 25.1}
	// G711 is G.711 without concealment: Ie 0, Bpl 4.3 (G.113 Appendix I).
	G711 = Codec{Name: "G.711", Ie: 0, Bpl: 4.3}
	// Opus is Opus in a WebRTC voice call (SILK or hybrid mode, wideband
	// or better, 20 ms frames, with its decoder's concealment).
	//
	// Both values are assumptions, not published planning values: we found
	// no Ie or Bpl for Opus in ITU-T G.113 or elsewhere in ITU-T's
	// recommendations (published work derives Ie for Opus only on the
	// wideband and fullband scales, e.g. Ie,FB from P.863 in "Derivation
	// of Equipment Impairment Factors from ITU-T P.863 for Fullband Speech
	// Codecs", DAGA 2018, which the narrowband G.107 model cannot use).
	// Ie 0: the narrowband scale tops out at G.711 (Ie 0), and Opus at
	// VoIP bit rates codes wideband speech that listening tests rate
	// above narrowband codecs (A. Rämö, H. Toukomaa, "Voice Quality
	// Characterization of IETF Opus Codec", Interspeech 2011). Bpl 25.1:
	// G.113's value for the best concealment it lists, G.711 Appendix I,
	// taking Opus's concealment to be at least as good. Replace both if
	// ITU-T publishes values.
	Opus = Codec{Name: "Opus", Ie: 0, Bpl: 25.1}
)

// CallQuality is the E-model's verdict on one direction of a call with
// G.107's defaults and the impairments the lab measured: a mouth-to-ear
// delay, the percentage of frames lost to the listener, the loss's
// BurstR (1 for random loss; see BurstR) and the codec. The delay is
// taken as Ta and as the echo path's one-way delay T, and 2·delay as
// the round trip Tr (echo cancelled to G.107's default TELR and WEPL),
// as G.108 does for a connection whose delay is all transmission. It
// returns an error wrapping ErrParam for a negative delay, loss outside
// 0–100% or BurstR < 1.
func CallQuality(delay time.Duration, lossPct, burstR float64, c Codec) (r, mos float64, err error) {
	ms := float64(delay) / float64(time.Millisecond)
	m := Defaults()
	m.T, m.Ta, m.Tr = ms, ms, 2*ms
	m.Ppl, m.BurstR = lossPct, burstR
	m.Ie, m.Bpl = c.Ie, c.Bpl
	if err := m.Validate(); err != nil {
		return 0, 0, fmt.Errorf("E-model for %s: %w", c.Name, err)
	}
	r = m.R()
	return r, MOS(r), nil
}

// BurstR is G.107's burst ratio of a loss pattern (one entry per packet
// or frame, true if lost): 1/(p+q) for the two-state Markov model whose
// transition probabilities are estimated from the pattern, p from found
// to lost and q from lost to found (G.107 §7.5, equation 7-31). It is 1
// for independent (random) loss and grows with the mean length of the
// bursts.
//
// A pattern that defines only one of the two (no loss at all, or no lost
// packet followed by another packet) gives 1, and so does one less bursty
// than random (p+q > 1, loss spread out more evenly than chance would),
// for which G.107 does not define the E-model (Table 3 permits BurstR ≥ 1
// only).
func BurstR(lost []bool) float64 {
	var fromFound, foundToLost, fromLost, lostToFound int
	for i := 1; i < len(lost); i++ {
		if lost[i-1] {
			fromLost++
			if !lost[i] {
				lostToFound++
			}
		} else {
			fromFound++
			if lost[i] {
				foundToLost++
			}
		}
	}
	if fromFound == 0 || fromLost == 0 {
		return 1
	}
	p := float64(foundToLost) / float64(fromFound)
	q := float64(lostToFound) / float64(fromLost)
	if p+q >= 1 {
		return 1
	}
	return 1 / (p + q)
}

// OpusCall is CallQuality for Opus, with the delay in milliseconds and
// out-of-range inputs clamped rather than rejected: a negative delay or
// loss counts as 0, loss over 100% as 100%, and BurstR below 1 as 1. It
// suits figures computed from measurements, where such values mean
// rounding, not a bug. NaN in any input gives NaN.
func OpusCall(delayMs, lossPct, burstR float64) (r, mos float64) {
	if math.IsNaN(delayMs) || math.IsNaN(lossPct) || math.IsNaN(burstR) {
		return math.NaN(), math.NaN()
	}
	delay := time.Duration(max(0, delayMs) * float64(time.Millisecond))
	r, mos, err := CallQuality(delay, min(100, max(0, lossPct)), max(1, burstR), Opus)
	if err != nil { // cannot happen: every input is in range
		return math.NaN(), math.NaN()
	}
	return r, mos
}
