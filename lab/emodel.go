package lab

import (
	"github.com/parleychat/parley/lab/measure"
	"github.com/parleychat/parley/lab/quality"
)

// codecDelayMs is added to the playout delay to make the E-model's
// mouth-to-ear delay: a 20 ms frame to fill before it is sent, and about one
// more of encoding, decoding and playout.
const codecDelayMs = 40

// eModel is the E-model's R and MOS for a call whose listener played p.
func eModel(p measure.Playout, burstR float64) (r, mos float64) {
	return eModelFigures(ms(p.Delay), 100-p.PlayedPct, burstR)
}

// eModelFigures is the E-model's R and MOS for Opus with playoutDelayMs of
// playout delay and lossPct of the frames not played, lost with burstiness
// burstR.
func eModelFigures(playoutDelayMs, lossPct, burstR float64) (r, mos float64) {
	return quality.OpusCall(playoutDelayMs+codecDelayMs, lossPct, burstR)
}
