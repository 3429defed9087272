package sframe

import (
	"bytes"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	for _, b := range [][]byte{{0x00}, {0x99, 0x01, 0x23, 0x45, 0x67}, {0xff}, {0x88}, {}} {
		f.Add(b)
	}
	if _, err := findVectors(); err == nil {
		for _, h := range loadVectors(f).Header {
			f.Add([]byte(h.Encoded))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			return
		}
		if n < 1 || n > len(b) || n > MaxHeaderSize {
			t.Fatalf("ParseHeader(%x) consumed %d bytes", b, n)
		}
		enc := h.Append(nil)
		if len(enc) != h.Len() || len(enc) > n {
			t.Fatalf("Append(%+v) = %x: longer than the %d bytes parsed, or Len %d wrong", h, enc, n, h.Len())
		}
		h2, n2, err := ParseHeader(enc)
		if err != nil || h2 != h || n2 != len(enc) {
			t.Fatalf("round trip %+v -> %x -> %+v, %d, %v", h, enc, h2, n2, err)
		}
		// A minimal input re-encodes to itself.
		if len(enc) == n && !bytes.Equal(enc, b[:n]) {
			t.Fatalf("minimal header %x re-encoded as %x", b[:n], enc)
		}
	})
}

// FuzzDecrypt feeds arbitrary frames to one Context per suite, each holding
// the RFC vectors' key (KID 291) and a test key (KID 0). Nothing may panic,
// and a frame that decrypts must re-encrypt to itself when its header is
// minimal (encryption is deterministic in key, CTR and input).
func FuzzDecrypt(f *testing.F) {
	const kid = 291 // the KID of the RFC's sframe vectors
	f.Add(uint8(0), []byte(nil), []byte{})
	f.Add(uint8(3), []byte("md"), []byte{0x00})
	if _, err := findVectors(); err == nil {
		for _, v := range loadVectors(f).SFrame {
			for i, s := range allSuites {
				if s == v.CipherSuite {
					f.Add(uint8(i), []byte(v.Metadata), []byte(v.CT))
				}
			}
		}
	}
	ctxs := make([]*Context, len(allSuites))
	for i, s := range allSuites {
		ctxs[i] = newTestContext(f, s, 0)
		// The vectors' base key, so their ciphertexts decrypt.
		if err := ctxs[i].AddKey(kid, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}); err != nil {
			f.Fatal(err)
		}
	}
	// Frames under KID 0 with the test base key, one per suite.
	for i, c := range ctxs {
		ct, err := c.Encrypt(nil, 0, 5, testMetadata, testFrame)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), testMetadata, ct)
	}
	f.Fuzz(func(t *testing.T, suite uint8, metadata, ct []byte) {
		c := ctxs[int(suite)%len(ctxs)]
		pt, k, ctr, err := c.Decrypt(nil, metadata, ct)
		if err != nil {
			return
		}
		_, n, _ := ParseHeader(ct)
		again, err := c.Encrypt(nil, k, ctr, metadata, pt)
		if err != nil {
			t.Fatalf("re-encrypt: %v", err)
		}
		if (Header{k, ctr}).Len() == n && !bytes.Equal(again, ct) {
			t.Fatalf("decrypted frame re-encrypts differently:\n got %x\nwant %x", again, ct)
		}
	})
}
