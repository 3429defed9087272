package sframe

import (
	"bytes"
	"errors"
	"math"
	"sync"
	"testing"
)

var allSuites = []Suite{
	AES_128_CTR_HMAC_SHA256_80, AES_128_CTR_HMAC_SHA256_64, AES_128_CTR_HMAC_SHA256_32,
	AES_128_GCM_SHA256_128, AES_256_GCM_SHA512_128,
	AES_256_CTR_HMAC_SHA512_80, AES_256_CTR_HMAC_SHA512_64, AES_256_CTR_HMAC_SHA512_32,
}

var (
	testBaseKey  = []byte("0123456789abcdef")
	testMetadata = []byte("rtp header bits")
	testFrame    = []byte("an opus frame, more or less")
)

func newTestContext(t testing.TB, s Suite, kids ...uint64) *Context {
	t.Helper()
	c, err := NewContext(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range kids {
		if err := c.AddKey(kid, testBaseKey); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			c := newTestContext(t, s, 0, 7, 8, math.MaxUint64)
			for _, kid := range []uint64{0, 7, 8, math.MaxUint64} {
				for _, ctr := range []uint64{0, 1, 7, 8, 255, 256, math.MaxUint64} {
					for _, pt := range [][]byte{nil, {}, testFrame, bytes.Repeat([]byte{7}, 5000)} {
						ct, err := c.Encrypt(nil, kid, ctr, testMetadata, pt)
						if err != nil {
							t.Fatal(err)
						}
						if want := (Header{kid, ctr}).Len() + len(pt) + s.Overhead(); len(ct) != want {
							t.Fatalf("len(ct) = %d, want %d", len(ct), want)
						}
						got, gk, gc, err := c.Decrypt(nil, testMetadata, ct)
						if err != nil || gk != kid || gc != ctr || !bytes.Equal(got, pt) {
							t.Fatalf("kid %d ctr %d: Decrypt = %x, %d, %d, %v", kid, ctr, got, gk, gc, err)
						}
					}
				}
			}
		})
	}
}

func TestSuiteErrors(t *testing.T) {
	for _, s := range []Suite{0, 9, 0xffff} {
		if _, err := NewContext(s); !errors.Is(err, ErrUnsupportedSuite) {
			t.Errorf("NewContext(%v) = %v, want ErrUnsupportedSuite", s, err)
		}
	}
	if got := Suite(0x1234).String(); got != "Suite(0x1234)" {
		t.Errorf("String = %q", got)
	}
	c := newTestContext(t, AES_128_GCM_SHA256_128)
	if err := c.AddKey(1, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("AddKey(empty) = %v, want ErrInvalidKey", err)
	}
}

