package client

import (
	"context"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
)

// TURNCredentials is a credential of the server's TURN relay for this
// device, with the relay's URLs: what a WebRTC RTCIceServer takes.
type TURNCredentials struct {
	URLs     []string // "turn:host:port?transport=udp", "turns:…" (RFC 7065)
	Username string
	Password string
	// Expires is when the relay stops taking the credential, by this
	// device's clock; ask for a new one before then.
	Expires time.Time
}

// TURNCredentials asks the server for a credential of its TURN relay. It
// needs a live connection (see Run); a server without a relay answers with
// a KindUnavailable error.
func (c *Client) TURNCredentials(ctx context.Context) (*TURNCredentials, error) {
	f, err := c.requestLive(ctx, wire.OpTURNCredentials, &wire.GetTURNCredentials{})
	if err != nil {
		return nil, err
	}
	tc, ok := f.Body.(*wire.TURNCredentials)
	if !ok || tc.Username == "" || tc.Password == "" || len(tc.URLs) == 0 {
		return nil, parley.Errorf(parley.KindUnsupported, "odd answer to %v", wire.OpTURNCredentials)
	}
	return &TURNCredentials{
		URLs:     tc.URLs,
		Username: tc.Username,
		Password: tc.Password,
		Expires:  c.now().Add(time.Duration(tc.TTLSeconds) * time.Second),
	}, nil
}

// TunnelTicket asks the server for a ticket to its call tunnel (tier 2 of
// calls, package tunnel), with the tunnel's URLs resolved against the
// server's address. It needs a live connection; a server without the
// tunnel answers with a KindUnavailable error.
func (c *Client) TunnelTicket(ctx context.Context) (*tunnel.Ticket, error) {
	f, err := c.requestLive(ctx, wire.OpTunnelTicket, &wire.GetTunnelTicket{})
	if err != nil {
		return nil, err
	}
	_, _, server, err := c.Whoami()
	if err != nil {
		return nil, err
	}
	return TunnelTicketOf(f, server, c.now())
}

// TunnelTicketOf is the ticket in f, the server's answer to
// wire.OpTunnelTicket at now, with its URLs resolved against the server's
// base URL.
func TunnelTicketOf(f *wire.Frame, server string, now time.Time) (*tunnel.Ticket, error) {
	tt, ok := f.Body.(*wire.TunnelTicket)
	if !ok || tt.Ticket == "" || len(tt.URLs) == 0 {
		return nil, parley.Errorf(parley.KindUnsupported, "odd answer to %v", wire.OpTunnelTicket)
	}
	t := &tunnel.Ticket{Ticket: tt.Ticket, CertHashes: tt.CertHashes, Expires: now.Add(time.Duration(tt.TTLSeconds) * time.Second)}
	for _, ref := range tt.URLs {
		u, err := tunnel.ResolveURL(server, ref)
		if err != nil {
			return nil, parley.Errorf(parley.KindUnsupported, "the server's tunnel URL %q: %v", ref, err)
		}
		t.URLs = append(t.URLs, u)
	}
	return t, nil
}

// requestLive makes a request on the live connection, failing with
// KindUnavailable when there is none.
func (c *Client) requestLive(ctx context.Context, op wire.Op, body any) (*wire.Frame, error) {
	s := c.live()
	if s == nil {
		return nil, parley.Errorf(parley.KindUnavailable, "not connected to the server")
	}
	return s.request(ctx, op, body)
}
