package signal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Interoperating with libsignal's SPQR (the Sparse Post-Quantum Ratchet,
// github.com/signalapp/SparsePostQuantumRatchet) without its ML-KEM part.
// doc.go explains why; in short: since libsignal v0.92 a peer must speak
// SPQR V1 (an empty pq_ratchet is rejected, and so is an unknown version),
// and a V1 message names an epoch, an index in that epoch's key chain and a
// payload. Until both sides complete an ML-KEM exchange, which needs
// payloads we never send, every message is in epoch 1 and its SPQR key comes
// from the epoch-0 chain derived from PQXDH's third 32-byte output
// (src/chain.rs). So we
//
//   - send V1 messages with the payload None in epoch 1, numbered by our
//     epoch-0 sending chain, whose key salts our message keys, and
//   - on receipt of a V1 message in epoch 1 take the key its index names
//     from our epoch-0 receiving chain, ignoring its payload (a chunk of the
//     peer's ML-KEM key or ciphertext).
//
// A session therefore never leaves SPQR epoch 0: it has PQXDH's
// post-quantum protection of the initial secret, but not SPQR's
// post-quantum healing after a compromise.

const (
	spqrVersion1    = 0x01
	spqrPayloadNone = 0                                   // MessageType::None
	spqrChainStart  = "Signal PQ Ratchet V1 Chain  Start" // two spaces, as libsignal
	spqrChainNext   = "Signal PQ Ratchet V1 Chain Next"
	spqrMaxJump     = MaxForwardJumps
	spqrMaxOOOKeys  = MaxMessageKeys
)

// spqrChain is the receiving half of SPQR's epoch-0 chain.
type spqrChain struct {
	ctr  uint32
	next [32]byte
	prev []spqrKey // skipped keys, oldest first
}

type spqrKey struct {
	index uint32
	key   [32]byte
}

// spqrState is the epoch-0 chain of a session: a sending and a receiving
// half.
type spqrState struct {
	send spqrChain
	recv spqrChain
}

// newSPQRState starts the chain from PQXDH's pqr key (Chain::new). The
// initiator (Alice) sends on the A2B half and receives on the B2A half.
func newSPQRState(pqrKey []byte, initiator bool) *spqrState {
	gen, err := hkdf.Key(sha256.New, pqrKey, make([]byte, 32), spqrChainStart, 96)
	if err != nil {
		panic("signal: hkdf: " + err.Error())
	}
	s := &spqrState{}
	a2b, b2a := gen[32:64], gen[64:96]
	if initiator {
		copy(s.send.next[:], a2b)
		copy(s.recv.next[:], b2a)
	} else {
		copy(s.send.next[:], b2a)
		copy(s.recv.next[:], a2b)
	}
	return s
}

func (s *spqrState) clone() *spqrState {
	if s == nil {
		return nil
	}
	c := *s
	c.recv.prev = append([]spqrKey(nil), s.recv.prev...)
	return &c
}

// sendMessage returns the next pq_ratchet field and the key that salts the
// message keys (spqr::send for a state that has nothing to send).
func (s *spqrState) sendMessage() (msg []byte, key [32]byte) {
	k := s.send.step()
	msg = append(msg, spqrVersion1)
	msg = binary.AppendUvarint(msg, 1) // epoch
	msg = binary.AppendUvarint(msg, uint64(k.index))
	msg = append(msg, spqrPayloadNone)
	return msg, k.key
}

// step advances the chain by one key.
func (c *spqrChain) step() spqrKey {
	c.ctr++
	info := binary.BigEndian.AppendUint32(nil, c.ctr)
	info = append(info, spqrChainNext...)
	gen, err := hkdf.Key(sha256.New, c.next[:], make([]byte, 32), string(info), 64)
	if err != nil {
		panic("signal: hkdf: " + err.Error())
	}
	k := spqrKey{index: c.ctr}
	copy(c.next[:], gen[:32])
	copy(k.key[:], gen[32:])
	return k
}

// key returns the key for index at, once.
func (c *spqrChain) key(at uint32) ([32]byte, error) {
	switch {
	case at == c.ctr:
		return [32]byte{}, fmt.Errorf("spqr key %d already used: %w", at, ErrInvalidMessage)
	case at < c.ctr:
		for i, k := range c.prev {
			if k.index == at {
				c.prev = append(c.prev[:i], c.prev[i+1:]...)
				return k.key, nil
			}
		}
		if uint64(at)+spqrMaxOOOKeys < uint64(c.ctr) {
			return [32]byte{}, fmt.Errorf("spqr key %d trimmed: %w", at, ErrInvalidMessage)
		}
		return [32]byte{}, fmt.Errorf("spqr key %d already used: %w", at, ErrInvalidMessage)
	}
	if at-c.ctr > spqrMaxJump {
		return [32]byte{}, fmt.Errorf("spqr key %d: %w", at, ErrTooFarInFuture)
	}
	for c.ctr+1 < at {
		k := c.step()
		if uint64(k.index)+spqrMaxOOOKeys >= uint64(at) {
			c.prev = append(c.prev, k)
		}
	}
	// Keep the newest MaxMessageKeys keys.
	if n := len(c.prev) - spqrMaxOOOKeys; n > 0 {
		c.prev = append(c.prev[:0], c.prev[n:]...)
	}
	return c.step().key, nil
}

// recvKey returns the SPQR key of a received message's pq_ratchet field,
// which salts its message keys (spqr::recv). It advances s (a clone the
// caller discards on failure).
func (s *spqrState) recvKey(pq []byte) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("spqr message without spqr state: %w", ErrInvalidMessage)
	}
	if len(pq) == 0 {
		// SPQR V0; libsignal has required V1 since v0.92.
		return nil, fmt.Errorf("no spqr message: %w", ErrInvalidMessage)
	}
	if pq[0] != spqrVersion1 {
		return nil, fmt.Errorf("spqr version %d: %w", pq[0], ErrInvalidMessage)
	}
	epoch, n := binary.Uvarint(pq[1:])
	if n <= 0 {
		return nil, fmt.Errorf("spqr message: bad epoch: %w", ErrInvalidMessage)
	}
	index, m := binary.Uvarint(pq[1+n:])
	if m <= 0 || index > 0xFFFFFFFF || len(pq) <= 1+n+m {
		return nil, fmt.Errorf("spqr message: bad index: %w", ErrInvalidMessage)
	}
	if typ := pq[1+n+m]; typ > 6 {
		return nil, fmt.Errorf("spqr message type %d: %w", typ, ErrInvalidMessage)
	}
	if epoch != 1 {
		// Later epochs need the ML-KEM exchange we do not take part in.
		return nil, fmt.Errorf("spqr message in epoch %d: %w", epoch, ErrInvalidMessage)
	}
	if index == 0 {
		// Index 0 names no key: libsignal 0.103 then derives the message
		// keys without an SPQR salt (seen by signaltest's
		// TestLibsignalSPQRAcceptance).
		return nil, nil
	}
	k, err := s.recv.key(uint32(index))
	if err != nil {
		return nil, err
	}
	return k[:], nil
}
