package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/wire"
)

// Conn carries wire frames to and from parleyd. ReadFrame is called from one
// goroutine and WriteFrame from one other; Close may be called at any time
// and makes both return.
type Conn interface {
	ReadFrame(ctx context.Context) (*wire.Frame, error)
	WriteFrame(ctx context.Context, f *wire.Frame) error
	Close() error
}

// Dialer opens a Conn to the server at a base URL such as
// "http://127.0.0.1:8080".
type Dialer interface {
	Dial(ctx context.Context, server string) (Conn, error)
}

// WebSocketDialer dials wire.Path on the server with a WebSocket
// (ws for http URLs, wss for https). It works natively and under js/wasm.
type WebSocketDialer struct {
	Options *websocket.DialOptions // may be nil
}

// NormalizeServer checks a server address and returns it as a base URL:
// "127.0.0.1:8080" becomes "http://127.0.0.1:8080", a trailing slash goes.
func NormalizeServer(server string) (string, error) {
	if _, err := WebSocketURL(server); err != nil {
		return "", err
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return strings.TrimSuffix(server, "/"), nil
}

// WebSocketURL turns a server base URL into the URL of its WebSocket
// endpoint.
func WebSocketURL(server string) (string, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return "", parley.Errorf(parley.KindInvalid, "server address %q: %w", server, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", parley.Errorf(parley.KindInvalid, "server address %q: want http:// or https://", server)
	}
	if u.Host == "" {
		return "", parley.Errorf(parley.KindInvalid, "server address %q: no host", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + wire.Path
	return u.String(), nil
}

// Dial implements Dialer.
func (d WebSocketDialer) Dial(ctx context.Context, server string) (Conn, error) {
	u, err := WebSocketURL(server)
	if err != nil {
		return nil, err
	}
	ws, raw, err := dialWebSocket(ctx, u, d.Options)
	if err != nil {
		// The innermost cause reads best ("connection refused"); the whole
		// chain stays in Err.
		msg := err.Error()
		var se *stallError
		if i := strings.LastIndex(msg, ": "); i >= 0 && !errors.As(err, &se) {
			msg = msg[i+2:]
		}
		return nil, &parley.Error{Kind: parley.KindUnavailable, Message: fmt.Sprintf("cannot reach the server at %s (%s)", server, msg), Err: err}
	}
	ws.SetReadLimit(parley.MaxFrameSize)
	c := &wsConn{ws: ws, raw: raw, done: make(chan struct{})}
	if raw != nil {
		go watchStalls(raw, c.done, func(backoff int) {
			c.stalled.Store(int32(backoff))
			ws.CloseNow()
		})
	}
	return c, nil
}

// stallError is a connection given up on because TCP kept timing out.
type stallError struct {
	backoff int
	err     error
}

func (e *stallError) Error() string {
	return fmt.Sprintf("the connection stalled: TCP timed out %d times in a row", e.backoff)
}

func (e *stallError) Unwrap() error { return e.err }

type wsConn struct {
	ws        *websocket.Conn
	raw       net.Conn      // its TCP connection, when it can be seen
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	stalled   atomic.Int32 // TCP's backoff when stallWatch closed it
}

func (c *wsConn) ReadFrame(ctx context.Context) (*wire.Frame, error) {
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		if n := c.stalled.Load(); n > 0 {
			se := &stallError{backoff: int(n), err: err}
			return nil, &parley.Error{Kind: parley.KindUnavailable, Message: se.Error(), Err: se}
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			if k := wire.CloseKind(int(ce.Code)); k != "" {
				return nil, &parley.Error{Kind: k, Message: closeMessage(ce), Err: err}
			}
		}
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("read frame: got a text message")
	}
	return wire.DecodeFrame(b)
}

func (c *wsConn) WriteFrame(ctx context.Context, f *wire.Frame) error {
	b, err := f.MarshalBinary()
	if err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return c.ws.Write(ctx, websocket.MessageBinary, b)
}

// allAcked implements acker.
func (c *wsConn) allAcked() (bool, bool) {
	if c.raw == nil {
		return false, false
	}
	return tcpAllAcked(c.raw)
}

func (c *wsConn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

func closeMessage(ce websocket.CloseError) string {
	if ce.Reason != "" {
		return "the server closed the connection: " + ce.Reason
	}
	return fmt.Sprintf("the server closed the connection (code %d)", ce.Code)
}
