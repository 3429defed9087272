package signal

import (
	"fmt"
	"time"
)

// GenerateSignedPreKey returns a fresh signed prekey: a Curve25519 key pair
// whose serialised public key is signed by the identity key, as libsignal's
// KeyHelper / SignedPreKeyRecord.
func GenerateSignedPreKey(identity KeyPair, id uint32, now time.Time) (SignedPreKeyRecord, error) {
	kp, err := GenerateKeyPair()
	if err != nil {
		return SignedPreKeyRecord{}, fmt.Errorf("generate signed prekey: %w", err)
	}
	sig, err := identity.Private.Sign(kp.Public.Bytes())
	if err != nil {
		return SignedPreKeyRecord{}, fmt.Errorf("generate signed prekey: %w", err)
	}
	return SignedPreKeyRecord{ID: id, Timestamp: now, Key: kp, Signature: sig}, nil
}

// GenerateKyberPreKey returns a fresh Kyber-1024 prekey whose serialised
// public key (KyberType || 1568 bytes) is signed by the identity key, as
// libsignal's KyberPreKeyRecord::generate.
func GenerateKyberPreKey(identity KeyPair, id uint32, now time.Time, lastResort bool) (KyberPreKeyRecord, error) {
	kp, err := GenerateKyberKeyPair()
	if err != nil {
		return KyberPreKeyRecord{}, fmt.Errorf("generate kyber prekey: %w", err)
	}
	sig, err := identity.Private.Sign(kp.Public.Bytes())
	if err != nil {
		return KyberPreKeyRecord{}, fmt.Errorf("generate kyber prekey: %w", err)
	}
	return KyberPreKeyRecord{ID: id, Timestamp: now, Key: kp, Signature: sig, LastResort: lastResort}, nil
}

// GeneratePreKey returns a fresh one-time prekey.
func GeneratePreKey(id uint32) (PreKeyRecord, error) {
	kp, err := GenerateKeyPair()
	if err != nil {
		return PreKeyRecord{}, fmt.Errorf("generate prekey: %w", err)
	}
	return PreKeyRecord{ID: id, Key: kp}, nil
}
