package signal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// PQXDH session set-up (https://signal.org/docs/specifications/pqxdh/),
// as libsignal's rust/protocol/src/pqxdh.rs and ratchet.rs.

// labelPQXDH is the HKDF info of PQXDH in libsignal.
const labelPQXDH = "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024"

// handshakeKeys is what PQXDH derives: HKDF-SHA256 (no salt) of the secret
// input into 96 bytes: the first root key, the first chain key, and the
// initial SPQR authentication key (libsignal's HandshakeKeys).
type handshakeKeys struct {
	root  [32]byte
	chain chainKey
	pqr   [32]byte
}

func deriveHandshakeKeys(secret []byte) handshakeKeys {
	okm, err := hkdf.Key(sha256.New, secret, nil, labelPQXDH, 96)
	if err != nil {
		panic("signal: hkdf: " + err.Error())
	}
	var k handshakeKeys
	copy(k.root[:], okm[:32])
	copy(k.chain.key[:], okm[32:64])
	copy(k.pqr[:], okm[64:])
	return k
}

// discontinuity is 32 bytes of 0xFF that precede the DH outputs
// (https://signal.org/docs/specifications/pqxdh/#cryptographic-notation, "F").
var discontinuity = [32]byte{
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
}

// pqxdhInitiate is the sender's side
// (https://signal.org/docs/specifications/pqxdh/#sending-the-initial-message):
// SK = KDF(F || DH(IKa, SPKb) || DH(EKa, IKb) || DH(EKa, SPKb) [|| DH(EKa, OPKb)] || SS).
func pqxdhInitiate(identity, base KeyPair, b *PreKeyBundle) (handshakeKeys, []byte, error) {
	secret := make([]byte, 0, 32*6)
	secret = append(secret, discontinuity[:]...)
	for _, step := range []struct {
		priv PrivateKey
		pub  PublicKey
	}{
		{identity.Private, b.SignedPreKey},
		{base.Private, b.IdentityKey},
		{base.Private, b.SignedPreKey},
	} {
		dh, err := step.priv.Agree(step.pub)
		if err != nil {
			return handshakeKeys{}, nil, fmt.Errorf("pqxdh: %w", err)
		}
		secret = append(secret, dh...)
	}
	if b.HasPreKey {
		dh, err := base.Private.Agree(b.PreKey)
		if err != nil {
			return handshakeKeys{}, nil, fmt.Errorf("pqxdh: %w", err)
		}
		secret = append(secret, dh...)
	}
	ss, ct, err := b.KyberPreKey.Encapsulate()
	if err != nil {
		return handshakeKeys{}, nil, fmt.Errorf("pqxdh: %w", err)
	}
	secret = append(secret, ss...)
	return deriveHandshakeKeys(secret), ct, nil
}

// pqxdhAccept is the recipient's side
// (https://signal.org/docs/specifications/pqxdh/#receiving-the-initial-message).
// oneTime is nil when the message named no one-time prekey.
func pqxdhAccept(identity, signed KeyPair, oneTime *KeyPair, kyber KyberPrivateKey, theirIdentity, theirBase PublicKey, kyberCT []byte) (handshakeKeys, error) {
	if !theirBase.isCanonical() {
		return handshakeKeys{}, fmt.Errorf("pqxdh: incoming base key is not canonical: %w", ErrInvalidMessage)
	}
	secret := make([]byte, 0, 32*6)
	secret = append(secret, discontinuity[:]...)
	steps := []struct {
		priv PrivateKey
		pub  PublicKey
	}{
		{signed.Private, theirIdentity},
		{identity.Private, theirBase},
		{signed.Private, theirBase},
	}
	if oneTime != nil {
		steps = append(steps, struct {
			priv PrivateKey
			pub  PublicKey
		}{oneTime.Private, theirBase})
	}
	for _, step := range steps {
		dh, err := step.priv.Agree(step.pub)
		if err != nil {
			return handshakeKeys{}, fmt.Errorf("pqxdh: %w: %v", ErrInvalidMessage, err)
		}
		secret = append(secret, dh...)
	}
	ss, err := kyber.Decapsulate(kyberCT)
	if err != nil {
		return handshakeKeys{}, fmt.Errorf("pqxdh: %w", err)
	}
	secret = append(secret, ss...)
	return deriveHandshakeKeys(secret), nil
}

// isCanonical reports whether k is a canonical u-coordinate (below 2^255-19)
// of a point without a small-order component, as libsignal's
// PublicKey::is_canonical, which PQXDH requires of the incoming base key.
func (k PublicKey) isCanonical() bool {
	// In range: the top bit is clear and the value is below p = 2^255 - 19.
	if k.k[31]&0x80 != 0 {
		return false
	}
	if k.k[31] == 0x7F && k.k[0] >= 0xED {
		allFF := true
		for _, b := range k.k[1:31] {
			if b != 0xFF {
				allFF = false
				break
			}
		}
		if allFF {
			return false
		}
	}
	// Torsion free: the Edwards point with sign 0 satisfies [L]P = 0,
	// computed as [L-1]P + P.
	u, err := new(field.Element).SetBytes(k.k[:])
	if err != nil {
		return false
	}
	one := new(field.Element).One()
	uPlus1 := new(field.Element).Add(u, one)
	if uPlus1.Equal(new(field.Element).Zero()) == 1 {
		return false
	}
	y := new(field.Element).Subtract(u, one)
	y.Multiply(y, new(field.Element).Invert(uPlus1))
	p, err := new(edwards25519.Point).SetBytes(y.Bytes())
	if err != nil {
		return false
	}
	minusOne := edwards25519.NewScalar().Subtract(edwards25519.NewScalar(), scalarOne)
	q := new(edwards25519.Point).ScalarMult(minusOne, p)
	q.Add(q, p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}

var scalarOne = func() *edwards25519.Scalar {
	var b [32]byte
	b[0] = 1
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic(err)
	}
	return s
}()
