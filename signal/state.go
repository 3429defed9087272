package signal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
)

// sessionState is one Double Ratchet session with a peer, as libsignal's
// SessionStructure (rust/protocol/src/proto/storage.proto) and its
// operations in rust/protocol/src/double_ratchet.rs.
type sessionState struct {
	version         uint32 // 4: established with PQXDH
	localIdentity   PublicKey
	remoteIdentity  PublicKey
	rootKey         [32]byte
	previousCounter uint32
	sender          *senderChain
	receivers       []*receiverChain // oldest first; at most MaxReceiverChains
	pending         *pendingPreKey   // set until the peer answers
	remoteRegID     uint32
	localRegID      uint32
	aliceBaseKey    PublicKey  // identifies the PQXDH run that made the session
	spqr            *spqrState // SPQR epoch-0 chain (spqr.go)
}

type senderChain struct {
	ratchet KeyPair
	chain   chainKey
}

type receiverChain struct {
	ratchetKey PublicKey
	chain      chainKey
	skipped    []skippedKey // oldest first; at most MaxMessageKeys
}

// skippedKey is the seed of a message key not yet used, as libsignal's
// MessageKeyGenerator::Seed.
type skippedKey struct {
	index uint32
	seed  [32]byte
}

// pendingPreKey is what the initiator repeats in every PreKeySignalMessage
// until the recipient answers.
type pendingPreKey struct {
	hasPreKeyID     bool
	preKeyID        uint32
	signedPreKeyID  uint32
	baseKey         PublicKey
	timestamp       uint64 // seconds since the Unix epoch
	kyberPreKeyID   uint32
	kyberCiphertext []byte
}

// clone deep-copies s so that a failed decryption leaves s untouched.
func (s *sessionState) clone() *sessionState {
	c := *s
	if s.sender != nil {
		sc := *s.sender
		c.sender = &sc
	}
	c.receivers = make([]*receiverChain, len(s.receivers))
	for i, r := range s.receivers {
		rc := *r
		rc.skipped = append([]skippedKey(nil), r.skipped...)
		c.receivers[i] = &rc
	}
	if s.pending != nil {
		p := *s.pending
		c.pending = &p
	}
	c.spqr = s.spqr.clone()
	return &c
}

func (s *sessionState) receiverChain(key PublicKey) *receiverChain {
	for _, r := range s.receivers {
		if r.ratchetKey.Equal(key) {
			return r
		}
	}
	return nil
}

func (s *sessionState) addReceiverChain(key PublicKey, ck chainKey) *receiverChain {
	r := &receiverChain{ratchetKey: key, chain: ck}
	s.receivers = append(s.receivers, r)
	if len(s.receivers) > MaxReceiverChains {
		s.receivers = append(s.receivers[:0], s.receivers[1:]...)
	}
	return r
}

// encrypt encrypts plaintext with the next key of the sending chain and
// returns the serialized SignalMessage
// (https://signal.org/docs/specifications/doubleratchet/#encrypting-messages;
// libsignal's OutgoingTripleRatchet::encrypt).
func (s *sessionState) encrypt(plaintext []byte) ([]byte, error) {
	if s.sender == nil {
		return nil, fmt.Errorf("encrypt: no sending chain: %w", ErrNoSession)
	}
	ck := s.sender.chain
	seed := ck.messageSeed()
	if s.spqr == nil {
		return nil, fmt.Errorf("encrypt: no spqr state: %w", ErrNoSession)
	}
	pq, pqKey := s.spqr.sendMessage()
	mk := deriveMessageKeys(seed[:], pqKey[:])
	ct := cbcEncrypt(mk.cipherKey[:], mk.iv[:], plaintext)
	msg := encodeSignalMessage(mk.macKey[:], s.localIdentity, s.remoteIdentity,
		s.sender.ratchet.Public, ck.index, s.previousCounter, ct, pq)
	s.sender.chain = ck.next()
	return msg, nil
}

