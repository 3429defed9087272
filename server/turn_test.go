package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/relay/relaytest"
	"github.com/parleychat/parley/server/tlsmux"
	"github.com/parleychat/parley/wire"
)

// tlsServer is a server with TLS and a TURN relay (allowed to relay on
// loopback), on random loopback ports.
type tlsServer struct {
	*testServer
	addr   string // host:port of HTTPS and TURN over TLS
	relay  *relay.Server
	roots  *x509.CertPool
	client *http.Client
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	cert, _, err := tlsmux.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: []byte("a test secret of 32 characters.."),
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, server.Config{Logger: log, Relay: r, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	addr := strings.TrimPrefix(ts.url, "ws://")
	ts.url, ts.http = "wss://"+addr, "https://"+addr
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &tlsServer{testServer: ts, addr: addr, relay: r, roots: roots, client: &http.Client{Transport: tr}}
}

// startServerOn is startServer; a separate copy so that the TLS tests do
// not depend on how startServer may change.
func startServerOn(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	return startServer(t, cfg)
}

// dialTLS opens a WebSocket session over TLS.
func (ts *tlsServer) dial(t *testing.T) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url+wire.Path, &websocket.DialOptions{HTTPClient: ts.client})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(parley.MaxFrameSize)
	c := &client{t: t, ws: ws, nextID: 1}
	t.Cleanup(func() { ws.CloseNow() })
	f := c.read()
	h, ok := f.Body.(*wire.Hello)
	if !ok {
		t.Fatalf("first frame: %+v", f)
	}
	c.hello = h
	return c
}

func (ts *tlsServer) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: ts.roots, ServerName: "127.0.0.1", NextProtos: protos}
}

// TestTURNOverTLSPort runs HTTPS, the WebSocket session and TURN over TLS
// on one port: a device gets credentials over its session and relays
// between an allocation over TLS and one over UDP.
func TestTURNOverTLSPort(t *testing.T) {
	t.Parallel()
	ts := startTLSServer(t)

	resp, err := ts.client.Get(ts.http + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("/healthz over TLS: %s", resp.Status)
	}

	c := ts.dial(t)
	wantErr(t, "credentials before login", c.call(wire.OpTURNCredentials, &wire.GetTURNCredentials{}), parley.KindUnauthorized)
	id := newIdentity(t, "alice")
	if f := c.register(id, id.keys(t, 1, true)); f.Err != nil {
		t.Fatalf("register: %v", f.Err)
	}
	cr, ok := c.mustCall(wire.OpTURNCredentials, &wire.GetTURNCredentials{}).(*wire.TURNCredentials)
	if !ok {
		t.Fatal("no TURNCredentials")
	}
	if ttl := time.Duration(cr.TTLSeconds) * time.Second; !strings.HasSuffix(cr.Username, ":alice.1") || ttl > relay.DefaultCredentialTTL || ttl < relay.DefaultCredentialTTL-2*time.Second {
		t.Errorf("credentials %+v", cr)
	}
	turnPort := strconv.Itoa(ts.relay.UDPAddr().Port)
	_, tlsPort, _ := net.SplitHostPort(ts.addr)
	want := []string{
		"turn:127.0.0.1:" + turnPort + "?transport=udp",
		"turn:127.0.0.1:" + turnPort + "?transport=tcp",
		"turns:127.0.0.1:" + tlsPort + "?transport=tcp",
	}
	if strings.Join(cr.URLs, " ") != strings.Join(want, " ") {
		t.Errorf("URLs %q, want %q", cr.URLs, want)
	}

	// TURN over TLS on the HTTPS port, told apart by ALPN, and by its
	// first bytes for a client that offers no ALPN (as browsers do).
	viaALPN := relaytest.MustAllocate(t, "tls", ts.addr, ts.tlsConfig(tlsmux.ProtoTURN), cr.Username, cr.Password)
	viaBytes := relaytest.MustAllocate(t, "tls", ts.addr, ts.tlsConfig(), cr.Username, cr.Password)
	udp := relaytest.MustAllocate(t, "udp", ts.relay.UDPAddr().String(), nil, cr.Username, cr.Password)
	relaytest.CheckRelays(t, viaALPN, udp)
	relaytest.CheckRelays(t, viaBytes, udp)

	// The session still works beside TURN, and so does HTTP.
	if p, ok := c.mustCall(wire.OpPing, &wire.Ping{Nonce: 7}).(*wire.Ping); !ok || p.Nonce != 7 {
		t.Errorf("ping: %+v", p)
	}
	resp, err = ts.client.Get(ts.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if !strings.Contains(sb.String(), "parley_turn_allocations 3") {
		t.Errorf("/metrics lacks parley_turn_allocations 3")
	}

	// A wrong password is refused on the TLS port too.
	if _, err := relaytest.Allocate(t, relaytest.Dial(t, "tls", ts.addr, ts.tlsConfig(tlsmux.ProtoTURN)), ts.addr, cr.Username, "d3Jvbmc="); err == nil {
		t.Error("an allocation with a wrong password over TLS was granted")
	}
}

func TestTURNCredentialsWithoutRelay(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	c, _ := registered(t, ts, "bob", 1)
	wantErr(t, "credentials without a relay", c.call(wire.OpTURNCredentials, &wire.GetTURNCredentials{}), parley.KindUnavailable)
}
