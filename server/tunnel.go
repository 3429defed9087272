package server

// The call tunnel's part of the server: tickets over the session
// (wire.OpTunnelTicket) and metrics. The tunnel itself is package
// server/tunnel, served at tunnel.Path.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
)

// tunnelTicket answers wire.OpTunnelTicket for the device addr. The
// WebSocket's URL is relative: it is on the session's own origin. The
// WebTransport endpoint, if any, comes first: clients race the carriers
// and prefer the first listed that works.
func (s *Server) tunnelTicket(addr parley.Address) (*wire.TunnelTicket, error) {
	if s.tunnel == nil {
		return nil, parley.Errorf(parley.KindUnavailable, "this server runs no call tunnel")
	}
	t, ttl := s.tunnel.Ticket(addr)
	tt := &wire.TunnelTicket{Ticket: t, TTLSeconds: uint32(ttl / time.Second)}
	if wt := s.cfg.WebTransport; wt != nil {
		tt.URLs = append(tt.URLs, wt.URL)
		if wt.Hashes != nil {
			tt.CertHashes = wt.Hashes()
		}
	}
	tt.URLs = append(tt.URLs, tunnel.Path)
	return tt, nil
}

// registerTunnelMetrics adds the tunnel's figures to the server's metrics.
func (s *Server) registerTunnelMetrics() {
	h := s.tunnel
	if h == nil {
		return
	}
	s.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_tunnel_carriers", Help: "Call tunnel carriers (WebSocket or WebTransport connections) joined to a call.",
		}, func() float64 { return float64(h.Stats().Carriers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_tunnel_media_forwarded_total", Help: "Call tunnel media messages forwarded to the other device.",
		}, func() float64 { return float64(h.Stats().Forwarded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_tunnel_media_dropped_total", Help: "Call tunnel media messages dropped: no other device yet, over the rate limit, or its carrier's queue full.",
		}, func() float64 { return float64(h.Stats().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_tunnel_media_duplicates_total", Help: "Call tunnel media messages dropped as the second copy of a packet that a device trying two carriers sent on both.",
		}, func() float64 { return float64(h.Stats().Duplicates) }),
	)
}
