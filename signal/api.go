package signal

// This file states the package's API: the key and record types and the
// stores a caller provides. The functions are in cipher.go, keys.go and the
// other files named in doc.go.

import (
	"context"
	"crypto/ecdh"
	"time"

	"github.com/parleychat/parley"
)

// PublicKey is a Curve25519 public key. Its encoding is 0x05 followed by the
// 32-byte Montgomery u-coordinate, as libsignal's DjbPublicKey.
type PublicKey struct{ k [32]byte }

// noCompare makes a struct incomparable with ==.
type noCompare [0]func()

// PrivateKey is a Curve25519 private key. It cannot be compared with == and
// must never be logged.
type PrivateKey struct {
	_  noCompare
	k  [32]byte
	ek *ecdh.PrivateKey // k for crypto/ecdh, with its public key; nil until needed
}

// KeyPair is a Curve25519 key pair. The identity key pair is one.
type KeyPair struct {
	Public  PublicKey
	Private PrivateKey
}

// KyberPublicKey is a Kyber-1024 (round 3, as libsignal's KEM type 0x08)
// public key. Its encoding is 0x08 followed by 1568 bytes.
type KyberPublicKey struct{ b []byte }

// KyberPrivateKey is a Kyber-1024 private key.
type KyberPrivateKey struct {
	_ noCompare
	b []byte
}

// KyberKeyPair is a Kyber-1024 key pair.
type KyberKeyPair struct {
	Public  KyberPublicKey
	Private KyberPrivateKey
}

// Key encodings, as libsignal.
const (
	DjbType         = 0x05
	KyberType       = 0x08
	PublicKeySize   = 33   // DjbType || 32 bytes
	KyberPubKeySize = 1569 // KyberType || 1568 bytes
	SignatureSize   = 64
)

// PreKeyRecord is a one-time prekey kept by its owner.
type PreKeyRecord struct {
	ID  uint32
	Key KeyPair
}

// SignedPreKeyRecord is a signed prekey kept by its owner.
type SignedPreKeyRecord struct {
	ID        uint32
	Timestamp time.Time
	Key       KeyPair
	Signature []byte // XEdDSA by the identity key over Key.Public.Bytes()
}

// KyberPreKeyRecord is a Kyber prekey kept by its owner, one-time or last
// resort.
type KyberPreKeyRecord struct {
	ID         uint32
	Timestamp  time.Time
	Key        KyberKeyPair
	Signature  []byte // XEdDSA by the identity key over Key.Public.Bytes()
	LastResort bool   // kept after use instead of removed
}

// PreKeyBundle is what a sender fetches to start a session with a device.
type PreKeyBundle struct {
	RegistrationID        uint32
	DeviceID              parley.DeviceID
	HasPreKey             bool // a one-time prekey is included
	PreKeyID              uint32
	PreKey                PublicKey
	SignedPreKeyID        uint32
	SignedPreKey          PublicKey
	SignedPreKeySignature []byte
	KyberPreKeyID         uint32
	KyberPreKey           KyberPublicKey
	KyberPreKeySignature  []byte
	IdentityKey           PublicKey
}

// Direction says whether an identity is being trusted for sending or for
// receiving, as libsignal's Direction.
type Direction int

const (
	Sending Direction = iota
	Receiving
)

// IdentityKeyStore keeps the local identity and the remote identities seen.
type IdentityKeyStore interface {
	IdentityKeyPair(ctx context.Context) (KeyPair, error)
	LocalRegistrationID(ctx context.Context) (uint32, error)
	// SaveIdentity records key for addr and reports whether it replaced a
	// different key.
	SaveIdentity(ctx context.Context, addr parley.Address, key PublicKey) (changed bool, err error)
	IsTrustedIdentity(ctx context.Context, addr parley.Address, key PublicKey, dir Direction) (bool, error)
	// Identity returns the key recorded for addr; ok is false if none.
	Identity(ctx context.Context, addr parley.Address) (key PublicKey, ok bool, err error)
}

// SessionStore keeps one SessionRecord per remote address.
type SessionStore interface {
	// LoadSession returns nil, nil when there is no session.
	LoadSession(ctx context.Context, addr parley.Address) (*SessionRecord, error)
	StoreSession(ctx context.Context, addr parley.Address, rec *SessionRecord) error
}

// PreKeyStore keeps the local one-time prekeys. Load returns an error
// wrapping ErrNoPreKey when id is unknown.
type PreKeyStore interface {
	LoadPreKey(ctx context.Context, id uint32) (PreKeyRecord, error)
	RemovePreKey(ctx context.Context, id uint32) error
}

// SignedPreKeyStore keeps the local signed prekeys.
type SignedPreKeyStore interface {
	LoadSignedPreKey(ctx context.Context, id uint32) (SignedPreKeyRecord, error)
}

// KyberPreKeyStore keeps the local Kyber prekeys. MarkKyberPreKeyUsed removes
// a one-time key and keeps a last-resort one.
type KyberPreKeyStore interface {
	LoadKyberPreKey(ctx context.Context, id uint32) (KyberPreKeyRecord, error)
	MarkKyberPreKeyUsed(ctx context.Context, id uint32) error
}

// Store is everything a session needs from its owner.
type Store interface {
	IdentityKeyStore
	SessionStore
	PreKeyStore
	SignedPreKeyStore
	KyberPreKeyStore
}

// CiphertextMessage is an encrypted message ready to send.
type CiphertextMessage struct {
	Type       parley.EnvelopeType // EnvelopePreKey until the peer has answered, then EnvelopeSignal
	Serialized []byte
}
