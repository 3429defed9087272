package call

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// turnTLSNextProto is the ALPN protocol of TURN over TLS (RFC 7443,
// section 6). parleyd's TLS port tells TURN from HTTPS by it.
const turnTLSNextProto = "stun.turn"

// turnDialTimeout bounds the TCP connection and the TLS handshake to a
// TURN server.
const turnDialTimeout = 10 * time.Second

// turnDialer opens the TCP connections of pion's ICE agent to TURN servers
// (SettingEngine.SetICEProxyDialer), so that TURN over TLS (turns: URLs)
// verifies the server's certificate with Config.TURNTLS: pion's own
// dialer trusts only the system's roots. pion hands it a network and an
// address, not the URL: the addresses of turns: URLs are dialled with TLS,
// every other one (turn:…?transport=tcp) in the clear. A TURN server
// that serves TCP and TLS on one port cannot be told apart; the TLS URL
// wins.
type turnDialer struct {
	tls map[string]bool // host:port of the turns: URLs
	cfg *tls.Config
}

// newTURNDialer returns the dialer for the TCP and TLS URLs of servers.
func newTURNDialer(servers []webrtc.ICEServer, cfg *tls.Config) (*turnDialer, error) {
	d := &turnDialer{tls: map[string]bool{}, cfg: cfg}
	for _, s := range servers {
		for _, raw := range s.URLs {
			u, err := ice.ParseURL(raw)
			if err != nil {
				return nil, fmt.Errorf("ICE server %q: %w", raw, err)
			}
			if u.Scheme.String() == "turns" {
				d.tls[net.JoinHostPort(u.Host, strconv.Itoa(u.Port))] = true
			}
		}
	}
	return d, nil
}

// Dial implements golang.org/x/net/proxy.Dialer, which
// SettingEngine.SetICEProxyDialer takes.
func (d *turnDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), turnDialTimeout)
	defer cancel()
	if !d.tls[addr] {
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := d.cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{turnTLSNextProto}
	td := tls.Dialer{Config: cfg}
	c, err := td.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("TURN over TLS to %s: %w", addr, err)
	}
	return c, nil
}
