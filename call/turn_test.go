package call

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// selfSigned returns a certificate for 127.0.0.1 that nothing trusts.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestTURNDialer: the addresses of turns: URLs are dialled with TLS,
// offering "stun.turn" and trusting only what the configuration trusts;
// other addresses in the clear.
func TestTURNDialer(t *testing.T) {
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{turnTLSNextProto}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	protos := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				protos <- tc.ConnectionState().NegotiatedProtocol
			}
			tc.Close()
		}
	}()
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	servers := []webrtc.ICEServer{{URLs: []string{
		"turn:" + plain.Addr().String() + "?transport=tcp",
		"turns:" + ln.Addr().String() + "?transport=tcp",
	}}}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)

	d, err := newTURNDialer(servers, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatalf("TURN over TLS with the certificate trusted: %v", err)
	}
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != turnTLSNextProto {
		t.Errorf("TURN over TLS: %T, want a *tls.Conn that negotiated %q", c, turnTLSNextProto)
	}
	if _, ok := c.LocalAddr().(*net.TCPAddr); !ok { // pion's agent asserts it
		t.Errorf("LocalAddr is a %T, want *net.TCPAddr", c.LocalAddr())
	}
	c.Close()
	if p := <-protos; p != turnTLSNextProto {
		t.Errorf("the server saw ALPN %q", p)
	}

	c, err = d.Dial("tcp4", plain.Addr().String())
	if err != nil {
		t.Fatalf("TURN over TCP: %v", err)
	}
	if _, ok := c.(*tls.Conn); ok {
		t.Errorf("TURN over TCP went over TLS")
	}
	c.Close()

	d, err = newTURNDialer(servers, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Dial("tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("TURN over TLS trusted a self-signed certificate that the configuration does not")
	}
}
