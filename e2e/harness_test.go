package e2e

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/cli"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/relay"
	tunnelhub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// parleyd is an in-process server that can be stopped and started again on
// the same address and data folder.
type parleyd struct {
	t    testing.TB
	dir  string
	addr string     // host:port, kept across restarts
	logs syncBuffer // everything the server logged, at debug level
	web  fs.FS      // the web client's files, if any
	turn bool       // run a TURN relay (on a new port at each start) that may relay to loopback
	// refuseRelay: the TURN relay relays to no address of this machine, so
	// that a relay-only call between two of its devices cannot connect.
	refuseRelay bool
	wt          bool // serve the call tunnel's WebTransport (on a new UDP port at each start)
	// wtFront, if set (with wt), puts something in front of the
	// WebTransport port, such as a UDP proxy, and returns the address
	// clients are told to reach instead.
	wtFront func(t testing.TB, server net.Addr) string

	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB) *parleyd {
	return startServerWeb(t, nil)
}

// startServerWeb starts a server that serves the web client files in web.
func startServerWeb(t testing.TB, web fs.FS) *parleyd {
	t.Helper()
	return launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: web})
}

// localPrefixes is loopback and this machine's own addresses: what a relay
// must allow for peers on this machine. (Chromium leaves loopback out of its
// ICE candidates, so a browser's peers are on the machine's interfaces.)
func localPrefixes(t testing.TB) []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("this machine's addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ip = ip.Unmap()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return out
}

// startServerTURN starts a server that serves web (if not nil) and runs a
// TURN relay on loopback that may relay to this machine's addresses, as
// "parleyd --turn-listen 127.0.0.1:0 --relay-allow 127.0.0.0/8
// --relay-allow <each local address>" would.
func startServerTURN(t testing.TB, web fs.FS) *parleyd {
	t.Helper()
	return launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: web, turn: true})
}

func launch(t testing.TB, p *parleyd) *parleyd {
	t.Helper()
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *parleyd) url() string { return "http://" + p.addr }

func (p *parleyd) start() {
	p.t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(&p.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := server.Config{DataDir: p.dir, Logger: log, Web: p.web}
	if p.turn {
		secret, err := relay.LoadSecret(p.dir)
		if err != nil {
			p.t.Fatal(err)
		}
		allow := localPrefixes(p.t)
		if p.refuseRelay {
			allow = nil
		}
		cfg.Relay, err = relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: secret, Logger: log, Allow: allow})
		if err != nil {
			p.t.Fatal(err)
		}
	}
	if p.wt {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			p.t.Fatal(err)
		}
		p.t.Cleanup(func() { pc.Close() })
		certs, err := tunnelhub.NewCertSource([]string{"127.0.0.1"}, nil)
		if err != nil {
			p.t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		if p.wtFront != nil {
			addr = p.wtFront(p.t, pc.LocalAddr())
		}
		cfg.WebTransport = &server.WebTransport{Conn: pc, TLS: certs.TLSConfig(), Hashes: certs.Hashes,
			URL: "https://" + addr + tunnel.Path}
	}
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		p.t.Fatalf("server.Open: %v", err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the port of a restarted server may take a moment to free
		ln, err = net.Listen("tcp", p.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		srv.Close()
		p.t.Fatalf("listen: %v", err)
	}
	p.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(ctx)
	p.srv, p.cancel, p.done = srv, cancel, make(chan error, 1)
	go func() { p.done <- srv.Serve(sctx, ln) }()
}

func (p *parleyd) stop() {
	if p.srv == nil {
		return
	}
	p.cancel()
	if err := <-p.done; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
		p.t.Errorf("Serve: %v", err)
	}
	if err := p.srv.Close(); err != nil {
		p.t.Errorf("server Close: %v", err)
	}
	p.srv = nil
}

func (p *parleyd) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

// user is one client folder.
type user struct {
	t    *testing.T
	name string
	home string
}

func newUser(t *testing.T, name string) *user {
	return &user{t: t, name: name, home: t.TempDir()}
}

// run runs the parley command and returns its exit code and output.
func (u *user) run(stdin string, args ...string) (code int, stdout, stderr string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = cli.Run(ctx, append([]string{"--home", u.home}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// must runs the parley command and fails the test unless it succeeds.
func (u *user) must(args ...string) string {
	u.t.Helper()
	code, out, errOut := u.run("", args...)
	if code != 0 {
		u.t.Fatalf("%s: parley %s: exit %d\nstdout: %s\nstderr: %s", u.name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func register(t *testing.T, serverURL, name string) *user {
	t.Helper()
	u := newUser(t, name)
	u.must("register", "--server", serverURL, name)
	return u
}

// proxy sits between clients and a server, passing WebSocket messages
// through and, on request, losing some of them.
type proxy struct {
	target string // the server's base URL
	hs     *httptest.Server

	dropDeliverAcks atomic.Int32 // lose this many client acks of Deliver requests
	dropSendResults atomic.Int32 // lose this many server answers to Send
	cutRegisters    atomic.Int32 // end this many connections at their Register, as the server's auth deadline does
	delivers        atomic.Int32 // Deliver requests seen
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target}
	p.hs = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.hs.Close)
	return p
}

func (p *proxy) url() string { return p.hs.URL }

func (p *proxy) serve(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	u, _ := client.WebSocketURL(p.target)
	s, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return
	}
	defer s.CloseNow()
	c.SetReadLimit(1 << 21)
	s.SetReadLimit(1 << 21)
	go func() {
		defer cancel()
		p.pump(ctx, s, c, func(f *wire.Frame) bool {
			if f.Type == wire.TypeRequest && f.Op == wire.OpDeliver {
				p.delivers.Add(1)
			}
			return f.Type == wire.TypeResponse && f.Op == wire.OpSend && f.Err == nil && take(&p.dropSendResults)
		})
	}()
	p.pump(ctx, c, s, func(f *wire.Frame) bool {
		if f.Type == wire.TypeRequest && f.Op == wire.OpRegister && take(&p.cutRegisters) {
			go c.Close(websocket.StatusCode(wire.CloseCode(parley.KindUnavailable)), "authentication timed out")
			return true
		}
		return f.Type == wire.TypeResponse && f.Op == wire.OpDeliver && take(&p.dropDeliverAcks)
	})
	s.Close(websocket.StatusNormalClosure, "") // let the server read what was passed on
}

func take(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// pump copies messages from src to dst until either fails, leaving out
// those that drop selects.
func (p *proxy) pump(ctx context.Context, src, dst *websocket.Conn, drop func(*wire.Frame) bool) {
	for {
		typ, b, err := src.Read(ctx)
		if err != nil {
			return
		}
		if f, err := wire.DecodeFrame(b); err == nil && drop(f) {
			continue
		}
		if err := dst.Write(ctx, typ, b); err != nil {
			return
		}
	}
}
