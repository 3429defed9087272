package sframe

import (
	"fmt"
	"math"
	"sync"
)

// Sender encrypts frames under one KID with counters 0, 1, 2, … so that no
// (KID, CTR) pair repeats: the nonce is the key's salt XOR CTR
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.3), and a repeated
// nonce under an AEAD key forfeits its confidentiality and integrity. It is
// safe for concurrent use.
//
// The counter lives in memory only. Two Senders for the same KID, or a
// Sender made again after a restart, would reuse nonces: give each Sender a
// base key (and KID) of its own.
type Sender struct {
	ctx *Context
	kid uint64

	mu        sync.Mutex // guards next and exhausted
	next      uint64     // CTR of the next frame
	exhausted bool       // next wrapped: every CTR has been used
}

// NewSender returns a Sender for kid's key in c; its first frame has CTR 0.
func NewSender(c *Context, kid uint64) *Sender {
	return &Sender{ctx: c, kid: kid}
}

// Encrypt encrypts plaintext with the next counter and appends the SFrame
// ciphertext to dst, as Context.Encrypt. Once every counter is used it
// returns ErrCounterExhausted. A failed call does not use up a counter.
func (s *Sender) Encrypt(dst, metadata, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exhausted {
		return dst, fmt.Errorf("encrypt: kid %d: %w", s.kid, ErrCounterExhausted)
	}
	out, err := s.ctx.Encrypt(dst, s.kid, s.next, metadata, plaintext)
	if err != nil {
		return out, err
	}
	if s.next == math.MaxUint64 {
		s.exhausted = true
	} else {
		s.next++
	}
	return out, nil
}
