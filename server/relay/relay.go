package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v5"
)

// Defaults of Config.
const (
	DefaultListen        = "127.0.0.1:3478"
	DefaultRealm         = "parley"
	DefaultCredentialTTL = 12 * time.Hour
)

// Config configures a relay. Zero values mean the documented defaults.
type Config struct {
	// Listen is the address of both the UDP and the TCP listener:
	// DefaultListen. Port 0 picks a free port (the same number for both
	// when it can; see Server.UDPAddr and Server.TCPAddr).
	Listen string
	// RelayIP is the address put in relayed transport addresses, the one
	// peers send to: a public IP in production. Default: the IP of Listen;
	// an unspecified Listen IP (":3478") needs it set.
	RelayIP net.IP
	// Host is the name or IP clients reach the relay at, in the TURN URLs
	// of Server.Credentials: default RelayIP. With TURN over TLS it should
	// be a name that the server's certificate holds.
	Host string
	// Secret is the shared secret of the credentials. Load it with
	// LoadSecret; it must not be empty.
	Secret []byte
	// CredentialTTL is how long a credential works: DefaultCredentialTTL.
	// The relay checks it on every authenticated request, including the
	// refreshes of a running allocation, so it bounds the length of a
	// call whose client cannot change credentials mid-call (a browser's).
	CredentialTTL time.Duration
	// Realm is the TURN realm: DefaultRealm.
	Realm string
	// Allow lists the networks that are relayed to even though they are
	// loopback, private, link-local or otherwise special (see the package
	// doc). Tests on loopback allow 127.0.0.0/8.
	Allow []netip.Prefix
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the credentials; nil is time.Now.
	Now func() time.Time
}

// Credentials is one device's TURN credential, as a WebRTC client wants it
// in an RTCIceServer.
type Credentials struct {
	Username string // "EXPIRY:user.device"
	Password string // base64(HMAC-SHA1(secret, Username))
	Expires  time.Time
	TTL      time.Duration // Expires less the time it was made
	URLs     []string      // turn: and turns: URLs, see Server.URLs
}

// Server is a TURN relay. Listen binds its sockets; Serve runs it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	udp   net.PacketConn
	tcp   net.Listener
	bind  string // the IP relayed sockets bind to
	allow []netip.Prefix

	tlsMu   sync.Mutex
	tlsPort int // guarded by tlsMu: the port of TURN over TLS, 0 when off

	allocations atomic.Int64
	closeOnce   sync.Once
	logs        gate // pion/turn's goroutines log through it (see gate)
}

