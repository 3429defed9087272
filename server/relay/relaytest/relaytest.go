// Package relaytest drives a TURN relay from tests with pion/turn's
// client: allocations over UDP, TCP and TLS, and a check that data goes
// through.
package relaytest

import (
	"bytes"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// Allocation is a TURN client with its allocation.
type Allocation struct {
	Client *turn.Client
	Relay  net.PacketConn // the relayed transport address
}

// Dial connects to a relay: network is "udp", "tcp" or "tls" (then cfg
// is the TLS client's configuration). The connection closes when the test
// ends.
func Dial(t testing.TB, network, addr string, cfg *tls.Config) net.PacketConn {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	case "tls":
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	default:
		t.Fatalf("relaytest: network %q", network)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Allocate makes an allocation on the relay at addr through conn (see
// Dial), or returns why it could not.
func Allocate(t testing.TB, conn net.PacketConn, addr, user, pass string) (*Allocation, error) {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: addr, Conn: conn, Username: user, Password: pass, RTO: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	rc, err := c.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { rc.Close() })
	return &Allocation{Client: c, Relay: rc}, nil
}

// MustAllocate is Dial and Allocate, failing the test on error.
func MustAllocate(t testing.TB, network, addr string, cfg *tls.Config, user, pass string) *Allocation {
	t.Helper()
	a, err := Allocate(t, Dial(t, network, addr, cfg), addr, user, pass)
	if err != nil {
		t.Fatalf("allocate over %s: %v", network, err)
	}
	return a
}

// CheckRelays checks that data goes both ways between two allocations.
func CheckRelays(t testing.TB, a, b *Allocation) {
	t.Helper()
	for _, dir := range []struct {
		name     string
		from, to *Allocation
	}{{"a→b", a, b}, {"b→a", b, a}} {
		msg := []byte("voice frame " + dir.name)
		// The receiver lets the sender's relayed address in first.
		if err := dir.to.Client.CreatePermission(dir.from.Relay.LocalAddr()); err != nil {
			t.Fatalf("%s: permission: %v", dir.name, err)
		}
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, 1500)
			dir.to.Relay.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, _, err := dir.to.Relay.ReadFrom(buf)
			if err != nil {
				got <- nil
				return
			}
			got <- buf[:n]
		}()
		// UDP may drop a packet: send until one arrives.
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
	send:
		for {
			if _, err := dir.from.Relay.WriteTo(msg, dir.to.Relay.LocalAddr()); err != nil {
				t.Fatalf("%s: write: %v", dir.name, err)
			}
			select {
			case b := <-got:
				if !bytes.Equal(b, msg) {
					t.Fatalf("%s: received %q, want %q", dir.name, b, msg)
				}
				break send
			case <-tick.C:
			case <-deadline:
				t.Fatalf("%s: nothing relayed", dir.name)
			}
		}
		tick.Stop()
	}
}
