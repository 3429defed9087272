//go:build !js

package tunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestVerifyCertHash(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	mk := func(from time.Time, valid time.Duration) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: from, NotAfter: from.Add(valid)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	hash := func(der []byte) []byte { h := sha256.Sum256(der); return h[:] }
	good := mk(now.Add(-time.Hour), 13*24*time.Hour)
	for _, tc := range []struct {
		name   string
		chain  [][]byte
		hashes [][]byte
		err    string // "" for none
	}{
		{"good", [][]byte{good}, [][]byte{hash(good)}, ""},
		{"good, second hash", [][]byte{good}, [][]byte{make([]byte, 32), hash(good)}, ""},
		{"no certificate", nil, [][]byte{hash(good)}, "no certificate"},
		{"wrong hash", [][]byte{good}, [][]byte{make([]byte, 32)}, "not the one"},
		{"hash of the issuer, not the leaf", [][]byte{good, mk(now, time.Hour)}, [][]byte{hash(mk(now, time.Hour))}, "not the one"},
		{"not yet valid", [][]byte{mk(now.Add(time.Hour), 24*time.Hour)}, nil, "not now"},
		{"expired", [][]byte{mk(now.Add(-48*time.Hour), 24*time.Hour)}, nil, "not now"},
		{"valid too long", [][]byte{mk(now.Add(-time.Hour), 15*24*time.Hour)}, nil, "over the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hashes := tc.hashes
			if hashes == nil {
				hashes = [][]byte{hash(tc.chain[0])}
			}
			err := verifyCertHash(tc.chain, hashes, now)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want one with %q", err, tc.err)
			}
		})
	}
}