// Listen binds the UDP and TCP sockets of cfg.Listen. Call Serve to run the
// relay, or Close.
func Listen(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.CredentialTTL <= 0 {
		cfg.CredentialTTL = DefaultCredentialTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("relay: no secret")
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("relay: listen address %q: %w", cfg.Listen, err)
	}
	bind := "0.0.0.0"
	if host != "" {
		ip := net.ParseIP(host)
		if ip == nil {
			return nil, fmt.Errorf("relay: listen address %q: want an IP address, not a name", cfg.Listen)
		}
		if !ip.IsUnspecified() {
			bind = ip.String()
			if cfg.RelayIP == nil {
				cfg.RelayIP = ip
			}
		} else if ip.To4() == nil {
			bind = "::"
		}
	}
	if cfg.RelayIP == nil || cfg.RelayIP.IsUnspecified() {
		return nil, fmt.Errorf("relay: listening on %q needs the relay's public IP (--relay-ip)", cfg.Listen)
	}
	if cfg.Host == "" {
		cfg.Host = cfg.RelayIP.String()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, bind: bind, allow: cfg.Allow}
	// UDP and TCP on the same port number: take the UDP port first, then
	// the same for TCP; with port 0, retry when TCP's is taken.
	for try := 0; ; try++ {
		udp, err := net.ListenPacket("udp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		tcp, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			s.udp, s.tcp = udp, tcp
			setReadBuffer(udp)
			break
		}
		udp.Close()
		if port != "0" || try == 10 {
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	return s, nil
}

// udpReadBuffer is the receive buffer asked for the UDP listener. Every
// client's packets queue in this one socket (pion/turn reads it in one
// goroutine), so the kernel's default (208 KiB, ~250 small datagrams,
// 10 ms at 25,000 packets/s) drops packets whenever the relay is kept off
// its core that long. The kernel caps it at net.core.rmem_max.
const udpReadBuffer = 4 << 20

func setReadBuffer(c net.PacketConn) {
	if u, ok := c.(*net.UDPConn); ok {
		u.SetReadBuffer(udpReadBuffer) // best effort: a smaller buffer still works
	}
}

// UDPAddr is the address of the UDP listener.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udp.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the address of the TCP listener.
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcp.Addr().(*net.TCPAddr) }

// Allocations is the number of allocations in use.
func (s *Server) Allocations() int { return int(s.allocations.Load()) }

// Credentials returns a credential for the device user.device (any string
// without a colon names the holder), valid for Config.CredentialTTL.
func (s *Server) Credentials(holder string) Credentials {
	now := s.cfg.Now()
	exp := now.Add(s.cfg.CredentialTTL).Truncate(time.Second)
	username := strconv.FormatInt(exp.Unix(), 10) + ":" + holder
	return Credentials{Username: username, Password: Password(s.cfg.Secret, username), Expires: exp, TTL: exp.Sub(now), URLs: s.URLs()}
}

// URLs lists the relay's TURN URLs (RFC 7065): UDP and TCP on the TURN
// port and, when TURN over TLS is served, turns: on the TLS port.
func (s *Server) URLs() []string {
	host := s.cfg.Host
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	udp, tcp := s.UDPAddr().Port, s.TCPAddr().Port
	urls := []string{
		"turn:" + host + ":" + strconv.Itoa(udp) + "?transport=udp",
		"turn:" + host + ":" + strconv.Itoa(tcp) + "?transport=tcp",
	}
	s.tlsMu.Lock()
	defer s.tlsMu.Unlock()
	if s.tlsPort != 0 {
		urls = append(urls, "turns:"+host+":"+strconv.Itoa(s.tlsPort)+"?transport=tcp")
	}
	return urls
}

// Serve runs the relay until ctx is done, then closes it: the UDP and TCP
// listeners, tls when not nil (a listener of TLS connections meant for
// TURN, see package tlsmux), and every allocation. tlsPort is the public
// port of TURN over TLS, for URLs; 0 takes tls's own.
func (s *Server) Serve(ctx context.Context, tls net.Listener, tlsPort int) error {
	gen := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: s.cfg.RelayIP, Address: s.bind}
	}
	defer s.logs.close()
	cfg := turn.ServerConfig{
		Realm:         s.cfg.Realm,
		AuthHandler:   s.authenticate,
		LoggerFactory: slogFactory{s.log, &s.logs},
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, proto, user, _ string, relayed net.Addr, _ int) {
				s.allocations.Add(1)
				s.logs.do(func() {
					s.log.Info("turn allocation", "holder", user, "client", src.String(), "transport", proto, "relayed", relayed.String())
				})
			},
			OnAllocationDeleted: func(src, _ net.Addr, proto, user, _ string) {
				s.allocations.Add(-1)
				s.logs.do(func() {
					s.log.Info("turn allocation ended", "holder", user, "client", src.String(), "transport", proto)
				})
			},
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: s.udp, RelayAddressGenerator: gen(), PermissionHandler: s.permit}},
	}
	listeners := []*tracked{track(s.tcp)}
	if tls != nil {
		listeners = append(listeners, track(tls))
		if tlsPort == 0 {
			if a, ok := tls.Addr().(*net.TCPAddr); ok {
				tlsPort = a.Port
			}
		}
		s.tlsMu.Lock()
		s.tlsPort = tlsPort
		s.tlsMu.Unlock()
	}
	for _, l := range listeners {
		cfg.ListenerConfigs = append(cfg.ListenerConfigs, turn.ListenerConfig{Listener: l, RelayAddressGenerator: gen(), PermissionHandler: s.permit})
	}
	ts, err := turn.NewServer(cfg)
	if err != nil {
		s.Close()
		if tls != nil {
			tls.Close()
		}
		return fmt.Errorf("relay: %w", err)
	}
	s.log.Info("turn relay", "udp", s.UDPAddr().String(), "tcp", s.TCPAddr().String(), "relay_ip", s.cfg.RelayIP.String(),
		"urls", strings.Join(s.URLs(), " "), "allow", fmt.Sprint(s.allow), "credential_ttl", s.cfg.CredentialTTL)
	<-ctx.Done()
	err = ts.Close()
	s.closeOnce.Do(func() {})
	for _, l := range listeners {
		l.closeAll()
	}
	// pion/turn deletes allocations in its own goroutines; wait for them,
	// so that nothing of the relay runs once Serve has returned.
	for deadline := time.Now().Add(2 * time.Second); s.allocations.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}

// Close closes the listeners of a relay that Serve never ran.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = errors.Join(s.udp.Close(), s.tcp.Close())
	})
	return err
}

// authenticate is the TURN REST API check (see the package doc): it
// returns the long-term key of a username whose expiry has not passed.
// A wrong password is caught by pion/turn, which checks the request's
// MESSAGE-INTEGRITY with this key.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	exp, holder, found := cutColon(ra.Username)
	if !found {
		s.logs.do(func() {
			s.log.Debug("turn: refused a username that is no credential", "client", addrString(ra.SrcAddr))
		})
		return "", nil, false
	}
	t, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		s.logs.do(func() {
			s.log.Debug("turn: refused a username that is no credential", "client", addrString(ra.SrcAddr))
		})
		return "", nil, false
	}
	if s.cfg.Now().Unix() > t {
		s.logs.do(func() {
			s.log.Debug("turn: refused an expired credential", "holder", holder, "client", addrString(ra.SrcAddr))
		})
		return "", nil, false
	}
	return holder, turn.GenerateAuthKey(ra.Username, ra.Realm, Password(s.cfg.Secret, ra.Username)), true
}

func cutColon(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// permit is the PermissionHandler of every listener: see Allowed.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	if s.Allowed(peer) {
		return true
	}
	s.logs.do(func() {
		s.log.Info("turn: refused a permission to a special address", "client", addrString(client), "peer", peer.String())
	})
	return false
}

// Allowed reports whether the relay may send to and receive from ip: a
// public unicast address, or one inside Config.Allow.
func (s *Server) Allowed(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range s.allow {
		if p.Contains(a) {
			return true
		}
	}
	return Public(a)
}
