//go:build !js

package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/wire"
)

// TestStallWatch: a connection is given up once TCP has backed off
// stallBackoff times in a row, and only then.
func TestStallWatch(t *testing.T) {
	t.Parallel()
	seq := []int{0, 1, 0, 2, 3, stallBackoff, stallBackoff + 1}
	i := 0
	backoff := func() (int, bool) {
		n := seq[min(i, len(seq)-1)]
		i++
		return n, true
	}
	got := make(chan int, 2)
	done := make(chan struct{})
	start := time.Now()
	stallWatch(backoff, done, func(n int) { got <- n })
	if n := <-got; n != stallBackoff || i != 6 {
		t.Errorf("stalled at backoff %d after %d looks, want %d after 6", n, i, stallBackoff)
	}
	if d := time.Since(start); d < 5*stallEvery {
		t.Errorf("gave up after %v", d)
	}
	// Closed first: it returns without a word.
	close(done)
	stallWatch(func() (int, bool) { return stallBackoff, true }, done, func(int) { t.Error("stalled after done") })
}

// TestDialSeesTCP: the WebSocket dialer finds the TCP connection under
// the WebSocket, with its own HTTP client too (--ca), and the kernel's
// backoff can be read from it; a connection given up on reads as a stall.
func TestDialSeesTCP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.Read(r.Context()) // until the client goes
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := WebSocketURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	own := &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{}}}
	for _, opts := range []*websocket.DialOptions{nil, own} {
		ws, raw, err := dialWebSocket(ctx, u, opts)
		if err != nil {
			t.Fatal(err)
		}
		if raw == nil {
			t.Fatalf("options %v: no TCP connection seen", opts)
		}
		if n, ok := tcpBackoff(raw); runtime.GOOS == "linux" && (!ok || n != 0) {
			t.Errorf("backoff %d, %v on a quiet loopback connection", n, ok)
		}
		ws.CloseNow()
	}

	conn, err := WebSocketDialer{}.Dial(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*wsConn)
	if acked, known := c.allAcked(); runtime.GOOS == "linux" && (!known || !acked) {
		t.Errorf("all acknowledged: %v, %v on a quiet loopback connection", acked, known)
	}
	c.stalled.Store(stallBackoff)
	c.ws.CloseNow()
	_, err = c.ReadFrame(ctx)
	if parley.ErrorKind(err) != parley.KindUnavailable || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("read after a stall: %v", err)
	}
}

type fakeAcker struct{ acked, known bool }

func (f fakeAcker) allAcked() (bool, bool) { return f.acked, f.known }

// TestSilenceWatch: a connection is given up when a request has waited
// silentAfter with nothing from the server though it acknowledged all we
// sent; not while our bytes are still on their way, nor when no request
// waits.
func TestSilenceWatch(t *testing.T) {
	t.Parallel()
	long := time.Now().Add(-2 * silentAfter)
	for _, tc := range []struct {
		name    string
		ac      fakeAcker
		waiting bool
		give    bool
	}{
		{"silent server", fakeAcker{true, true}, true, true},
		{"slow upload", fakeAcker{false, true}, true, false},
		{"no TCP state", fakeAcker{true, false}, true, false},
		{"idle", fakeAcker{true, true}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &session{pending: map[uint64]pendingRequest{}}
			s.heard.Store(long.UnixNano())
			if tc.waiting {
				s.pending[1] = pendingRequest{make(chan *wire.Frame, 1), long}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
			defer cancel()
			err := s.silenceWatch(ctx, tc.ac)
			if gave := err != nil; gave != tc.give {
				t.Errorf("gave up: %v (%v), want %v", gave, err, tc.give)
			}
			if err != nil && (parley.ErrorKind(err) != parley.KindUnavailable || !strings.Contains(err.Error(), "went silent")) {
				t.Errorf("error %v", err)
			}
		})
	}
}
