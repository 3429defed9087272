//go:build !js

package client

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// dialWebSocket dials the WebSocket at u and returns it with its TCP
// connection, for stallWatch. The HTTP transport of opts (or the default
// one) is cloned for the dial so that its dial can be seen.
func dialWebSocket(ctx context.Context, u string, opts *websocket.DialOptions) (*websocket.Conn, net.Conn, error) {
	o := websocket.DialOptions{}
	if opts != nil {
		o = *opts
	}
	base, _ := http.DefaultTransport.(*http.Transport)
	hc := &http.Client{}
	if o.HTTPClient != nil {
		*hc = *o.HTTPClient
		if t, ok := o.HTTPClient.Transport.(*http.Transport); ok {
			base = t
		} else if o.HTTPClient.Transport != nil {
			base = nil // a transport of the caller's own: leave it be
		}
	}
	var mu sync.Mutex
	var raw net.Conn
	var stalled int // TCP's backoff when a handshake was given up
	dialing := make(chan struct{})
	defer close(dialing)
	if base != nil {
		tr := base.Clone()
		dial := tr.DialContext
		if dial == nil {
			dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err == nil {
				mu.Lock()
				raw = c
				mu.Unlock()
				// The TLS and HTTP handshakes can stall as a session can.
				go watchStalls(c, dialing, func(n int) {
					mu.Lock()
					stalled = n
					mu.Unlock()
					c.Close()
				})
			}
			return c, err
		}
		hc.Transport = tr
		o.HTTPClient = hc
	}
	ws, _, err := websocket.Dial(ctx, u, &o)
	mu.Lock()
	defer mu.Unlock()
	if err != nil && stalled > 0 {
		err = &stallError{backoff: stalled, err: err}
	}
	return ws, raw, err
}

// Stalls: how often a connection's TCP state is looked at, and the number
// of retransmission timeouts in a row (each doubling the wait for the
// next, from about 200 ms) after which the client gives up on it.
const (
	stallEvery   = 500 * time.Millisecond
	stallBackoff = 4
)

// watchStalls gives up on a connection (stalled) once the kernel has
// backed off its retransmissions on raw stallBackoff times in a row: on a
// link that loses packets in bursts, TCP's exponential backoff can hold a
// connection up for half a minute, while a new connection starts over
// with short timeouts. (Requests waiting on it fail as unavailable; Run
// reconnects.) It returns when done is closed.
func watchStalls(raw net.Conn, done <-chan struct{}, stalled func(backoff int)) {
	stallWatch(func() (int, bool) { return tcpBackoff(raw) }, done, stalled)
}

func stallWatch(backoff func() (int, bool), done <-chan struct{}, stalled func(backoff int)) {
	t := time.NewTicker(stallEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if n, ok := backoff(); !ok {
			return
		} else if n >= stallBackoff {
			stalled(n)
			return
		}
	}
}
