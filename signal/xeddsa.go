package signal

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// XEdDSA signatures with a Curve25519 key:
// https://signal.org/docs/specifications/xeddsa/#curve25519
//
// libsignal's variant (rust/core/src/curve/curve25519.rs) differs from the
// paper in one way: the private scalar is not negated to force the Edwards
// public key's sign bit to 0. Instead the sign bit of A = a·B is stored in the
// top bit of the signature's last byte (which is always 0 in S), and the
// verifier converts the Montgomery key to Edwards with that sign. The nonce
// hash takes 64 random bytes.

// hashPrefix1 is the domain separator of the nonce hash: 2^256 - 2 in
// little-endian, i.e. 0xFE followed by 31 bytes of 0xFF
// (https://signal.org/docs/specifications/xeddsa/#hash-functions, hash_1).
var hashPrefix1 = func() [32]byte {
	var p [32]byte
	for i := range p {
		p[i] = 0xFF
	}
	p[0] = 0xFE
	return p
}()

// Sign returns an XEdDSA signature of msg, as libsignal's
// PrivateKey::calculate_signature.
func (k PrivateKey) Sign(msg []byte) ([]byte, error) {
	var z [64]byte
	if _, err := rand.Read(z[:]); err != nil {
		return nil, fmt.Errorf("signal: sign: %w", err)
	}
	return k.signWithRandom(msg, &z), nil
}

func (k PrivateKey) signWithRandom(msg []byte, z *[64]byte) []byte {
	// a: the clamped scalar reduced mod L; A = a·B.
	a, err := edwards25519.NewScalar().SetBytesWithClamping(k.k[:])
	if err != nil {
		panic("signal: sign: " + err.Error())
	}
	capA := new(edwards25519.Point).ScalarBaseMult(a).Bytes()
	signBit := capA[31] & 0x80

	// r = hash_1(a || M || Z) mod L
	h := sha512.New()
	h.Write(hashPrefix1[:])
	h.Write(k.k[:])
	h.Write(msg)
	h.Write(z[:])
	r, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		panic("signal: sign: " + err.Error())
	}
	capR := new(edwards25519.Point).ScalarBaseMult(r).Bytes()

	// h = hash(R || A || M) mod L; s = r + h·a
	h.Reset()
	h.Write(capR)
	h.Write(capA)
	h.Write(msg)
	hs, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		panic("signal: sign: " + err.Error())
	}
	s := edwards25519.NewScalar().MultiplyAdd(hs, a, r)

	sig := make([]byte, 0, SignatureSize)
	sig = append(sig, capR...)
	sig = append(sig, s.Bytes()...)
	sig[SignatureSize-1] = sig[SignatureSize-1]&0x7F | signBit
	return sig
}

// VerifySignature reports whether sig is a valid XEdDSA signature of msg by
// k, checked exactly as libsignal's PrivateKey::verify_signature.
func (k PublicKey) VerifySignature(msg, sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	// Montgomery u → Edwards y = (u-1)/(u+1), with the sign bit from the
	// signature (https://signal.org/docs/specifications/xeddsa/#curve25519,
	// convert_mont). The u-coordinate's top bit is ignored and non-canonical
	// values are reduced, as curve25519-dalek's MontgomeryPoint::to_edwards.
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
	yb := y.Bytes()
	yb[31] |= sig[SignatureSize-1] & 0x80
	capA, err := new(edwards25519.Point).SetBytes(yb)
	if err != nil {
		return false
	}

	var sb [64]byte
	copy(sb[:32], sig[32:])
	sb[31] &= 0x7F
	if sb[31]&0xE0 != 0 {
		return false
	}
	// libsignal reduces s mod L rather than rejecting s >= L.
	s, err := edwards25519.NewScalar().SetUniformBytes(sb[:])
	if err != nil {
		return false
	}

	h := sha512.New()
	h.Write(sig[:32])
	h.Write(capA.Bytes())
	h.Write(msg)
	hs, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		return false
	}
	// R' = s·B - h·A
	minusA := new(edwards25519.Point).Negate(capA)
	check := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(hs, minusA, s)
	return subtle.ConstantTimeCompare(check.Bytes(), sig[:32]) == 1
}
