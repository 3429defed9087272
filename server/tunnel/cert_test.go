package tunnel

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"sync"
	"testing"
	"time"
)

func TestNewCert(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cert, hash, err := NewCert(now, []string{"parley.example", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if hash != sha256.Sum256(cert.Certificate[0]) {
		t.Error("the hash is not of the certificate's DER")
	}
	leaf := cert.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d >= 14*24*time.Hour {
		t.Errorf("valid for %v, browsers take under 14 days", d)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		t.Errorf("not valid now: %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if err := leaf.VerifyHostname("parley.example"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("192.0.2.1"); err != nil {
		t.Error(err)
	}
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCertSourceRotates(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
	s, err := NewCertSource(nil, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	served := func() *tls.Certificate {
		t.Helper()
		c, err := s.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if now := clock.Now(); now.Before(c.Leaf.NotBefore) || now.After(c.Leaf.NotAfter) {
			t.Fatalf("at %v serving a certificate valid from %v to %v", now, c.Leaf.NotBefore, c.Leaf.NotAfter)
		}
		return c
	}
	hashOf := func(c *tls.Certificate) []byte { h := sha256.Sum256(c.Certificate[0]); return h[:] }

	first := served()
	if h := s.Hashes(); len(h) != 1 || !bytes.Equal(h[0], hashOf(first)) {
		t.Fatalf("Hashes = %x", h)
	}
	clock.Add(certServeFor - certAnnounce - time.Minute)
	if served() != first || len(s.Hashes()) != 1 {
		t.Fatal("rotated early")
	}
	clock.Add(2 * time.Minute) // inside the day before the switch
	h := s.Hashes()
	if len(h) != 2 || !bytes.Equal(h[0], hashOf(first)) {
		t.Fatalf("no next certificate announced: %x", h)
	}
	if served() != first {
		t.Fatal("switched before its time")
	}
	clock.Add(certAnnounce)
	second := served()
	if second == first || !bytes.Equal(hashOf(second), h[1]) {
		t.Fatal("did not switch to the announced certificate")
	}
	if h := s.Hashes(); len(h) != 1 || !bytes.Equal(h[0], hashOf(second)) {
		t.Fatalf("Hashes after the switch = %x", h)
	}

	// Asleep for a month: a fresh certificate, valid now.
	clock.Add(30 * 24 * time.Hour)
	served()
	clock.Add(certServeFor - certAnnounce)
	s.Hashes()
	clock.Add(40 * 24 * time.Hour)
	served()
}
