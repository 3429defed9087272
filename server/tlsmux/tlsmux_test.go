package tlsmux_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/server/tlsmux"
)

// muxed is a Mux on a loopback port with an HTTP server on one side and an
// echo server, standing in for TURN, on the other.
type muxed struct {
	addr  string
	roots *x509.CertPool
}

func startMux(t *testing.T, turn bool) *muxed {
	t.Helper()
	cert, fp, err := tlsmux.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if len(fp) != 32*3-1 {
		t.Errorf("fingerprint %q", fp)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := tlsmux.New(ln, &tls.Config{Certificates: []tls.Certificate{cert}}, turn, nil)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx) }()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "http")
		if r.TLS != nil {
			io.WriteString(w, " tls")
		}
	})}
	go hs.Serve(m.HTTP())
	if turn {
		go echo(m.TURN())
	} else if m.TURN() != nil {
		t.Error("TURN() is not nil without TURN")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		hs.Close()
		if turn {
			m.TURN().Close()
		}
	})
	return &muxed{addr: ln.Addr().String(), roots: roots}
}

// echo answers "turn:" and echoes what each connection sends.
func echo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.WriteString(c, "turn:")
			io.Copy(c, c)
		}()
	}
}

func (m *muxed) dial(t *testing.T, protos ...string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", m.addr, &tls.Config{RootCAs: m.roots, ServerName: "127.0.0.1", NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// stunHeader is the header of a STUN Binding request with no attributes.
func stunHeader() []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], 0x0001)
	binary.BigEndian.PutUint32(b[4:], 0x2112A442)
	copy(b[8:], "transaction!")
	return b
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func httpGet(t *testing.T, c net.Conn) string {
	t.Helper()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the HTTP response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	m := startMux(t, true)

	for _, tt := range []struct {
		name   string
		protos []string
		want   string
	}{
		// A Transport with its own TLS config offers no ALPN: the first
		// bytes decide, and the connection reaches net/http wrapped.
		{"net/http client", nil, "http"},
		{"net/http client with alpn", []string{"http/1.1"}, "http tls"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.roots, NextProtos: tt.protos}}}
			defer cl.CloseIdleConnections()
			resp, err := cl.Get("https://" + m.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != tt.want || resp.Proto != "HTTP/1.1" {
				t.Errorf("got %s %q, want HTTP/1.1 %q", resp.Proto, b, tt.want)
			}
		})
	}
	t.Run("alpn http/1.1", func(t *testing.T) {
		c := m.dial(t, "h2", "http/1.1")
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Errorf("negotiated %q", p)
		}
		if got := httpGet(t, c); got != "http tls" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("alpn stun.turn", func(t *testing.T) {
		c := m.dial(t, "stun.turn")
		if p := c.ConnectionState().NegotiatedProtocol; p != tlsmux.ProtoTURN {
			t.Errorf("negotiated %q", p)
		}
		if got := readN(t, c, 5); got != "turn:" {
			t.Fatalf("got %q, want the TURN side", got)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\n") // ALPN decides, not the bytes
		if got := readN(t, c, 16); got != "GET / HTTP/1.1\r\n" {
			t.Errorf("echo %q", got)
		}
	})
	t.Run("no alpn, stun header", func(t *testing.T) {
		c := m.dial(t)
		h := stunHeader()
		c.Write(h)
		if got := readN(t, c, 5+len(h)); got != "turn:"+string(h) {
			t.Errorf("got %q, want the TURN side echoing the header", got)
		}
	})
	t.Run("no alpn, http", func(t *testing.T) {
		c := m.dial(t)
		if got := httpGet(t, c); got != "http" { // a wrapped conn: no r.TLS
			t.Errorf("got %q", got)
		}
	})
	t.Run("no alpn, zero byte then not stun", func(t *testing.T) {
		c := m.dial(t)
		c.Write([]byte{0x00, 0x01, 0x00, 0x00, 'n', 'o', 'p', 'e', '\r', '\n', '\r', '\n'})
		// HTTP gets it and answers 400.
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no HTTP answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("plain http on the tls port", func(t *testing.T) {
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		b, _ := io.ReadAll(c)
		if strings.Contains(string(b), "http") {
			t.Errorf("plain HTTP was served: %q", b)
		}
	})
}

func TestWithoutTURN(t *testing.T) {
	t.Parallel()
	m := startMux(t, false)
	c := m.dial(t, "stun.turn", "http/1.1")
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("negotiated %q; stun.turn must not be offered without TURN", p)
	}
	if got := httpGet(t, c); got != "http tls" {
		t.Errorf("got %q", got)
	}
	// Without TURN a STUN header goes to HTTP, which refuses it.
	c2 := m.dial(t)
	c2.Write(append(stunHeader(), "\r\n\r\n"...))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatalf("a STUN header without TURN: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// TestSlowClientDoesNotBlock checks that a client that connects and sends
// nothing holds up no one else.
func TestSlowClientDoesNotBlock(t *testing.T) {
	t.Parallel()
	m := startMux(t, true)
	idle, err := net.Dial("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleTLS := m.dial(t) // handshaken, no ALPN, silent: waits in the peek
	_ = idleTLS
	c := m.dial(t, "http/1.1")
	if got := httpGet(t, c); got != "http tls" {
		t.Errorf("got %q", got)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	if got := tlsmux.Fingerprint([]byte("abc")); got != "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD" {
		t.Errorf("Fingerprint = %s", got)
	}
}
