// Package tunneltest runs a call tunnel's WebTransport endpoint for tests.
package tunneltest

import (
	"context"
	"net"
	"testing"

	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
)

// ServeWebTransport serves h's WebTransport carriers on a random UDP port
// of 127.0.0.1 with a self-signed certificate until the test ends, and
// returns the endpoint's URL and the certificate source.
func ServeWebTransport(t testing.TB, h *hub.Hub) (string, *hub.CertSource) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := hub.NewCertSource([]string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ServeWebTransport(ctx, pc, certs.TLSConfig()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeWebTransport: %v", err)
		}
		pc.Close()
	})
	return "https://" + pc.LocalAddr().String() + tunnel.Path, certs
}
