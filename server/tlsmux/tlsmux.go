// Package tlsmux shares one TLS port between HTTPS and TURN over TLS, as
// DESIGN.md's "one port, looks like the web" asks: the port does the TLS
// handshake itself, then hands each connection to the HTTP server or to
// the TURN relay.
//
// A connection goes to TURN when the client negotiated the ALPN protocol
// "stun.turn" (RFC 7443, section 6); otherwise, when it negotiated none,
// when its first bytes are a STUN message header (RFC 8489, section 5: the
// two top bits zero and the magic cookie 0x2112A442 at offset 4), which is
// what browsers send, as they offer no ALPN for TURN. Everything else goes
// to HTTP, which is offered as "http/1.1" (the WebSocket session needs
// HTTP/1.1).
//
// Connections told apart by their first bytes reach their listener
// wrapped, not as *tls.Conn; net/http then leaves Request.TLS nil for
// them. Clients that offer ALPN (every browser and Go's net/http) are
// handed over as *tls.Conn.
package tlsmux

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"
)

// ALPN protocol names.
const (
	ProtoTURN = "stun.turn" // RFC 7443
	ProtoHTTP = "http/1.1"
)

// stunCookie is the STUN magic cookie (RFC 8489, section 6).
var stunCookie = [4]byte{0x21, 0x12, 0xA4, 0x42}

// DefaultHandshakeTimeout bounds the TLS handshake and the wait for the
// first bytes of a client that negotiated no ALPN protocol. It is long
// because on a link that loses packets in bursts, TCP's retransmission
// backoff alone can hold a handshake up for over 10 s.
const DefaultHandshakeTimeout = 30 * time.Second

// Mux splits a listener's TLS connections between HTTP and TURN. Create it
// with New, take HTTP and TURN, and run Serve.
type Mux struct {
	ln      net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger
	http    *listener
	turn    *listener // nil when TURN is off
	conns   sync.WaitGroup
}

// New returns a Mux of ln. cfg holds the certificate; its NextProtos are
// replaced. With turn false, every connection goes to HTTP and "stun.turn"
// is not offered. A nil logger discards.
func New(ln net.Listener, cfg *tls.Config, turn bool, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{ProtoHTTP}
	m := &Mux{ln: ln, cfg: cfg, timeout: DefaultHandshakeTimeout, log: log, http: newListener(ln.Addr())}
	if turn {
		cfg.NextProtos = append(cfg.NextProtos, ProtoTURN)
		m.turn = newListener(ln.Addr())
	}
	return m
}

// HTTP returns the listener of the connections meant for HTTP: finished
// TLS connections.
func (m *Mux) HTTP() net.Listener { return m.http }

// TURN returns the listener of the connections meant for TURN, or nil when
// New was told there is no TURN.
func (m *Mux) TURN() net.Listener {
	if m.turn == nil {
		return nil
	}
	return m.turn
}

// Serve accepts connections until ctx is done, then closes the listener
// and waits for the handshakes in progress. Each connection is handshaken
// in a goroutine of its own, within the handshake timeout; one that its
// listener does not take before that listener is closed, or before ctx is
// done, is closed. The HTTP and TURN listeners are left to their
// consumers to close (http.Server.Shutdown and the TURN server do).
func (m *Mux) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { m.ln.Close() })
	defer func() {
		stop()
		m.ln.Close()
		m.conns.Wait()
	}()
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Like net/http: back off on errors such as too many open files.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("tls accept", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		m.conns.Add(1)
		go func() {
			defer m.conns.Done()
			m.route(ctx, c)
		}()
	}
}

// route handshakes c and hands it to its listener.
func (m *Mux) route(ctx context.Context, raw net.Conn) {
	tc := tls.Server(raw, m.cfg)
	hctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		m.log.Debug("tls handshake", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	var c net.Conn = tc
	to := m.http
	switch proto := tc.ConnectionState().NegotiatedProtocol; {
	case proto == ProtoTURN:
		to = m.turn
	case proto == "" && m.turn != nil:
		pc, isSTUN, err := peek(tc, time.Now().Add(m.timeout))
		if err != nil {
			m.log.Debug("tls: reading the first bytes", "remote", raw.RemoteAddr().String(), "err", err)
			tc.Close()
			return
		}
		if isSTUN {
			to = m.turn
		}
		c = pc
	}
	if !to.deliver(ctx, c) {
		c.Close()
	}
}

// peek reads the first bytes of c, enough to tell a STUN message header
// from anything else, and returns c with those bytes put back.
func peek(c net.Conn, deadline time.Time) (net.Conn, bool, error) {
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	var b [8]byte
	n, err := c.Read(b[:1])
	if n == 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	// A STUN message type has its two top bits zero; requests and
	// indications, which a client sends first, are below 0x0200.
	if b[0] > 0x01 {
		return &prefixConn{Conn: c, prefix: slices.Clone(b[:1])}, false, nil
	}
	m, err := io.ReadFull(c, b[1:])
	n += m
	if err != nil && n < len(b) {
		return &prefixConn{Conn: c, prefix: slices.Clone(b[:n])}, false, nil
	}
	return &prefixConn{Conn: c, prefix: slices.Clone(b[:])}, [4]byte(b[4:8]) == stunCookie, nil
}

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// NetConn returns the connection underneath (as tls.Conn's does).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// listener is a net.Listener fed by the Mux.
type listener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newListener(addr net.Addr) *listener {
	return &listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to whoever calls Accept; false when the listener is
// closed first, or ctx is done.
func (l *listener) deliver(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }
