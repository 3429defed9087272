package sframe

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Header is the SFrame header: the key ID (KID) and counter (CTR) sent in
// clear before every ciphertext
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.3).
//
// Wire layout: one config byte, then the extended KID (if X), then the
// extended CTR (if Y), both big-endian in the fewest bytes that hold them.
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|X|  K  |Y|  C  |   config byte
//	+-+-+-+-+-+-+-+-+
//	X=0: K is the KID (0–7).   X=1: K+1 bytes of KID follow.
//	Y=0: C is the CTR (0–7).   Y=1: C+1 bytes of CTR follow (after the KID).
type Header struct {
	KID uint64 // key ID: selects the base key
	CTR uint64 // counter: unique per KID, forms the nonce
}

// MaxHeaderSize is the longest encoded header: config byte, 8-byte KID,
// 8-byte CTR.
const MaxHeaderSize = 1 + 8 + 8

// Config byte bits (https://www.rfc-editor.org/rfc/rfc9605#section-4.3).
const (
	flagX     = 0x80 // KID is extended
	shiftK    = 4    // K: KID or KID length-1, bits 4–6
	flagY     = 0x08 // CTR is extended
	maskValue = 0x07 // K and C are 3 bits
)

// Len returns the length of h's encoding.
func (h Header) Len() int {
	return 1 + extLen(h.KID) + extLen(h.CTR)
}

// extLen is how many bytes follow the config byte for v: none if v fits in
// three bits, else the fewest bytes holding v big-endian.
func extLen(v uint64) int {
	if v < 8 {
		return 0
	}
	return (bits.Len64(v) + 7) / 8
}

// Append appends h's minimal encoding to b
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.3).
func (h Header) Append(b []byte) []byte {
	var cfg byte
	kl, cl := extLen(h.KID), extLen(h.CTR)
	if kl == 0 {
		cfg |= byte(h.KID) << shiftK
	} else {
		cfg |= flagX | byte(kl-1)<<shiftK
	}
	if cl == 0 {
		cfg |= byte(h.CTR)
	} else {
		cfg |= flagY | byte(cl-1)
	}
	b = append(b, cfg)
	b = appendUint(b, h.KID, kl)
	return appendUint(b, h.CTR, cl)
}

// appendUint appends the low n bytes of v, big-endian.
func appendUint(b []byte, v uint64, n int) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return append(b, buf[8-n:]...)
}

// ParseHeader decodes the header at the start of b and returns it with its
// length in bytes (https://www.rfc-editor.org/rfc/rfc9605#section-4.3).
// It accepts non-minimal extended values: the header is authenticated
// byte for byte as received, so nothing is lost by accepting them, while
// Append always writes the minimal form.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 1 {
		return Header{}, 0, fmt.Errorf("parse header: empty input: %w", ErrMalformed)
	}
	cfg := b[0]
	n := 1
	var h Header
	var ok bool
	if h.KID, n, ok = parseField(b, n, cfg&flagX != 0, cfg>>shiftK&maskValue); !ok {
		return Header{}, 0, fmt.Errorf("parse header: KID needs %d bytes, have %d: %w", 1+int(cfg>>shiftK&maskValue), len(b)-1, ErrMalformed)
	}
	kidEnd := n
	if h.CTR, n, ok = parseField(b, n, cfg&flagY != 0, cfg&maskValue); !ok {
		return Header{}, 0, fmt.Errorf("parse header: CTR needs %d bytes, have %d: %w", 1+int(cfg&maskValue), len(b)-kidEnd, ErrMalformed)
	}
	return h, n, nil
}

// parseField reads one KID or CTR value: v itself if not extended, else
// v+1 big-endian bytes at b[off:].
func parseField(b []byte, off int, extended bool, v byte) (uint64, int, bool) {
	if !extended {
		return uint64(v), off, true
	}
	l := int(v) + 1
	if len(b)-off < l {
		return 0, off, false
	}
	var x uint64
	for _, c := range b[off : off+l] {
		x = x<<8 | uint64(c)
	}
	return x, off + l, true
}
