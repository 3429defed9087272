package tunnel

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley/server/tlsmux"
)

// A WebTransport server that has no certificate from a CA browsers trust
// (development, a bare IP address) is accepted by a browser that is given
// the SHA-256 hash of its certificate (serverCertificateHashes, W3C
// WebTransport §"verify a certificate hash"), and only if that certificate
// uses ECDSA (we use P-256) and is valid for at most two weeks. Go clients
// check the same (tunnel.DialWebTransport with certHashes).
//
// The rule for rotating, which CertSource follows:
//
//   - Each certificate is valid for CertValidity (13 days), starting an
//     hour in the past for clocks that lag.
//   - It is served until certServeFor (11 days) after it was made; then
//     the next one is.
//   - The next one is made certAnnounce (1 day) before that switch, and
//     from then on Hashes reports both, so every ticket handed out in the
//     last day before the switch already lists the certificate that will
//     be served after it. Tickets live for minutes, far less than a day.
//   - A carrier keeps its connection across a switch: the certificate is
//     only checked at the handshake.
const (
	CertValidity = 13 * 24 * time.Hour
	certServeFor = 11 * 24 * time.Hour
	certAnnounce = 24 * time.Hour
	certBackdate = time.Hour
)

// NewCert makes a self-signed ECDSA P-256 certificate for hosts (DNS names
// or IP addresses; none means localhost, 127.0.0.1 and ::1) valid from an
// hour before now for CertValidity, and returns it with the SHA-256 hash
// of its DER encoding: what a browser's serverCertificateHashes and a
// ticket's CertHashes carry.
func NewCert(now time.Time, hosts []string) (tls.Certificate, [sha256.Size]byte, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	cert, err := tlsmux.NewSelfSigned(now.Add(-certBackdate).Truncate(time.Second), CertValidity, hosts)
	if err != nil {
		return tls.Certificate{}, [sha256.Size]byte{}, fmt.Errorf("tunnel: %w", err)
	}
	return cert, sha256.Sum256(cert.Leaf.Raw), nil
}

// CertSource serves self-signed WebTransport certificates and rotates them
// by the rule above, lazily: a handshake or a call to Hashes after the
// switch time makes the switch. It is safe for concurrent use.
type CertSource struct {
	hosts []string
	now   func() time.Time

	mu   sync.Mutex // guards cur and next
	cur  *servedCert
	next *servedCert // made certAnnounce before cur's switch; nil before
}

type servedCert struct {
	cert tls.Certificate
	hash [sha256.Size]byte
	made time.Time
}

// NewCertSource makes the first certificate for hosts (see NewCert). now
// is the clock; nil is time.Now.
func NewCertSource(hosts []string, now func() time.Time) (*CertSource, error) {
	if now == nil {
		now = time.Now
	}
	s := &CertSource{hosts: hosts, now: now}
	c, err := s.make(now())
	if err != nil {
		return nil, err
	}
	s.cur = c
	return s, nil
}

func (s *CertSource) make(now time.Time) (*servedCert, error) {
	cert, hash, err := NewCert(now, s.hosts)
	if err != nil {
		return nil, err
	}
	return &servedCert{cert: cert, hash: hash, made: now}, nil
}

// rotate makes the next certificate and switches to it when their times
// have come. Called with s.mu held.
func (s *CertSource) rotate() error {
	now := s.now()
	switchAt := s.cur.made.Add(certServeFor)
	if s.next == nil && !now.Before(switchAt.Add(-certAnnounce)) {
		next, err := s.make(now)
		if err != nil {
			return err
		}
		s.next = next
	}
	if !now.Before(switchAt) {
		if s.next.made.Add(certServeFor).Before(now) {
			// Unused for longer than a certificate lives (a stopped clock,
			// a suspended machine): start afresh.
			next, err := s.make(now)
			if err != nil {
				return err
			}
			s.next = next
		}
		s.cur, s.next = s.next, nil
	}
	return nil
}

// Certificate returns the certificate to serve now.
func (s *CertSource) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rotate(); err != nil {
		return nil, err
	}
	return &s.cur.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *CertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Certificate()
}

// Hashes returns the SHA-256 hashes of the certificate served now and,
// in the day before a switch, of the next one: what tickets list as
// CertHashes. On a failure to make the next certificate it reports the
// current one alone (the next handshake tries again).
func (s *CertSource) Hashes() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	out := [][]byte{append([]byte(nil), s.cur.hash[:]...)}
	if s.next != nil {
		out = append(out, append([]byte(nil), s.next.hash[:]...))
	}
	return out
}

// TLSConfig returns a TLS configuration that serves s's certificates, for
// Hub.ServeWebTransport.
func (s *CertSource) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: s.GetCertificate}
}
