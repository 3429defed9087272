package signal

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
)

// Curve25519 keys as libsignal's rust/core/src/curve.rs: a public key is
// serialised as DjbType followed by the 32-byte Montgomery u-coordinate; a
// private key is the 32-byte clamped scalar.

// GenerateKeyPair returns a fresh Curve25519 key pair.
func GenerateKeyPair() (KeyPair, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return KeyPair{}, fmt.Errorf("signal: generate key pair: %w", err)
	}
	priv, err := DecodePrivateKey(seed[:])
	if err != nil {
		return KeyPair{}, err
	}
	priv.ek = priv.ecdh() // computes the public key once, kept for Agree
	return KeyPair{Public: priv.Public(), Private: priv}, nil
}

// DecodePublicKey decodes DjbType || 32 bytes. Unlike libsignal, which logs
// and ignores trailing bytes, it accepts exactly PublicKeySize bytes.
func DecodePublicKey(b []byte) (PublicKey, error) {
	if len(b) == 0 {
		return PublicKey{}, fmt.Errorf("decode public key: no key type: %w", ErrInvalidKey)
	}
	if b[0] != DjbType {
		return PublicKey{}, fmt.Errorf("decode public key: key type %#02x: %w", b[0], ErrInvalidKey)
	}
	if len(b) != PublicKeySize {
		return PublicKey{}, fmt.Errorf("decode public key: length %d: %w", len(b), ErrInvalidKey)
	}
	var k PublicKey
	copy(k.k[:], b[1:])
	return k, nil
}

// Bytes returns DjbType || the 32-byte u-coordinate.
func (k PublicKey) Bytes() []byte {
	b := make([]byte, PublicKeySize)
	b[0] = DjbType
	copy(b[1:], k.k[:])
	return b
}

// Equal reports whether k and o are the same key, in constant time.
func (k PublicKey) Equal(o PublicKey) bool {
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// IsZero reports whether k is the zero value (no key).
func (k PublicKey) IsZero() bool { return k.k == [32]byte{} }

// String returns a short hex prefix of the key for logs.
func (k PublicKey) String() string { return fmt.Sprintf("PublicKey(%x…)", k.k[:6]) }

// PrivateKeySize is the length of a serialised private key.
const PrivateKeySize = 32

// DecodePrivateKey decodes a 32-byte Curve25519 private key. The scalar is
// clamped on import, as libsignal does, so Bytes may differ from b.
func DecodePrivateKey(b []byte) (PrivateKey, error) {
	if len(b) != PrivateKeySize {
		return PrivateKey{}, fmt.Errorf("decode private key: length %d: %w", len(b), ErrInvalidKey)
	}
	var k PrivateKey
	copy(k.k[:], b)
	k.k[0] &= 248
	k.k[31] &= 127
	k.k[31] |= 64
	return k, nil
}

// Bytes returns the 32-byte clamped scalar. Keep it secret.
func (k PrivateKey) Bytes() []byte {
	b := make([]byte, PrivateKeySize)
	copy(b, k.k[:])
	return b
}

// String never prints key material.
func (k PrivateKey) String() string { return "PrivateKey(…)" }

// GoString never prints key material.
func (k PrivateKey) GoString() string { return "signal.PrivateKey{…}" }

func (k PrivateKey) ecdh() *ecdh.PrivateKey {
	if k.ek != nil {
		return k.ek
	}
	p, err := ecdh.X25519().NewPrivateKey(k.k[:])
	if err != nil { // only on a wrong length, which cannot happen
		panic("signal: X25519 private key: " + err.Error())
	}
	return p
}

// Public returns the public key of k.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p.k[:], k.ecdh().PublicKey().Bytes())
	return p
}

// Agree returns the X25519 shared secret of k and pub. It fails with
// ErrInvalidKey when the result is all zeros (pub is of small order), as
// libsignal's CurveError::InvalidKeyAgreement.
func (k PrivateKey) Agree(pub PublicKey) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub.k[:])
	if err != nil {
		return nil, fmt.Errorf("agree: %w: %v", ErrInvalidKey, err)
	}
	s, err := k.ecdh().ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("agree: %w: %v", ErrInvalidKey, err)
	}
	return s, nil
}

// MarshalBinary encodes the key pair for storage: the 33-byte public key
// followed by the 32-byte private key.
func (kp KeyPair) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, PublicKeySize+PrivateKeySize)
	b = append(b, kp.Public.Bytes()...)
	return append(b, kp.Private.k[:]...), nil
}

// UnmarshalKeyPair decodes KeyPair.MarshalBinary's encoding and checks that
// the halves belong together.
func UnmarshalKeyPair(b []byte) (KeyPair, error) {
	if len(b) != PublicKeySize+PrivateKeySize {
		return KeyPair{}, fmt.Errorf("unmarshal key pair: length %d: %w", len(b), ErrInvalidKey)
	}
	pub, err := DecodePublicKey(b[:PublicKeySize])
	if err != nil {
		return KeyPair{}, fmt.Errorf("unmarshal key pair: %w", err)
	}
	priv, err := DecodePrivateKey(b[PublicKeySize:])
	if err != nil {
		return KeyPair{}, fmt.Errorf("unmarshal key pair: %w", err)
	}
	if !priv.Public().Equal(pub) {
		return KeyPair{}, fmt.Errorf("unmarshal key pair: public key does not match: %w", ErrInvalidKey)
	}
	return KeyPair{Public: pub, Private: priv}, nil
}
