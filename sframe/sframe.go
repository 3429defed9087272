package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// Context holds the keys of one cipher suite, by KID, and encrypts and
// decrypts frames with them.
//
// A Context is safe for concurrent use: the key map is guarded by a
// read-write lock, and each key has one lock for encryption and one for
// decryption, so one sending and one receiving goroutine never wait for
// each other. It keeps no replay state (see the package doc).
type Context struct {
	suite Suite
	p     *params

	mu   sync.RWMutex         // guards keys
	keys map[uint64]*keyState // by KID
}

// keyState is one KID's derived key material
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.2). It is never
// compared, printed or copied out of the package.
type keyState struct {
	p     *params
	salt  [nonceSize]byte
	gcm   cipher.AEAD  // GCM suites
	block cipher.Block // CTR+HMAC suites: AES with enc_key
	seal  direction    // used by Encrypt
	open  direction    // used by Decrypt
}

// direction is the scratch state of one direction of one key.
type direction struct {
	mu  sync.Mutex // guards the fields below
	aad []byte     // scratch for header || metadata
	mac hash.Hash  // CTR+HMAC suites: HMAC keyed with auth_key

	// Scratch that would otherwise escape to the heap on every frame.
	nonce [nonceSize]byte
	iv    [16]byte // AES-CTR initial counter block
	lens  [24]byte // the three lengths that open the HMAC input
	sum   [64]byte // HMAC output
}

// maxScratch caps the AAD scratch a key keeps between calls, so one frame
// with huge metadata does not pin its buffer.
const maxScratch = 1 << 12

// NewContext returns an empty Context for suite s.
func NewContext(s Suite) (*Context, error) {
	p, err := s.params()
	if err != nil {
		return nil, fmt.Errorf("new context: %w", err)
	}
	return &Context{suite: s, p: p, keys: make(map[uint64]*keyState)}, nil
}

// Suite returns the cipher suite c was made for.
func (c *Context) Suite() Suite { return c.suite }

// AddKey derives the key and salt for kid from baseKey and installs them,
// replacing any key kid had. baseKey is not retained.
func (c *Context) AddKey(kid uint64, baseKey []byte) error {
	if len(baseKey) == 0 {
		return fmt.Errorf("add key %d: %w", kid, ErrInvalidKey)
	}
	secret, key, salt, err := deriveKeySalt(c.suite, c.p, kid, baseKey)
	if err != nil {
		return fmt.Errorf("add key %d: %w", kid, err)
	}
	defer clear(secret)
	defer clear(key)
	k, err := newKeyState(c.p, key, salt)
	if err != nil {
		return fmt.Errorf("add key %d: %w", kid, err)
	}
	c.mu.Lock()
	c.keys[kid] = k
	c.mu.Unlock()
	return nil
}

// RemoveKey forgets kid's key. Frames under kid then fail with
// ErrUnknownKey.
func (c *Context) RemoveKey(kid uint64) {
	c.mu.Lock()
	delete(c.keys, kid)
	c.mu.Unlock()
}

func (c *Context) key(kid uint64) (*keyState, bool) {
	c.mu.RLock()
	k, ok := c.keys[kid]
	c.mu.RUnlock()
	return k, ok
}

// newKeyState builds the ciphers for an AEAD key (sframe_key) and salt.
func newKeyState(p *params, key, salt []byte) (*keyState, error) {
	k := &keyState{p: p}
	copy(k.salt[:], salt)
	if !p.ctrHMAC {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		k.gcm, err = cipher.NewGCM(block)
		return k, err
	}
	// https://www.rfc-editor.org/rfc/rfc9605#section-4.5.1:
	// enc_key = sframe_key[..Nka], auth_key = sframe_key[Nka..].
	var err error
	if k.block, err = aes.NewCipher(key[:p.nka]); err != nil {
		return nil, err
	}
	k.seal.mac = newHMAC(p.hash, key[p.nka:])
	k.open.mac = newHMAC(p.hash, key[p.nka:])
	return k, nil
}

