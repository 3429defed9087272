package sframe

import (
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"hash"
	"slices"
)

// The AES-CTR + HMAC AEAD of
// https://www.rfc-editor.org/rfc/rfc9605#section-4.5.1. sframe_key is split
// into enc_key (AES-CTR) and auth_key (HMAC) in AddKey.

var errTag = errors.New("tag mismatch")

func newHMAC(h func() hash.Hash, authKey []byte) hash.Hash { return hmac.New(h, authKey) }

// sealCTR appends ct || tag to dst.
func (k *keyState) sealCTR(d *direction, dst, nonce, pt, aad []byte) []byte {
	start := len(dst)
	dst = slices.Grow(dst, len(pt)+k.p.nt)[:start+len(pt)+k.p.nt]
	ct := dst[start : start+len(pt)]
	// initial_counter = nonce + 0x00000000; ct = AES-CTR.Encrypt(enc_key, initial_counter, pt)
	k.xorKeyStream(d, ct, nonce, pt)
	copy(dst[start+len(pt):], k.tag(d, nonce, aad, ct))
	return dst
}

// openCTR checks the tag of ct || tag and appends the plaintext to dst.
func (k *keyState) openCTR(d *direction, dst, nonce, ctTag, aad []byte) ([]byte, error) {
	ct, tag := ctTag[:len(ctTag)-k.p.nt], ctTag[len(ctTag)-k.p.nt:]
	// if !constant_time_equal(tag, compute_tag(auth_key, nonce, aad, ct)): raise Exception
	if !hmac.Equal(tag, k.tag(d, nonce, aad, ct)) {
		return dst, errTag
	}
	start := len(dst)
	dst = slices.Grow(dst, len(ct))[:start+len(ct)]
	k.xorKeyStream(d, dst[start:], nonce, ct)
	return dst, nil
}

func (k *keyState) xorKeyStream(d *direction, out, nonce, in []byte) {
	d.iv = [16]byte{} // nonce || 0x00000000
	copy(d.iv[:], nonce)
	cipher.NewCTR(k.block, d.iv[:]).XORKeyStream(out, in)
}

// tag computes compute_tag(auth_key, nonce, aad, ct):
//
//	auth_data = len(aad) || len(ct) || Nt || nonce || aad || ct   (lengths as 8-byte big-endian)
//	tag = HMAC(auth_key, auth_data)[..Nt]
//
// The result aliases d.sum and is valid until the next call.
func (k *keyState) tag(d *direction, nonce, aad, ct []byte) []byte {
	binary.BigEndian.PutUint64(d.lens[0:], uint64(len(aad)))
	binary.BigEndian.PutUint64(d.lens[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(d.lens[16:], uint64(k.p.nt))
	d.mac.Reset()
	d.mac.Write(d.lens[:])
	d.mac.Write(nonce)
	d.mac.Write(aad)
	d.mac.Write(ct)
	return d.mac.Sum(d.sum[:0])[:k.p.nt]
}
