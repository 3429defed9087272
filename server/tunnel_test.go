package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
)

// TestTunnelTicket: a device gets a ticket over its session and joins the
// tunnel with it; two devices in one room exchange media through parleyd.
func TestTunnelTicket(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	c := dial(t, ts)
	wantErr(t, "ticket before login", c.call(wire.OpTunnelTicket, &wire.GetTunnelTicket{}), parley.KindUnauthorized)
	id := newIdentity(t, "alice")
	if f := c.register(id, id.keys(t, 1, true)); f.Err != nil {
		t.Fatalf("register: %v", f.Err)
	}
	bob, _ := registered(t, ts, "bob", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	room := tunnel.RoomID{7}
	var carriers []tunnel.Carrier
	for _, cl := range []*client{c, bob} {
		tt, ok := cl.mustCall(wire.OpTunnelTicket, &wire.GetTunnelTicket{}).(*wire.TunnelTicket)
		if !ok || tt.TTLSeconds < 60 || len(tt.URLs) == 0 {
			t.Fatalf("ticket %+v", tt)
		}
		u, err := tunnel.ResolveURL(ts.http, tt.URLs[0])
		if err != nil || !strings.HasPrefix(u, "ws://") {
			t.Fatalf("tunnel URL %q: %v", u, err)
		}
		cr, err := tunnel.DialWebSocket(ctx, u, nil, room, tt.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		defer cr.Close()
		if m, err := cr.Recv(ctx); err != nil || tunnel.MsgType(m[0]) != tunnel.MsgJoined {
			t.Fatalf("join answered %x, %v", m, err)
		}
		carriers = append(carriers, cr)
	}
	if m, err := carriers[0].Recv(ctx); err != nil || string(m) != string([]byte{byte(tunnel.MsgPeer), 1}) {
		t.Fatalf("alice was told %x, %v; want that bob joined", m, err)
	}
	if err := carriers[1].Send(ctx, tunnel.AppendMedia(nil, []byte("opaque"))); err != nil {
		t.Fatal(err)
	}
	if m, err := carriers[0].Recv(ctx); err != nil || string(m[1:]) != "opaque" || tunnel.MsgType(m[0]) != tunnel.MsgMedia {
		t.Fatalf("alice got %x, %v", m, err)
	}
}

func TestNoTunnel(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{NoTunnel: true})
	c, _ := registered(t, ts, "bob", 1)
	wantErr(t, "ticket without a tunnel", c.call(wire.OpTunnelTicket, &wire.GetTunnelTicket{}), parley.KindUnavailable)
}
