package signal

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// The Double Ratchet's key derivations, as libsignal's
// rust/protocol/src/ratchet/keys.rs
// (https://signal.org/docs/specifications/doubleratchet/#external-functions).

// libsignal's limits (rust/protocol/src/consts.rs).
const (
	MaxForwardJumps      = 25_000 // a message may skip at most this many keys of its chain
	MaxMessageKeys       = 2_000  // skipped message keys kept per receiver chain
	MaxReceiverChains    = 5
	ArchivedStatesMaxLen = 40
	// MaxUnacknowledgedSessionAge: a session whose PreKeySignalMessages were
	// never answered is not used for sending after this long.
	MaxUnacknowledgedSessionAge = 30 * 24 * 60 * 60 // seconds
)

// KDF labels, as libsignal.
const (
	labelRatchet     = "WhisperRatchet"
	labelMessageKeys = "WhisperMessageKeys"
)

// chainKey is a sending or receiving chain key with its index
// (https://signal.org/docs/specifications/doubleratchet/#symmetric-key-ratchet).
type chainKey struct {
	key   [32]byte
	index uint32
}

// messageSeed is HMAC-SHA256(ck, 0x01): the input from which the message
// keys of this index are derived. libsignal stores skipped keys as seeds.
func (c chainKey) messageSeed() [32]byte { return hmacByte(c.key[:], 0x01) }

// next is the following chain key, HMAC-SHA256(ck, 0x02).
func (c chainKey) next() chainKey { return chainKey{key: hmacByte(c.key[:], 0x02), index: c.index + 1} }

func hmacByte(key []byte, b byte) [32]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte{b})
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// messageKeys encrypt and authenticate one message.
type messageKeys struct {
	cipherKey [32]byte
	macKey    [32]byte
	iv        [16]byte
}

// deriveMessageKeys is libsignal's MessageKeys::derive_keys: HKDF-SHA256 of
// the seed with info "WhisperMessageKeys" into 80 bytes. salt is the SPQR
// message key when there is one, else nil.
func deriveMessageKeys(seed []byte, salt []byte) messageKeys {
	okm, err := hkdf.Key(sha256.New, seed, salt, labelMessageKeys, 80)
	if err != nil {
		panic("signal: hkdf: " + err.Error())
	}
	var mk messageKeys
	copy(mk.cipherKey[:], okm[:32])
	copy(mk.macKey[:], okm[32:64])
	copy(mk.iv[:], okm[64:])
	return mk
}

// kdfRK is the root-key step (RootKey::create_chain): HKDF-SHA256 with the
// root key as salt, DH(our, their) as input and info "WhisperRatchet" gives
// the next root key and a new chain key at index 0
// (https://signal.org/docs/specifications/doubleratchet/#diffie-hellman-ratchet).
func kdfRK(root [32]byte, our PrivateKey, their PublicKey) ([32]byte, chainKey, error) {
	dh, err := our.Agree(their)
	if err != nil {
		return [32]byte{}, chainKey{}, fmt.Errorf("ratchet step: %w", err)
	}
	okm, err := hkdf.Key(sha256.New, dh, root[:], labelRatchet, 64)
	if err != nil {
		panic("signal: hkdf: " + err.Error())
	}
	var newRoot [32]byte
	var ck chainKey
	copy(newRoot[:], okm[:32])
	copy(ck.key[:], okm[32:])
	return newRoot, ck, nil
}
