package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coder/websocket"
)

// Carrier is one client connection to parleyd's tunnel, joined to a call's
// room: a WebSocket (TCP) or a WebTransport session (QUIC). Send is called
// from one goroutine and Recv from another; Close may be called at any time
// and makes both return.
type Carrier interface {
	// Send sends one message (Media, Ping or Select). A carrier whose path
	// is slow may drop it rather than block for long.
	Send(ctx context.Context, msg []byte) error
	// Recv returns the next message from the server: Joined, Peer, Media,
	// Pong or Error.
	Recv(ctx context.Context) ([]byte, error)
	// Kind names the carrier: "websocket" or "webtransport".
	Kind() string
	Close() error
}

// ErrClosed is returned by a carrier that was closed.
var ErrClosed = errors.New("tunnel: carrier closed")

// ResolveURL resolves a tunnel URL from a ticket against the server's base
// URL: a relative URL (the WebSocket path) is on the session's own origin,
// as ws:// or wss://.
func ResolveURL(server, ref string) (string, error) {
	base, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("tunnel: server address %q: %w", server, err)
	}
	u, err := base.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("tunnel: URL %q: %w", ref, err)
	}
	if !strings.HasPrefix(ref, "/") {
		return u.String(), nil
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	return u.String(), nil
}

// DialWebSocket opens a WebSocket carrier at u (ws:// or wss://) and sends
// Join; the server's Joined (or Error) is the first message Recv returns.
func DialWebSocket(ctx context.Context, u string, opts *websocket.DialOptions, room RoomID, ticket string) (Carrier, error) {
	ws, _, err := websocket.Dial(ctx, u, opts)
	if err != nil {
		return nil, fmt.Errorf("tunnel: WebSocket to %s: %w", u, err)
	}
	ws.SetReadLimit(MaxMessage)
	if err := ws.Write(ctx, websocket.MessageBinary, AppendJoin(nil, room, ticket)); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("tunnel: joining over WebSocket: %w", err)
	}
	return &wsCarrier{ws: ws}, nil
}

type wsCarrier struct{ ws *websocket.Conn }

func (c *wsCarrier) Kind() string { return "websocket" }

func (c *wsCarrier) Send(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageBinary, msg)
}

func (c *wsCarrier) Recv(ctx context.Context) ([]byte, error) {
	for {
		typ, msg, err := c.ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageBinary {
			return msg, nil
		}
	}
}

func (c *wsCarrier) Close() error { return c.ws.CloseNow() }

// Dialer opens carriers: WebSockets for ws:// and wss:// URLs, and
// WebTransport sessions for https:// URLs where this build has them.
type Dialer struct {
	// TLS, if set, is how wss:// and https:// carriers check the server's
	// certificate (its RootCAs); nil trusts the system's roots.
	TLS *tls.Config
}

// urlKind is the kind of carrier that URL u dials ("" for none).
func urlKind(u string) string {
	switch {
	case strings.HasPrefix(u, "ws://") || strings.HasPrefix(u, "wss://"):
		return "websocket"
	case strings.HasPrefix(u, "https://"):
		return "webtransport"
	}
	return ""
}

// OnlyCarrier wraps a ticket source so that its tickets keep only the URLs
// of one carrier kind ("websocket" or "webtransport"); "" or "any" keeps
// them all. A ticket left with none is an error that names the kind.
func OnlyCarrier(get func(context.Context) (*Ticket, error), kind string) func(context.Context) (*Ticket, error) {
	if kind == "" || kind == "any" {
		return get
	}
	return func(ctx context.Context) (*Ticket, error) {
		t, err := get(ctx)
		if err != nil {
			return nil, err
		}
		var keep []string
		for _, u := range t.URLs {
			if urlKind(u) == kind {
				keep = append(keep, u)
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("tunnel: the server offers no %s carrier", kind)
		}
		k := *t
		k.URLs = keep
		return &k, nil
	}
}

// Dial implements DialFunc.
func (d Dialer) Dial(ctx context.Context, u string, t *Ticket, room RoomID) (Carrier, error) {
	switch urlKind(u) {
	case "websocket":
		var c *tls.Config
		if strings.HasPrefix(u, "wss://") {
			c = d.TLS
		}
		return DialWebSocket(ctx, u, dialOptions(c), room, t.Ticket)
	case "webtransport":
		return dialWebTransport(ctx, u, d.TLS, t.CertHashes, room, t.Ticket)
	}
	return nil, fmt.Errorf("tunnel: no carrier for %q", u)
}

// DefaultDial is Dialer{}.Dial.
func DefaultDial(ctx context.Context, u string, t *Ticket, room RoomID) (Carrier, error) {
	return Dialer{}.Dial(ctx, u, t, room)
}