// TestTamper flips every bit of header, ciphertext and tag, and of the
// metadata, and expects every one to be rejected.
func TestTamper(t *testing.T) {
	for _, s := range allSuites {
		t.Run(s.String(), func(t *testing.T) {
			c := newTestContext(t, s, 300)
			ct, err := c.Encrypt(nil, 300, 70000, testMetadata, testFrame)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ct {
				for bit := range 8 {
					bad := bytes.Clone(ct)
					bad[i] ^= 1 << bit
					if pt, _, _, err := c.Decrypt(nil, testMetadata, bad); err == nil {
						t.Fatalf("byte %d bit %d flipped: decrypted to %q", i, bit, pt)
					}
				}
			}
			for i := range testMetadata {
				md := bytes.Clone(testMetadata)
				md[i] ^= 0x10
				if _, _, _, err := c.Decrypt(nil, md, ct); !errors.Is(err, ErrAuth) {
					t.Fatalf("metadata byte %d changed: err = %v, want ErrAuth", i, err)
				}
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	for _, s := range allSuites {
		a := newTestContext(t, s, 5)
		b, _ := NewContext(s)
		if err := b.AddKey(5, []byte("another base key")); err != nil {
			t.Fatal(err)
		}
		ct, err := a.Encrypt(nil, 5, 1, nil, testFrame)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := b.Decrypt(nil, nil, ct); !errors.Is(err, ErrAuth) {
			t.Errorf("%v: wrong key: err = %v, want ErrAuth", s, err)
		}
	}
}

// The suite is bound into the derived key: the same base key under another
// suite with the same sizes must not decrypt.
func TestSuiteBinding(t *testing.T) {
	a := newTestContext(t, AES_128_CTR_HMAC_SHA256_80, 1)
	b := newTestContext(t, AES_128_CTR_HMAC_SHA256_64, 1)
	ct, _ := a.Encrypt(nil, 1, 1, nil, testFrame)
	if _, _, _, err := b.Decrypt(nil, nil, ct); err == nil {
		t.Error("suite 2 decrypted a suite 1 frame")
	}
}

func TestUnknownKey(t *testing.T) {
	c := newTestContext(t, AES_128_GCM_SHA256_128, 1)
	if _, err := c.Encrypt(nil, 2, 0, nil, testFrame); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Encrypt(kid 2) = %v, want ErrUnknownKey", err)
	}
	ct, _ := c.Encrypt(nil, 1, 0, nil, testFrame)
	c.RemoveKey(1)
	_, kid, _, err := c.Decrypt(nil, nil, ct)
	if !errors.Is(err, ErrUnknownKey) || kid != 1 {
		t.Errorf("Decrypt after RemoveKey = kid %d, %v; want 1, ErrUnknownKey", kid, err)
	}
}

func TestTruncated(t *testing.T) {
	for _, s := range allSuites {
		c := newTestContext(t, s, 0x1234)
		ct, err := c.Encrypt(nil, 0x1234, 0x56789a, testMetadata, testFrame)
		if err != nil {
			t.Fatal(err)
		}
		hlen := Header{0x1234, 0x56789a}.Len()
		for n := range len(ct) {
			_, _, _, err := c.Decrypt(nil, testMetadata, ct[:n])
			if err == nil {
				t.Fatalf("%v: %d of %d bytes decrypted", s, n, len(ct))
			}
			if n < hlen+s.Overhead() && !errors.Is(err, ErrMalformed) {
				t.Errorf("%v: %d bytes: err = %v, want ErrMalformed", s, n, err)
			}
		}
	}
}

func TestParseHeaderTruncated(t *testing.T) {
	full := Header{KID: 0x0102030405060708, CTR: 0x1112131415161718}.Append(nil)
	for n := range len(full) {
		if _, _, err := ParseHeader(full[:n]); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHeader(%d of %d bytes) = %v, want ErrMalformed", n, len(full), err)
		}
	}
}

// A non-minimal header is accepted and authenticated as sent.
func TestParseHeaderNonMinimal(t *testing.T) {
	h, n, err := ParseHeader([]byte{0x80 | 0x10 | 0x08, 0x00, 0x05, 0x03, 0xff})
	if err != nil || h != (Header{KID: 5, CTR: 3}) || n != 4 {
		t.Errorf("ParseHeader = %+v, %d, %v", h, n, err)
	}
}

func TestSender(t *testing.T) {
	c := newTestContext(t, AES_128_GCM_SHA256_128, 9)
	s := NewSender(c, 9)
	for want := range uint64(3) {
		ct, err := s.Encrypt(nil, nil, testFrame)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ctr, err := c.Decrypt(nil, nil, ct); err != nil || ctr != want {
			t.Errorf("frame %d: ctr %d, %v", want, ctr, err)
		}
	}

	s.next = math.MaxUint64
	ct, err := s.Encrypt(nil, nil, testFrame)
	if err != nil {
		t.Fatalf("last counter: %v", err)
	}
	if _, _, ctr, _ := c.Decrypt(nil, nil, ct); ctr != math.MaxUint64 {
		t.Errorf("last ctr = %d", ctr)
	}
	if _, err := s.Encrypt(nil, nil, testFrame); !errors.Is(err, ErrCounterExhausted) {
		t.Errorf("after the last counter: %v, want ErrCounterExhausted", err)
	}

	// A failed encryption does not use up a counter.
	u := NewSender(c, 10)
	if _, err := u.Encrypt(nil, nil, testFrame); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: %v", err)
	}
	if u.next != 0 {
		t.Errorf("counter advanced to %d on failure", u.next)
	}
}

// One sending and one receiving goroutine (and key changes) at once; run
// with -race.
func TestConcurrent(t *testing.T) {
	for _, s := range []Suite{AES_128_CTR_HMAC_SHA256_80, AES_128_GCM_SHA256_128} {
		c := newTestContext(t, s, 1)
		frames := make(chan []byte, 16)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(frames)
			snd := NewSender(c, 1)
			for range 500 {
				ct, err := snd.Encrypt(nil, testMetadata, testFrame)
				if err != nil {
					t.Error(err)
					return
				}
				frames <- ct
			}
		})
		wg.Go(func() {
			var buf []byte
			for ct := range frames {
				var err error
				buf, _, _, err = c.Decrypt(buf[:0], testMetadata, ct)
				if err != nil || !bytes.Equal(buf, testFrame) {
					t.Errorf("Decrypt = %q, %v", buf, err)
				}
			}
		})
		wg.Go(func() {
			for i := range 100 {
				c.AddKey(uint64(i+2), testBaseKey)
				c.RemoveKey(uint64(i + 2))
			}
		})
		wg.Wait()
	}
}

func TestAllocs(t *testing.T) {
	for _, s := range []Suite{AES_128_CTR_HMAC_SHA256_80, AES_128_GCM_SHA256_128} {
		c := newTestContext(t, s, 1)
		ctBuf := make([]byte, 0, 256)
		ptBuf := make([]byte, 0, 256)
		frame := make([]byte, 60)
		allocs := testing.AllocsPerRun(100, func() {
			ct, err := c.Encrypt(ctBuf[:0], 1, 42, testMetadata, frame)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := c.Decrypt(ptBuf[:0], testMetadata, ct); err != nil {
				t.Fatal(err)
			}
		})
		// AES-CTR needs a cipher.Stream per frame (one each way).
		max := 0.0
		if s != AES_128_GCM_SHA256_128 {
			max = 2
		}
		if allocs > max {
			t.Errorf("%v: %v allocs per encrypt+decrypt, want <= %v", s, allocs, max)
		}
	}
}
