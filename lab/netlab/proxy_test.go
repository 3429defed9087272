package netlab_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/lab/netlab"
)

// The in-process stand-in runs anywhere, root or not.

// echoTarget is a UDP and TCP target on one loopback port: it records the
// UDP probes it gets and echoes them; each TCP connection gets tcpBytes.
type echoTarget struct {
	addr     netip.AddrPort
	arrivals chan arrival
}

func startTarget(t *testing.T, tcpBytes int) *echoTarget {
	t.Helper()
	tl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tl.Addr().(*net.TCPAddr).Port})
	if err != nil {
		tl.Close()
		t.Skipf("loopback port pair busy: %v", err)
	}
	_ = ul.SetReadBuffer(4 << 20)
	t.Cleanup(func() { tl.Close(); ul.Close() })
	e := &echoTarget{addr: tl.Addr().(*net.TCPAddr).AddrPort(), arrivals: make(chan arrival, 10000)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := ul.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 16 {
				sent := int64(binary.BigEndian.Uint64(buf[n-8:]))
				e.arrivals <- arrival{Seq: binary.BigEndian.Uint64(buf[n-16:]), Delay: time.Now().UnixNano() - sent, Size: n}
			}
			_, _ = ul.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write(make([]byte, tcpBytes))
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return e
}

func startProxy(t *testing.T, profile string, target netip.AddrPort) *netlab.Proxy {
	t.Helper()
	p, err := netlab.ListenProxy(profile, target, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return p
}

// sendThrough sends n probes of kind through the proxy and returns what the
// target got and what came back to the sender (both ways through it).
func sendThrough(t *testing.T, p *netlab.Proxy, e *echoTarget, n int, interval time.Duration, size int, kind string) (atTarget, back sinkResult) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(4 << 20)
	got := make(chan sinkResult)
	go func() {
		var r sinkResult
		buf := make([]byte, 65536)
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			k, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
					break
				}
				continue
			}
			r.Arrivals = append(r.Arrivals, arrival{Seq: binary.BigEndian.Uint64(buf[k-16:]), Size: k})
		}
		got <- r
	}()
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if _, err := c.Write(probePacket(kind, size, uint64(i))); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatal(err)
		}
	}
	back = <-got // after a second without an echo: all has arrived
	for len(e.arrivals) > 0 {
		atTarget.Arrivals = append(atTarget.Arrivals, <-e.arrivals)
	}
	return atTarget, back
}

func TestProxyLoss10(t *testing.T) {
	t.Parallel()
	e := startTarget(t, 0)
	p := startProxy(t, "loss-10", e.addr)
	at, back := sendThrough(t, p, e, 2000, 500*time.Microsecond, 64, "plain")
	up := analyze(2000, at)
	// Down: of what reached the target and was echoed, how much came back.
	down := 1 - float64(len(back.Arrivals))/float64(len(at.Arrivals))
	t.Logf("proxy loss-10: up %v; down loss %.1f%%", up, 100*down)
	if up.loss < 0.08 || up.loss > 0.12 || down < 0.08 || down > 0.12 {
		t.Errorf("proxy loss-10: up %.1f%%, down %.1f%%, want 8–12%% each", 100*up.loss, 100*down)
	}
}

func TestProxyUDPBlockedAndSTUNDPI(t *testing.T) {
	t.Parallel()
	e := startTarget(t, 50000)
	blocked := startProxy(t, "udp-blocked", e.addr)
	at, _ := sendThrough(t, blocked, e, 100, 0, 64, "plain")
	if len(at.Arrivals) != 0 {
		t.Errorf("proxy udp-blocked passed %d of 100 datagrams", len(at.Arrivals))
	}
	c, err := net.Dial("tcp4", blocked.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	n, err := io.Copy(io.Discard, c)
	c.Close()
	if n != 50000 || err != nil {
		t.Errorf("proxy udp-blocked: TCP got %d of 50000 bytes (%v)", n, err)
	}

	dpi := startProxy(t, "stun-dpi", e.addr)
	for _, kind := range []string{"stun", "dtls12", "dtls10"} {
		if at, _ := sendThrough(t, dpi, e, 10, 0, 100, kind); len(at.Arrivals) != 0 {
			t.Errorf("proxy stun-dpi passed %d of 10 %s datagrams", len(at.Arrivals), kind)
		}
	}
	if at, _ := sendThrough(t, dpi, e, 20, time.Millisecond, 100, "plain"); len(at.Arrivals) != 20 {
		t.Errorf("proxy stun-dpi passed %d of 20 small plain datagrams, want all", len(at.Arrivals))
	}
	// 100 × 500 bytes at once: the 8 KB bucket lets ~15 through.
	if at, _ := sendThrough(t, dpi, e, 100, 0, 500, "plain"); len(at.Arrivals) < 10 || len(at.Arrivals) > 20 {
		t.Errorf("proxy stun-dpi passed %d of a 100-datagram flood, want ~15 (throttled)", len(at.Arrivals))
	}
}

func TestProxyTCPFreeze16k(t *testing.T) {
	t.Parallel()
	e := startTarget(t, 200000)
	p := startProxy(t, "tcp-freeze-16k", e.addr)
	c, err := net.Dial("tcp4", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	total := 0
	buf := make([]byte, 65536)
	var rerr error
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		total += n
		if err != nil {
			rerr = err
			break
		}
	}
	var ne net.Error
	if total != 16000 || !errors.As(rerr, &ne) || !ne.Timeout() {
		t.Errorf("proxy tcp-freeze-16k: read %d bytes then %v, want a stall at 16000", total, rerr)
	}
}

func TestProxyJitterAndRate(t *testing.T) {
	t.Parallel()
	e := startTarget(t, 0)
	jit := startProxy(t, "jitter-150", e.addr)
	at, _ := sendThrough(t, jit, e, 500, time.Millisecond, 64, "plain")
	s := analyze(500, at)
	t.Logf("proxy jitter-150: %v", s)
	if s.median < 50*time.Millisecond || s.median > 75*time.Millisecond || s.reordered < 50 {
		t.Errorf("proxy jitter-150: median %v, %d reordered; want ~60 ms and many", s.median, s.reordered)
	}

	rate := startProxy(t, "rate-32k", e.addr)
	at, _ = sendThrough(t, rate, e, 80, 12500*time.Microsecond, 500, "plain")
	var bytes int
	for _, a := range at.Arrivals[1:] {
		bytes += a.Size
	}
	// Probe k arrives at start + k×interval + its delay.
	first, last := at.Arrivals[0], at.Arrivals[len(at.Arrivals)-1]
	span := time.Duration(last.Delay-first.Delay) + time.Duration(last.Seq-first.Seq)*12500*time.Microsecond
	kbit := float64(bytes) * 8 / span.Seconds() / 1000
	t.Logf("proxy rate-32k: %d of 80 datagrams, %.1f kbit/s of payload", len(at.Arrivals), kbit)
	if kbit < 24 || kbit > 34 {
		t.Errorf("proxy rate-32k: %.1f kbit/s of payload, want ~29.5", kbit)
	}
}