// deriveKeySalt derives sframe_key and sframe_salt for kid from baseKey
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.2). It also returns
// sframe_secret, for the test vectors.
func deriveKeySalt(s Suite, p *params, kid uint64, baseKey []byte) (secret, key, salt []byte, err error) {
	// sframe_secret = HKDF-Extract("", base_key)
	secret, err = hkdf.Extract(p.hash, baseKey, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	// sframe_key = HKDF-Expand(sframe_secret, sframe_key_label, AEAD.Nk)
	if key, err = hkdf.Expand(p.hash, secret, keyLabel(s, kid), p.nk); err != nil {
		return nil, nil, nil, err
	}
	// sframe_salt = HKDF-Expand(sframe_secret, sframe_salt_label, AEAD.Nn)
	if salt, err = hkdf.Expand(p.hash, secret, saltLabel(s, kid), nonceSize); err != nil {
		return nil, nil, nil, err
	}
	return secret, key, salt, nil
}

// keyLabel and saltLabel are the HKDF-Expand infos of
// https://www.rfc-editor.org/rfc/rfc9605#section-4.4.2: the label text,
// then KID as 8 bytes and the cipher suite as 2 bytes, both big-endian.
func keyLabel(s Suite, kid uint64) string  { return label("SFrame 1.0 Secret key ", s, kid) }
func saltLabel(s Suite, kid uint64) string { return label("SFrame 1.0 Secret salt ", s, kid) }

func label(text string, s Suite, kid uint64) string {
	b := make([]byte, 0, len(text)+8+2)
	b = append(b, text...)
	b = binary.BigEndian.AppendUint64(b, kid)
	b = binary.BigEndian.AppendUint16(b, uint16(s))
	return string(b)
}

// nonce returns sframe_salt XOR CTR, the counter encoded big-endian in Nn
// bytes (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.3).
func (k *keyState) nonce(ctr uint64) [nonceSize]byte {
	n := k.salt
	x := binary.BigEndian.Uint64(n[nonceSize-8:]) ^ ctr
	binary.BigEndian.PutUint64(n[nonceSize-8:], x)
	return n
}

// Encrypt encrypts one frame under kid's key with counter ctr and appends
// header || ciphertext || tag to dst
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.3). metadata is
// authenticated but not sent; the receiver must pass the same bytes.
//
// The caller must never use a (kid, ctr) pair twice: a repeated nonce
// breaks the AEAD. A Sender keeps that promise for one KID. plaintext must
// not overlap dst's spare capacity.
func (c *Context) Encrypt(dst []byte, kid, ctr uint64, metadata, plaintext []byte) ([]byte, error) {
	k, ok := c.key(kid)
	if !ok {
		return dst, fmt.Errorf("encrypt: kid %d: %w", kid, ErrUnknownKey)
	}
	start := len(dst)
	dst = Header{KID: kid, CTR: ctr}.Append(dst)
	d := &k.seal
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nonce = k.nonce(ctr)
	nonce := d.nonce[:]
	// aad = header + metadata
	aad := append(append(d.aad[:0], dst[start:]...), metadata...)
	defer d.keep(aad)
	if k.gcm != nil {
		return k.gcm.Seal(dst, nonce, plaintext, aad), nil
	}
	return k.sealCTR(d, dst, nonce, plaintext, aad), nil
}

// Decrypt parses the header of one SFrame ciphertext, decrypts it with the
// key its KID names, and appends the plaintext to dst
// (https://www.rfc-editor.org/rfc/rfc9605#section-4.4.4). It returns the
// header's KID and CTR so the caller can reject replays. ciphertext must not
// overlap dst's spare capacity.
//
// Errors wrap ErrMalformed (truncated), ErrUnknownKey (no key for the
// KID) or ErrAuth (the tag does not verify).
func (c *Context) Decrypt(dst []byte, metadata, ciphertext []byte) (plaintext []byte, kid, ctr uint64, err error) {
	h, n, err := ParseHeader(ciphertext)
	if err != nil {
		return dst, 0, 0, fmt.Errorf("decrypt: %w", err)
	}
	if len(ciphertext)-n < c.p.nt {
		return dst, h.KID, h.CTR, fmt.Errorf("decrypt: %d bytes after the header, the tag alone is %d: %w", len(ciphertext)-n, c.p.nt, ErrMalformed)
	}
	k, ok := c.key(h.KID)
	if !ok {
		return dst, h.KID, h.CTR, fmt.Errorf("decrypt: kid %d: %w", h.KID, ErrUnknownKey)
	}
	d := &k.open
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nonce = k.nonce(h.CTR)
	nonce := d.nonce[:]
	// aad = header + metadata, the header exactly as received.
	aad := append(append(d.aad[:0], ciphertext[:n]...), metadata...)
	defer d.keep(aad)
	var out []byte
	if k.gcm != nil {
		out, err = k.gcm.Open(dst, nonce, ciphertext[n:], aad)
	} else {
		out, err = k.openCTR(d, dst, nonce, ciphertext[n:], aad)
	}
	if err != nil {
		return dst, h.KID, h.CTR, fmt.Errorf("decrypt: kid %d ctr %d: %w", h.KID, h.CTR, ErrAuth)
	}
	return out, h.KID, h.CTR, nil
}

// keep retains aad's buffer as scratch for the next call, unless it grew
// too large.
func (d *direction) keep(aad []byte) {
	if cap(aad) <= maxScratch {
		d.aad = aad[:0]
	} else {
		d.aad = nil
	}
}
