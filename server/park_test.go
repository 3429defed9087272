package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
)

// connGoroutines counts the goroutines serving connections.
func connGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "parley/server.(*conn)") {
			n++
		}
	}
	return n
}

// waitParked waits until no goroutine serves a connection: every
// connection is parked.
func waitParked(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); connGoroutines() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still serve idle connections", connGoroutines())
		}
	}
}

// TestParkedConnection: an idle connection parks (no goroutine serves it),
// and a parked connection still answers requests, receives messages and
// answers the server's pings, so that it stays open.
func TestParkedConnection(t *testing.T) {
	ts := startServer(t, server.Config{PingInterval: 400 * time.Millisecond, WriteTimeout: 2 * time.Second})
	aliceConn, aliceID := registered(t, ts, "alice", 1)
	aliceConn.ws.CloseNow() // a client that does not read misses pings: back later
	bobConn, bob := registered(t, ts, "bob", 1)
	bobConn.ws.CloseNow()
	rc, _ := online(t, ts, bob)
	// Bob's client reads all along, as a real one does (which answers pings).
	frames := make(chan *wire.Frame, 16)
	go func() {
		for {
			f, err := rc.tryRead(time.Minute)
			if err != nil {
				close(frames)
				return
			}
			frames <- f
		}
	}()
	next := func(what string) *wire.Frame {
		t.Helper()
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("%s: bob's connection closed", what)
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing came", what)
		}
		return nil
	}
	waitParked(t)

	// Several pings go by, each answered through a parked reader.
	time.Sleep(2 * time.Second)
	rc.write(&wire.Frame{Type: wire.TypeRequest, ID: 77, Op: wire.OpPing, Body: &wire.Ping{Nonce: 77}})
	for f := next("ping answer"); f.Type != wire.TypeResponse || f.ID != 77; f = next("ping answer") {
	}
	waitParked(t)

	alice, _ := online(t, ts, aliceID)
	id := parley.NewMessageID()
	if f := alice.send("bob", id, "while parked", bob.regID); f.Err != nil {
		t.Fatalf("send: %v", f.Err)
	}
	f := next("delivery")
	for f.Op != wire.OpDeliver {
		f = next("delivery")
	}
	if e := f.Body.(*wire.Deliver).Envelope; e.ID != id || string(e.Content) != "while parked" {
		t.Errorf("delivered %q", e.Content)
	}
	rc.ack(f)
	alice.ws.CloseNow()
	waitParked(t)
}
