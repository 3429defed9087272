package tunnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley"
	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/server/tunnel/tunneltest"
	"github.com/parleychat/parley/tunnel"
)

// wtServer is a Hub serving WebTransport on a random UDP port of
// 127.0.0.1 and WebSockets on an httptest server.
type wtServer struct {
	h      *hub.Hub
	url    string   // WebTransport
	ws     string   // WebSocket
	hashes [][]byte // of the WebTransport certificate
}

func newWTServer(t *testing.T) *wtServer {
	t.Helper()
	h := hub.NewHub(hub.Config{})
	u, certs := tunneltest.ServeWebTransport(t, h)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ws, err := tunnel.ResolveURL(srv.URL, tunnel.Path)
	if err != nil {
		t.Fatal(err)
	}
	return &wtServer{h: h, url: u, ws: ws, hashes: certs.Hashes()}
}

func randomRoom(t *testing.T) tunnel.RoomID {
	var r tunnel.RoomID
	rand.Read(r[:])
	return r
}

// conn is a carrier with a reader goroutine, so that a test can wait for
// a message with a timeout without cancelling a WebSocket's read.
type conn struct {
	c  tunnel.Carrier
	in chan []byte
	// err is closed when Recv has failed.
	err chan struct{}
}

func open(t *testing.T, c tunnel.Carrier) *conn {
	k := &conn{c: c, in: make(chan []byte, 256), err: make(chan struct{})}
	go func() {
		defer close(k.err)
		for {
			m, err := c.Recv(context.Background())
			if err != nil {
				return
			}
			k.in <- m
		}
	}()
	t.Cleanup(func() { c.Close() })
	return k
}

func (s *wtServer) dialWT(t *testing.T, ticket string, room tunnel.RoomID) *conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tunnel.DialWebTransport(ctx, s.url, nil, s.hashes, room, ticket)
	if err != nil {
		t.Fatalf("DialWebTransport: %v", err)
	}
	if c.Kind() != "webtransport" {
		t.Errorf("Kind() = %q", c.Kind())
	}
	return open(t, c)
}

func (s *wtServer) dialWS(t *testing.T, ticket string, room tunnel.RoomID) *conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tunnel.DialWebSocket(ctx, s.ws, nil, room, ticket)
	if err != nil {
		t.Fatalf("DialWebSocket: %v", err)
	}
	return open(t, c)
}

func (s *wtServer) ticket(user string, dev int) string {
	tk, _ := s.h.Ticket(parley.Address{User: parley.UserID(user), Device: parley.DeviceID(dev)})
	return tk
}

// expect waits for a message of type typ and returns it, skipping others.
func (k *conn) expect(t *testing.T, typ tunnel.MsgType) []byte {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-k.in:
			if len(m) > 0 && tunnel.MsgType(m[0]) == typ {
				return m
			}
		case <-k.err:
			t.Fatalf("carrier closed waiting for type %d", typ)
		case <-timeout:
			t.Fatalf("no message of type %d", typ)
		}
	}
}

// exchange sends payload as media from one carrier until the other has it
// (datagrams may be lost, even on loopback).
func exchange(t *testing.T, from, to *conn, payload []byte) {
	t.Helper()
	want := tunnel.AppendMedia(nil, payload)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for try := byte(0); ; try++ {
		// Each try is a new packet, as a client's would be (the Hub drops
		// a packet it has forwarded already): its last byte counts tries.
		msg := slices.Clone(want)
		msg[len(msg)-1] += try
		if err := from.c.Send(context.Background(), msg); err != nil {
			t.Fatalf("Send: %v", err)
		}
	wait:
		for {
			select {
			case m := <-to.in:
				if len(m) == len(want) && bytes.Equal(m[:len(m)-1], want[:len(want)-1]) {
					return
				}
			case <-to.err:
				t.Fatal("receiver closed")
			case <-timeout:
				t.Fatalf("media %q did not arrive", payload)
			case <-tick.C:
				break wait // send again
			}
		}
	}
}

func joined(t *testing.T, k *conn, peer bool) {
	t.Helper()
	m := k.expect(t, tunnel.MsgJoined)
	if want := []byte{byte(tunnel.MsgJoined), map[bool]byte{false: 0, true: 1}[peer]}; !bytes.Equal(m, want) {
		t.Fatalf("Joined = %x, want %x", m, want)
	}
}

