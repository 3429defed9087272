package signal

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"

	"github.com/cloudflare/circl/kem/kyber/kyber1024"
)

// Kyber-1024 as libsignal's KEM key type 0x08 (rust/protocol/src/kem.rs,
// kem/kyber1024.rs): round-3 Kyber, which circl implements. Go's crypto/mlkem
// is FIPS 203 ML-KEM and derives a different shared secret. Public keys,
// secret keys and ciphertexts are all serialised with the KyberType byte in
// front.

// Kyber sizes.
const (
	KyberPrivKeySize    = 1 + kyber1024.PrivateKeySize // 3169
	KyberCiphertextSize = 1 + kyber1024.CiphertextSize // 1569
)

// GenerateKyberKeyPair returns a fresh Kyber-1024 key pair.
func GenerateKyberKeyPair() (KyberKeyPair, error) {
	pk, sk, err := kyber1024.GenerateKeyPair(rand.Reader)
	if err != nil {
		return KyberKeyPair{}, fmt.Errorf("signal: generate kyber key pair: %w", err)
	}
	pub := make([]byte, KyberPubKeySize)
	pub[0] = KyberType
	pk.Pack(pub[1:])
	priv := make([]byte, KyberPrivKeySize)
	priv[0] = KyberType
	sk.Pack(priv[1:])
	return KyberKeyPair{Public: KyberPublicKey{b: pub}, Private: KyberPrivateKey{b: priv}}, nil
}

// DecodeKyberPublicKey decodes KyberType || 1568 bytes.
func DecodeKyberPublicKey(b []byte) (KyberPublicKey, error) {
	if len(b) == 0 {
		return KyberPublicKey{}, fmt.Errorf("decode kyber public key: no key type: %w", ErrInvalidKey)
	}
	if b[0] != KyberType {
		return KyberPublicKey{}, fmt.Errorf("decode kyber public key: key type %#02x: %w", b[0], ErrInvalidKey)
	}
	if len(b) != KyberPubKeySize {
		return KyberPublicKey{}, fmt.Errorf("decode kyber public key: length %d: %w", len(b), ErrInvalidKey)
	}
	return KyberPublicKey{b: append([]byte(nil), b...)}, nil
}

// Bytes returns KyberType || 1568 bytes, or nil for the zero value.
func (k KyberPublicKey) Bytes() []byte {
	if k.b == nil {
		return nil
	}
	return append([]byte(nil), k.b...)
}

// Equal reports whether k and o are the same key.
func (k KyberPublicKey) Equal(o KyberPublicKey) bool {
	return len(k.b) == len(o.b) && subtle.ConstantTimeCompare(k.b, o.b) == 1
}

// IsZero reports whether k is the zero value (no key).
func (k KyberPublicKey) IsZero() bool { return len(k.b) == 0 }

// DecodeKyberPrivateKey decodes KyberType || 3168 bytes, as libsignal's
// kem::SecretKey::deserialize.
func DecodeKyberPrivateKey(b []byte) (KyberPrivateKey, error) {
	if len(b) == 0 || b[0] != KyberType || len(b) != KyberPrivKeySize {
		return KyberPrivateKey{}, fmt.Errorf("decode kyber private key: %w", ErrInvalidKey)
	}
	return KyberPrivateKey{b: append([]byte(nil), b...)}, nil
}

// Bytes returns KyberType || the secret key. Keep it secret.
func (k KyberPrivateKey) Bytes() []byte { return append([]byte(nil), k.b...) }

// String never prints key material.
func (k KyberPrivateKey) String() string { return "KyberPrivateKey(…)" }

// GoString never prints key material.
func (k KyberPrivateKey) GoString() string { return "signal.KyberPrivateKey{…}" }

// Encapsulate returns a fresh shared secret and its ciphertext
// (KyberType || 1568 bytes) for k.
func (k KyberPublicKey) Encapsulate() (sharedSecret, ciphertext []byte, err error) {
	if len(k.b) != KyberPubKeySize || k.b[0] != KyberType {
		return nil, nil, fmt.Errorf("kyber encapsulate: %w", ErrInvalidKey)
	}
	var pk kyber1024.PublicKey
	pk.Unpack(k.b[1:])
	seed := make([]byte, kyber1024.EncapsulationSeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, nil, fmt.Errorf("kyber encapsulate: %w", err)
	}
	ct := make([]byte, KyberCiphertextSize)
	ct[0] = KyberType
	ss := make([]byte, kyber1024.SharedKeySize)
	pk.EncapsulateTo(ct[1:], ss, seed)
	return ss, ct, nil
}

// Decapsulate returns the shared secret of ciphertext (KyberType || 1568
// bytes). A wrong type byte or length is ErrInvalidMessage; a tampered
// ciphertext yields a pseudo-random secret (implicit rejection) and fails
// later at the MAC.
func (k KyberPrivateKey) Decapsulate(ciphertext []byte) ([]byte, error) {
	if len(k.b) != KyberPrivKeySize || k.b[0] != KyberType {
		return nil, fmt.Errorf("kyber decapsulate: %w", ErrInvalidKey)
	}
	if len(ciphertext) != KyberCiphertextSize || ciphertext[0] != KyberType {
		return nil, fmt.Errorf("kyber decapsulate: ciphertext of %d bytes: %w", len(ciphertext), ErrInvalidMessage)
	}
	var sk kyber1024.PrivateKey
	sk.Unpack(k.b[1:])
	ss := make([]byte, kyber1024.SharedKeySize)
	sk.DecapsulateTo(ss, ciphertext[1:])
	return ss, nil
}
