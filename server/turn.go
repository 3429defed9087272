package server

// The call relay's part of the server: TURN over TLS on the HTTPS port and
// TURN credentials over the session (wire.OpTURNCredentials). The relay
// itself is package relay; the port sharing is package tlsmux.

import (
	"context"
	"net"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/tlsmux"
	"github.com/parleychat/parley/wire"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// serveTLSAndRelay starts, in g, what Serve runs beside HTTP: the TLS
// port's demultiplexer when Config.TLS is set, and the relay when
// Config.Relay is. It returns the listener HTTP is to serve.
func (s *Server) serveTLSAndRelay(ctx context.Context, g *errgroup.Group, ln net.Listener) net.Listener {
	var turnTLS net.Listener
	if s.cfg.TLS != nil {
		mux := tlsmux.New(ln, s.cfg.TLS, s.cfg.Relay != nil, s.log)
		ln, turnTLS = mux.HTTP(), mux.TURN()
		g.Go(func() error { return mux.Serve(ctx) })
	}
	if r := s.cfg.Relay; r != nil {
		g.Go(func() error { return r.Serve(ctx, turnTLS, 0) })
	}
	return ln
}

// registerRelayMetrics adds the relay's gauge to the server's metrics.
func (s *Server) registerRelayMetrics() {
	r := s.cfg.Relay
	if r == nil {
		return
	}
	s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_turn_allocations",
		Help: "TURN allocations in use.",
	}, func() float64 { return float64(r.Allocations()) }))
}

// turnCredentials answers wire.OpTURNCredentials for the device addr.
func (s *Server) turnCredentials(addr parley.Address) (*wire.TURNCredentials, error) {
	r := s.cfg.Relay
	if r == nil {
		return nil, parley.Errorf(parley.KindUnavailable, "this server runs no TURN relay")
	}
	cr := r.Credentials(addr.String())
	s.log.Debug("turn credentials", "device", addr, "expires", cr.Expires)
	return &wire.TURNCredentials{Username: cr.Username, Password: cr.Password, TTLSeconds: uint32(cr.TTL / time.Second), URLs: cr.URLs}, nil
}
