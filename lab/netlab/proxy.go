package netlab

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// A Proxy is the in-process stand-in for the censor where the lab cannot
// run (no root): it listens on one loopback port for UDP and TCP, relays both
// to a target, and applies a profile to what it relays. Up is client →
// target, Down is target → client.
//
// It is an approximation, and says so: it sees datagrams and byte streams,
// not packets. UDP meets every profile as in the lab (the same seeded loss
// and delay code, DPI on the payload, the same rates). TCP is relayed as a
// stream: udp-blocked and stun-dpi pass it, rate-32k paces it, and
// tcp-freeze-16k stops relaying downstream after 16000 bytes of payload
// (the lab counts IP bytes, ~15.4 KB of payload), but loss and jitter
// cannot be applied to a stream, so loss-10, burst-loss-20 and jitter-150
// leave TCP unimpaired.
type Proxy struct {
	impairer
	prof   Profile
	target netip.AddrPort
	udp    *net.UDPConn
	tcp    *net.TCPListener

	mu      sync.Mutex // guards the fields below
	flows   map[netip.AddrPort]*net.UDPConn
	buckets map[flowKey]*bucket
	links   map[flowKey]*link
}

type flowKey struct {
	client netip.AddrPort
	dir    Direction
}

// ListenProxy opens the proxy's UDP and TCP sockets on 127.0.0.1 (one port
// for both) toward target. Run relays.
func ListenProxy(profile string, target netip.AddrPort, seed uint64) (*Proxy, error) {
	prof, err := Lookup(profile)
	if err != nil {
		return nil, err
	}
	p := &Proxy{prof: prof, target: target, flows: map[netip.AddrPort]*net.UDPConn{},
		buckets: map[flowKey]*bucket{}, links: map[flowKey]*link{}}
	p.setImpairment(prof.impair, max(seed, 1))
	// A free TCP port whose UDP twin is free too.
	for range 20 {
		tl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, fmt.Errorf("netlab: proxy: %w", err)
		}
		ul, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tl.Addr().(*net.TCPAddr).Port})
		if err != nil {
			tl.Close()
			continue
		}
		_ = ul.SetReadBuffer(4 << 20)
		p.udp, p.tcp = ul, tl
		return p, nil
	}
	return nil, errors.New("netlab: proxy: no free port for both UDP and TCP")
}

// Addr is where clients send, for UDP and TCP alike.
func (p *Proxy) Addr() netip.AddrPort { return p.tcp.Addr().(*net.TCPAddr).AddrPort() }

// Profile is the proxy's profile.
func (p *Proxy) Profile() Profile { return p.prof }

// QueueStats reports what the loss and delay model did in direction d.
func (p *Proxy) QueueStats(d Direction) QueueStats { return p.stats(d) }

// Run relays until ctx ends, then closes the proxy's sockets.
func (p *Proxy) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-ctx.Done()
		p.udp.Close()
		p.tcp.Close()
		p.mu.Lock()
		for _, c := range p.flows {
			c.Close()
		}
		p.mu.Unlock()
		return nil
	})
	g.Go(func() error { return p.serveUDP(ctx, g) })
	g.Go(func() error { return p.serveTCP(ctx, g) })
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (p *Proxy) serveUDP(ctx context.Context, g *errgroup.Group) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netlab: proxy: %w", err)
		}
		p.mu.Lock()
		up, ok := p.flows[from]
		if !ok {
			up, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(p.target))
			if err == nil {
				p.flows[from] = up
				g.Go(func() error { p.udpReplies(ctx, up, from); return nil })
			}
		}
		p.mu.Unlock()
		if err != nil {
			continue
		}
		p.relayDatagram(from, Up, bytes.Clone(buf[:n]), func(b []byte) { _, _ = up.Write(b) })
	}
}

// udpReplies relays the target's datagrams on one flow back to its client.
func (p *Proxy) udpReplies(ctx context.Context, up *net.UDPConn, client netip.AddrPort) {
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		n, err := up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				continue // e.g. ECONNREFUSED from an ICMP error: keep the flow
			}
			return
		}
		p.relayDatagram(client, Down, bytes.Clone(buf[:n]), func(b []byte) { _, _ = p.udp.WriteToUDPAddrPort(b, client) })
	}
}

// relayDatagram applies the profile to one datagram and sends it, at once
// or later.
func (p *Proxy) relayDatagram(client netip.AddrPort, d Direction, b []byte, send func([]byte)) {
	switch p.prof.Name {
	case "udp-blocked":
		return
	case "stun-dpi":
		if isSTUN(b) || isDTLSHandshake(b) || !p.bucket(client, d).take(len(b)+28) {
			return
		}
	}
	var wait time.Duration
	if p.prof.rateBits > 0 {
		var ok bool
		if wait, ok = p.link(client, d).admit(len(b) + 28); !ok {
			return
		}
	}
	drop, delay := p.decide(d)
	if drop {
		return
	}
	if wait += delay; wait > 0 {
		time.AfterFunc(wait, func() { send(b) })
		return
	}
	send(b)
}

