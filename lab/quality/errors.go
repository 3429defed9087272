package quality

import "errors"

var (
	// ErrTooShort means a signal is too short to be scored: STOI needs at
	// least 30 frames (384 ms at 10 kHz) of speech above its silence floor.
	ErrTooShort = errors.New("quality: signal too short")
	// ErrLengthMismatch means the clean and the degraded signal differ in
	// length; line them up first (Align and Overlap).
	ErrLengthMismatch = errors.New("quality: clean and degraded signals differ in length")
	// ErrSampleRate means a sample rate is not a positive number of hertz.
	ErrSampleRate = errors.New("quality: bad sample rate")
	// ErrFormat means a WAV file is not one this package reads: 16-bit
	// integer PCM.
	ErrFormat = errors.New("quality: unsupported WAV format")
	// ErrParam means an E-model input is out of its range.
	ErrParam = errors.New("quality: E-model parameter out of range")
)
