// Package quality scores the audio of a lab call: how intelligible the speech
// that arrived is compared with the speech that was sent, and what the
// measured network impairments mean for a listener.
//
// Two measures, each implemented from its publication:
//
//   - STOI, short-time objective intelligibility (Taal, Hendriks, Heusdens
//     and Jensen, "An Algorithm for Intelligibility Prediction of
//     Time–Frequency Weighted Noisy Speech", IEEE TASLP 19(7), 2011),
//     compares the clean and the degraded signal sample by sample. It
//     scores what the listener heard, so it sees concealment, clipping and
//     noise, but it needs the two signals lined up: Align finds the delay of
//     the degraded signal and Overlap cuts the two to their common part.
//     Read its scores against their floor, not against 0: the same speech
//     scores 1, but noise alone scores about 0.4 and unrelated speech
//     about 0.25, a property of the published algorithm (its clipping
//     step) that the reference implementation shares.
//   - The ITU-T G.107 (06/2015) E-model computes a transmission rating R,
//     and a MOS from it, from the impairments alone: one-way delay, packet
//     loss and its burstiness (BurstR), and the codec's equipment
//     impairment Ie and loss robustness Bpl. CallQuality and OpusCall
//     apply it to one direction of a lab call.
//
// ReadWAV and WriteWAV move 16-bit PCM between files and the float64
// samples (in [-1, 1]) that everything here takes, and Resample converts
// between sample rates with a windowed-sinc low-pass filter.
package quality
