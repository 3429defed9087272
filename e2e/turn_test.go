package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientmem"
	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/relay/relaytest"
	"github.com/parleychat/parley/server/tlsmux"
)

// TestTURNCredentials runs a client against an in-process parleyd with
// TLS and a TURN relay: the client gets TURN credentials over its session
// (wss), and they open allocations over UDP, TCP and TLS that relay to
// each other.
func TestTURNCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, _, cert := startTURNServer(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := strings.TrimPrefix(url, "https://")

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	c, err := client.New(ctx, client.Config{Store: clientmem.New(),
		Dialer: client.WebSocketDialer{Options: &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, "https://"+addr, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TURNCredentials(ctx); parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("TURNCredentials while offline: %v, want unavailable", err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(rctx) }()
	defer func() { stop(); <-ran }()
	timeout := time.After(20 * time.Second)
	for connected := false; !connected; {
		select {
		case ev := <-c.Events():
			connected = ev.Type == client.EventConnected
		case <-timeout:
			t.Fatal("the client did not connect")
		}
	}

	cr, err := c.TURNCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cr.Username, ":carol.1") || time.Until(cr.Expires) < relay.DefaultCredentialTTL-time.Minute {
		t.Errorf("credentials %+v", cr)
	}
	// The URLs are the ones to use: take the addresses from them.
	var udpAddr, tcpAddr, tlsAddr string
	for _, u := range cr.URLs {
		scheme, rest, _ := strings.Cut(u, ":")
		hostPort, query, _ := strings.Cut(rest, "?")
		switch {
		case scheme == "turn" && query == "transport=udp":
			udpAddr = hostPort
		case scheme == "turn" && query == "transport=tcp":
			tcpAddr = hostPort
		case scheme == "turns" && query == "transport=tcp":
			tlsAddr = hostPort
		}
	}
	if udpAddr == "" || tcpAddr == "" || tlsAddr != addr {
		t.Fatalf("URLs %q: want UDP, TCP and TLS on %s", cr.URLs, addr)
	}
	udp := relaytest.MustAllocate(t, "udp", udpAddr, nil, cr.Username, cr.Password)
	tcp := relaytest.MustAllocate(t, "tcp", tcpAddr, nil, cr.Username, cr.Password)
	overTLS := relaytest.MustAllocate(t, "tls", tlsAddr, &tls.Config{RootCAs: roots, NextProtos: []string{tlsmux.ProtoTURN}}, cr.Username, cr.Password)
	relaytest.CheckRelays(t, udp, tcp)
	relaytest.CheckRelays(t, overTLS, udp)
}