// decrypt decrypts m with this state, updating it. Callers pass a clone and
// keep it only on success (libsignal's TripleRatchet::decrypt).
func (s *sessionState) decrypt(m *signalMessage, maxJumps uint32) ([]byte, error) {
	if s.version != uint32(m.version) {
		return nil, fmt.Errorf("decrypt: message version %d for a version %d session: %w", m.version, s.version, ErrInvalidMessage)
	}
	r, err := s.ensureReceiverChain(m.ratchetKey)
	if err != nil {
		return nil, err
	}
	seed, err := s.consumeMessageKey(r, m.counter, maxJumps)
	if err != nil {
		return nil, err
	}
	salt, err := s.spqr.recvKey(m.pqRatchet)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	mk := deriveMessageKeys(seed[:], salt)
	if !m.verifyMAC(mk.macKey[:], s.remoteIdentity, s.localIdentity) {
		return nil, fmt.Errorf("decrypt: bad MAC: %w", ErrInvalidMessage)
	}
	// libsignal rejects any addresses it cannot match; ours are never
	// Signal service ids, so a message naming addresses is not for us.
	if m.addresses != nil {
		return nil, fmt.Errorf("decrypt: message carries addresses: %w", ErrInvalidMessage)
	}
	pt, err := cbcDecrypt(mk.cipherKey[:], mk.iv[:], m.ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	s.pending = nil // the peer has answered (libsignal clears it on any decrypt)
	return pt, nil
}

// ensureReceiverChain returns the chain for the sender's ratchet key, taking
// a DH ratchet step when the key is new
// (https://signal.org/docs/specifications/doubleratchet/#diffie-hellman-ratchet).
func (s *sessionState) ensureReceiverChain(their PublicKey) (*receiverChain, error) {
	if r := s.receiverChain(their); r != nil {
		return r, nil
	}
	if s.sender == nil {
		return nil, fmt.Errorf("decrypt: no sending chain: %w", ErrInvalidMessage)
	}
	root, recvCK, err := kdfRK(s.rootKey, s.sender.ratchet.Private, their)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w: %v", ErrInvalidMessage, err)
	}
	next, err := GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	root2, sendCK, err := kdfRK(root, next.Private, their)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w: %v", ErrInvalidMessage, err)
	}
	if s.sender.chain.index > 0 {
		s.previousCounter = s.sender.chain.index - 1
	} else {
		s.previousCounter = 0
	}
	s.rootKey = root2
	r := s.addReceiverChain(their, recvCK)
	s.sender = &senderChain{ratchet: next, chain: sendCK}
	return r, nil
}

// consumeMessageKey returns the message key seed for counter, storing the
// seeds it skips (https://signal.org/docs/specifications/doubleratchet/#deferred-ratchet-steps;
// libsignal's RatchetState::consume_message_key).
func (s *sessionState) consumeMessageKey(r *receiverChain, counter, maxJumps uint32) ([32]byte, error) {
	ck := r.chain
	if ck.index > counter {
		for i, k := range r.skipped {
			if k.index == counter {
				r.skipped = append(r.skipped[:i], r.skipped[i+1:]...)
				return k.seed, nil
			}
		}
		return [32]byte{}, fmt.Errorf("decrypt: counter %d, chain at %d: %w", counter, ck.index, ErrDuplicateMessage)
	}
	if counter-ck.index > maxJumps {
		return [32]byte{}, fmt.Errorf("decrypt: counter %d, chain at %d: %w", counter, ck.index, ErrTooFarInFuture)
	}
	for ck.index < counter {
		r.skipped = append(r.skipped, skippedKey{index: ck.index, seed: ck.messageSeed()})
		ck = ck.next()
	}
	if n := len(r.skipped) - MaxMessageKeys; n > 0 {
		r.skipped = append(r.skipped[:0], r.skipped[n:]...)
	}
	r.chain = ck.next()
	return ck.messageSeed(), nil
}

// cbcEncrypt is AES-256-CBC with PKCS#7 padding, as libsignal's
// signal_crypto::aes_256_cbc_encrypt.
func cbcEncrypt(key, iv, plaintext []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("signal: aes: " + err.Error())
	}
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	out := make([]byte, len(plaintext)+pad)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out, out)
	return out
}

// cbcDecrypt reverses cbcEncrypt. The MAC has been checked before, so the
// padding check is no oracle.
func cbcDecrypt(key, iv, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ciphertext of %d bytes: %w", len(ciphertext), ErrInvalidMessage)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("signal: aes: " + err.Error())
	}
	out := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ciphertext)
	pad := int(out[len(out)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, fmt.Errorf("bad padding: %w", ErrInvalidMessage)
	}
	good := 1
	for _, b := range out[len(out)-pad:] {
		good &= subtle.ConstantTimeByteEq(b, byte(pad))
	}
	if good != 1 {
		return nil, fmt.Errorf("bad padding: %w", ErrInvalidMessage)
	}
	return out[:len(out)-pad], nil
}