func TestWebTransportMedia(t *testing.T) {
	t.Parallel()
	s := newWTServer(t)
	room := randomRoom(t)
	a := s.dialWT(t, s.ticket("alice", 1), room)
	joined(t, a, false)
	b := s.dialWT(t, s.ticket("bob", 1), room)
	joined(t, b, true)
	if m := a.expect(t, tunnel.MsgPeer); m[1] != 1 {
		t.Fatalf("Peer = %x", m)
	}
	for i := range 5 {
		exchange(t, a, b, fmt.Appendf(nil, "a→b %d", i))
		exchange(t, b, a, fmt.Appendf(nil, "b→a %d", i))
	}
	big := bytes.Repeat([]byte{0xa5}, tunnel.MaxMedia)
	exchange(t, a, b, big)

	// Select travels on the stream and as a datagram; both are fine.
	if err := a.c.Send(context.Background(), []byte{byte(tunnel.MsgSelect)}); err != nil {
		t.Fatal(err)
	}
	exchange(t, b, a, []byte("after select"))

	b.c.Close()
	if m := a.expect(t, tunnel.MsgPeer); m[1] != 0 {
		t.Fatalf("Peer after leaving = %x", m)
	}
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.h.Stats().Carriers != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("carriers still joined: %+v", s.h.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebTransportPing(t *testing.T) {
	t.Parallel()
	s := newWTServer(t)
	a := s.dialWT(t, s.ticket("alice", 1), randomRoom(t))
	joined(t, a, false)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(5 * time.Second)
	for n := uint64(1); ; n++ {
		if err := a.c.Send(context.Background(), tunnel.AppendPing(nil, tunnel.MsgPing, n)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-a.in:
			if got, err := tunnel.ParsePing(m); err != nil || tunnel.MsgType(m[0]) != tunnel.MsgPong || got == 0 || got > n {
				t.Fatalf("answer to ping %d: %x", n, m)
			}
			return
		case <-tick.C:
		case <-timeout:
			t.Fatal("no pong")
		}
	}
}

func TestWebTransportBadTicket(t *testing.T) {
	t.Parallel()
	s := newWTServer(t)
	a := s.dialWT(t, "1:alice.1:forged", randomRoom(t))
	m := a.expect(t, tunnel.MsgError)
	kind, text, err := tunnel.ParseError(m)
	if err != nil || kind != string(parley.KindUnauthorized) {
		t.Fatalf("Error = %q %q %v", kind, text, err)
	}
	select {
	case <-a.err:
	case <-time.After(5 * time.Second):
		t.Fatal("the carrier stays open after the error")
	}
	if err := a.c.Send(context.Background(), tunnel.AppendMedia(nil, []byte("x"))); err == nil {
		t.Error("Send on a closed carrier succeeded")
	}
}

func TestWebTransportMeetsWebSocket(t *testing.T) {
	t.Parallel()
	s := newWTServer(t)
	room := randomRoom(t)
	a := s.dialWT(t, s.ticket("alice", 1), room)
	joined(t, a, false)
	b := s.dialWS(t, s.ticket("alice", 2), room)
	joined(t, b, true)
	for i := range 3 {
		exchange(t, a, b, fmt.Appendf(nil, "quic→tcp %d", i))
		exchange(t, b, a, fmt.Appendf(nil, "tcp→quic %d", i))
	}
}

// A device may hold a WebSocket and a WebTransport carrier at once and
// move its media between them with Select.
func TestWebTransportMoveBetweenCarriers(t *testing.T) {
	t.Parallel()
	s := newWTServer(t)
	room := randomRoom(t)
	a := s.dialWS(t, s.ticket("alice", 1), room)
	joined(t, a, false)
	b1 := s.dialWS(t, s.ticket("bob", 1), room)
	joined(t, b1, true)
	exchange(t, a, b1, []byte("to the websocket"))
	b2 := s.dialWT(t, s.ticket("bob", 1), room)
	joined(t, b2, true)
	if err := b2.c.Send(context.Background(), []byte{byte(tunnel.MsgSelect)}); err != nil {
		t.Fatal(err)
	}
	exchange(t, a, b2, []byte("to the webtransport"))
	exchange(t, b2, a, []byte("from the webtransport"))
}

func TestWebTransportStopsWithContext(t *testing.T) {
	t.Parallel()
	h := hub.NewHub(hub.Config{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	certs, err := hub.NewCertSource(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ServeWebTransport(ctx, pc, certs.TLSConfig()) }()

	url := "https://" + pc.LocalAddr().String() + tunnel.Path
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	tk, _ := h.Ticket(parley.Address{User: "alice", Device: 1})
	c, err := tunnel.DialWebTransport(dctx, url, nil, certs.Hashes(), randomRoom(t), tk)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.Recv(dctx); err != nil || tunnel.MsgType(m[0]) != tunnel.MsgJoined {
		t.Fatalf("Recv = %x, %v", m, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeWebTransport = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeWebTransport did not return")
	}
	if _, err := c.Recv(dctx); err == nil {
		t.Fatal("the carrier outlived the server")
	}
}
