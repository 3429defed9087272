//go:build !js

package tunnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/parleychat/parley"
	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/server/tunnel/tunneltest"
	"github.com/parleychat/parley/tunnel"
)

func TestDialWebTransportChecksCertificate(t *testing.T) {
	t.Parallel()
	h := hub.NewHub(hub.Config{})
	u, certs := tunneltest.ServeWebTransport(t, h)
	cert, err := certs.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	wrong := bytes.Repeat([]byte{7}, 32)

	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		hashes [][]byte
		ok     bool
	}{
		{"right hash", nil, certs.Hashes(), true},
		{"right hash among others", nil, [][]byte{wrong, certs.Hashes()[0]}, true},
		{"wrong hash", nil, [][]byte{wrong}, false},
		{"wrong hash, trusted root", &tls.Config{RootCAs: roots}, [][]byte{wrong}, false},
		{"trusted root", &tls.Config{RootCAs: roots}, nil, true},
		{"no hash, system roots", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tk, _ := h.Ticket(parley.Address{User: "alice", Device: 1})
			var room tunnel.RoomID
			rand.Read(room[:])
			c, err := tunnel.DialWebTransport(ctx, u, tc.tls, tc.hashes, room, tk)
			if !tc.ok {
				if err == nil {
					c.Close()
					t.Fatal("dialled a server whose certificate it should have refused")
				}
				if tc.hashes != nil && !strings.Contains(err.Error(), "not the one the ticket names") {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DialWebTransport: %v", err)
			}
			defer c.Close()
			m, err := c.Recv(ctx)
			if err != nil || tunnel.MsgType(m[0]) != tunnel.MsgJoined {
				t.Fatalf("Recv = %x, %v", m, err)
			}
		})
	}
}

// A Link dials https:// URLs over WebTransport with the ticket's hashes.
func TestLinkOverWebTransport(t *testing.T) {
	t.Parallel()
	h := hub.NewHub(hub.Config{})
	u, certs := tunneltest.ServeWebTransport(t, h)
	var room tunnel.RoomID
	rand.Read(room[:])
	link := func(addr parley.Address) *tunnel.Link {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := tunnel.OpenLink(ctx, tunnel.LinkConfig{
			Room: room,
			Ticket: func(context.Context) (*tunnel.Ticket, error) {
				tk, ttl := h.Ticket(addr)
				return &tunnel.Ticket{Ticket: tk, URLs: []string{u}, CertHashes: certs.Hashes(), Expires: time.Now().Add(ttl)}, nil
			},
			Dial: tunnel.DefaultDial,
		})
		if err != nil {
			t.Fatalf("OpenLink %v: %v", addr, err)
		}
		t.Cleanup(l.Close)
		return l
	}
	a := link(parley.Address{User: "alice", Device: 1})
	b := link(parley.Address{User: "bob", Device: 1})
	if a.Path() != "webtransport" {
		t.Errorf("path %q", a.Path())
	}
	for _, x := range []struct {
		from, to *tunnel.Link
		say      string
	}{{a, b, "hello bob"}, {b, a, "hello alice"}} {
		deadline := time.After(5 * time.Second)
	send:
		for try := 0; ; try++ { // datagrams: send until one arrives, each try a new packet
			x.from.Send(fmt.Appendf(nil, "%s #%d", x.say, try))
			select {
			case m := <-x.to.Media():
				if got := m.Payload; !strings.HasPrefix(string(got), x.say+" #") {
					t.Fatalf("got %q, want %q", got, x.say)
				}
				break send
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%q did not arrive", x.say)
			}
		}
	}
}

// A server that closes the session with a reason, without the Error on
// the stream, is heard as an Error all the same.
func TestWebTransportCloseReason(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cert, hash, err := hub.NewCert(time.Now(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s := &webtransport.Server{
		H3: &http3.Server{
			TLSConfig:  http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
			QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true},
			Handler:    mux,
		},
	}
	mux.HandleFunc(tunnel.Path, func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.Upgrade(w, r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, err := sess.AcceptStream(r.Context()); err != nil {
			return
		}
		sess.CloseWithError(hub.WTCloseError, "rate_limited:too many calls")
	})
	go s.Serve(pc)
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tunnel.DialWebTransport(ctx, "https://"+pc.LocalAddr().String()+tunnel.Path, nil, [][]byte{hash[:]}, tunnel.RoomID{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	kind, text, err := tunnel.ParseError(m)
	if err != nil || kind != "rate_limited" || text != "too many calls" {
		t.Fatalf("Recv = %q %q %v", kind, text, err)
	}
	if _, err := c.Recv(ctx); err == nil {
		t.Fatal("a second Recv after the end succeeded")
	}
}