func (p *Proxy) serveTCP(ctx context.Context, g *errgroup.Group) error {
	for {
		c, err := p.tcp.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netlab: proxy: %w", err)
		}
		g.Go(func() error { p.relayTCP(ctx, c); return nil })
	}
}

// relayTCP relays one connection: a copy loop each way, shaped or frozen by
// the profile.
func (p *Proxy) relayTCP(ctx context.Context, c *net.TCPConn) {
	defer c.Close()
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	var dialer net.Dialer
	t, err := dialer.DialContext(ctx, "tcp4", p.target.String())
	if err != nil {
		return
	}
	defer t.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); t.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	go func() { p.copyTCP(client, Up, t, c); done <- struct{}{} }()
	go func() { p.copyTCP(client, Down, c, t); done <- struct{}{} }()
	<-done
	<-done
}

// freezeAfter is tcp-freeze-16k's downstream allowance in the proxy.
const freezeAfter = 16000

func (p *Proxy) copyTCP(client netip.AddrPort, d Direction, dst io.Writer, src net.Conn) {
	buf := make([]byte, 1448)
	total := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if p.prof.Name == "tcp-freeze-16k" && d == Down {
				if total+n > freezeAfter {
					chunk = buf[:max(freezeAfter-total, 0)]
				}
			}
			if p.prof.rateBits > 0 && len(chunk) > 0 {
				time.Sleep(p.link(client, d).admitBlocking(len(chunk) + 52))
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
			total += len(chunk)
			if len(chunk) < n {
				// Frozen: relay nothing more downstream and never send
				// a FIN or RST; the relay ends when the client closes.
				_, _ = io.Copy(io.Discard, src)
				return
			}
		}
		if err != nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return
		}
	}
}

func (p *Proxy) bucket(client netip.AddrPort, d Direction) *bucket {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := flowKey{client, d}
	if p.buckets[k] == nil {
		p.buckets[k] = &bucket{rate: 4096, burst: 8192, tokens: 8192, last: time.Now()}
	}
	return p.buckets[k]
}

func (p *Proxy) link(client netip.AddrPort, d Direction) *link {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A rate applies per client host and direction, as in the lab.
	k := flowKey{netip.AddrPortFrom(client.Addr(), 0), d}
	if p.links[k] == nil {
		p.links[k] = &link{bytesPerSec: float64(p.prof.rateBits) / 8, queue: p.prof.queueBytes}
	}
	return p.links[k]
}

// isSTUN reports a STUN message: the magic cookie at offset 4 (RFC 8489 §5).
func isSTUN(b []byte) bool {
	return len(b) >= 8 && binary.BigEndian.Uint32(b[4:]) == stunMagicCookie
}

// isDTLSHandshake reports a DTLS handshake record: content type 22, version
// 1.0 (0xfeff) or 1.2 (0xfefd) (RFC 9147 §4).
func isDTLSHandshake(b []byte) bool {
	return len(b) >= 3 && b[0] == dtlsHandshake && b[1] == 0xfe && (b[2] == 0xff || b[2] == 0xfd)
}

// bucket is a token bucket in bytes, as iptables' hashlimit.
type bucket struct {
	mu                  sync.Mutex // guards the fields below
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// link is a rate-limited link with a tail-drop queue of queue bytes: a
// packet leaves when the link has sent everything before it.
type link struct {
	mu          sync.Mutex // guards busyUntil
	bytesPerSec float64
	queue       int
	busyUntil   time.Time
}

// admit returns how long until n bytes have left the link, or false when
// the queue ahead of them is full.
func (l *link) admit(n int) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	start := now
	if l.busyUntil.After(now) {
		start = l.busyUntil
		if backlog := start.Sub(now).Seconds() * l.bytesPerSec; backlog+float64(n) > float64(l.queue) {
			return 0, false
		}
	}
	l.busyUntil = start.Add(time.Duration(float64(n) / l.bytesPerSec * float64(time.Second)))
	return l.busyUntil.Sub(now), true
}

// admitBlocking is admit for a stream, which waits instead of dropping.
func (l *link) admitBlocking(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	start := now
	if l.busyUntil.After(now) {
		start = l.busyUntil
	}
	l.busyUntil = start.Add(time.Duration(float64(n) / l.bytesPerSec * float64(time.Second)))
	return l.busyUntil.Sub(now)
}
