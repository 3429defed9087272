package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/sqlite"
	tunnelhub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// DataDir is the folder of the SQLite database (created if missing).
	DataDir string
	// Store, when set, is used instead of the SQLite store in DataDir; the
	// Server closes it.
	Store Store
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Web holds the web client's files (see package web), served at /;
	// nil serves a page that points to the command-line client.
	Web fs.FS
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Retention is how long an undelivered message is kept: 30 days.
	Retention time.Duration
	// SweepInterval is how often Serve deletes expired messages: 1 hour.
	SweepInterval time.Duration

	// Rate limits: registrations per client IP (default 1 per 10s, burst
	// 10), bundle fetches per device (default 1 per 100ms, burst 100) and
	// sends per device (default 1 per 2ms, burst 1000).
	RegisterRate, BundleRate, SendRate Rate

	// LiveQueue is how many live messages wait per connection before the
	// live copies are dropped (they stay in the mailbox): 256.
	LiveQueue int
	// AuthTimeout bounds the time from connect to a successful Register or
	// Login: 30s, and more for a large upload on a slow link (each byte
	// received adds the time it takes at 2 KiB/s).
	AuthTimeout time.Duration
	// WriteTimeout bounds each write, and the wait for a pong: 10s.
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged: 30s.
	PingInterval time.Duration

	// TLS, when set, makes Serve speak TLS on its listener (see package
	// tlsmux): HTTP/1.1, and with a Relay also TURN over TLS.
	TLS *tls.Config
	// Relay, when set, is the TURN relay that Serve runs and whose
	// credentials devices get over their session (see turn.go); nil runs
	// none. Close closes it.
	Relay *relay.Server
	// NoTunnel turns off the call tunnel (tier 2 of calls, package
	// server/tunnel), which is otherwise served at tunnel.Path.
	NoTunnel bool
	// WebTransport, when set (and the tunnel is on), serves the tunnel's
	// WebTransport carriers too: QUIC datagrams, for networks where UDP
	// gets through.
	WebTransport *WebTransport

	// verify checks an XEdDSA signature by a serialized public key (0x05 ||
	// 32 bytes); nil is signal's. Only tests that are not about
	// authentication replace it.
	verify func(pub, msg, sig []byte) bool
}

// WebTransport is where the call tunnel serves WebTransport.
type WebTransport struct {
	// Conn is the UDP socket; Serve does not close it.
	Conn net.PacketConn
	// TLS has the certificate: the operator's, or a self-signed one from
	// tunnel.CertSource (then Hashes is its Hashes method).
	TLS *tls.Config
	// URL is the endpoint as clients reach it, "https://host:port/v1/tunnel".
	URL string
	// Hashes, if set, returns the SHA-256 hashes of the self-signed
	// certificates served, which tickets carry.
	Hashes func() [][]byte
}

// Rate is a token-bucket limit: on average one event per Every, with bursts
// of up to Burst.
type Rate struct {
	Every time.Duration
	Burst int
}

func (r Rate) or(def Rate) Rate {
	if r.Every <= 0 {
		r.Every = def.Every
	}
	if r.Burst <= 0 {
		r.Burst = def.Burst
	}
	return r
}

func (r Rate) limit() rate.Limit { return rate.Every(r.Every) }

// Limits of a connection's delivery.
const (
	deliverWindow = 256 // Deliver requests in flight (unacknowledged) per connection
	mailboxPage   = 128 // messages read from the store at once
	outQueue      = 32  // responses and pushes waiting for the writer
	maxAuthTries  = 3   // failed Register/Login attempts before the connection is closed
	// slowLinkTimeout bounds a new connection's HTTP request head and its
	// authentication (Config.AuthTimeout): on a link that loses packets in
	// bursts, TCP's retransmission backoff alone can hold them up for over
	// 10 s, and a client cut off then starts over on the same link.
	slowLinkTimeout = 30 * time.Second
	// handoffWait bounds how long a new connection of a device waits for the
	// one it replaces to finish before reading the mailbox.
	handoffWait = time.Second
)

func signalVerify(pub, msg, sig []byte) bool {
	k, err := signal.DecodePublicKey(pub)
	if err != nil {
		return false
	}
	return k.VerifySignature(msg, sig)
}

// Server is parleyd. Create one with Open.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   Store
	verify  func(pub, msg, sig []byte) bool
	metrics *metrics
	mux     *http.ServeMux
	tunnel  *tunnelhub.Hub // nil with Config.NoTunnel

	registerLimit *limiters // by client IP
	bundleLimit   *limiters // by device address
	sendLimit     *limiters // by device address

	closing atomic.Bool // set when shutdown starts; new connections are refused

	mu       sync.Mutex
	sessions map[parley.Address]*conn // guarded by mu: authenticated connections
	conns    map[*conn]struct{}       // guarded by mu: every open connection
	wg       sync.WaitGroup           // open connections
	poller   poller                   // idle connections' sockets, while Serve runs

	closeOnce sync.Once
	closeErr  error
}

// Open opens the store (the SQLite database in cfg.DataDir unless cfg.Store
// is set) and returns a Server ready to serve.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Hour
	}
	cfg.RegisterRate = cfg.RegisterRate.or(Rate{10 * time.Second, 10})
	cfg.BundleRate = cfg.BundleRate.or(Rate{100 * time.Millisecond, 100})
	cfg.SendRate = cfg.SendRate.or(Rate{2 * time.Millisecond, 1000})
	if cfg.LiveQueue <= 0 {
		cfg.LiveQueue = 256
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = slowLinkTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.verify == nil {
		cfg.verify = signalVerify
	}
	var web *static
	if cfg.Web != nil {
		var err error
		if web, err = loadStatic(cfg.Web); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		if !web.has("parley.wasm") {
			cfg.Logger.Warn("the web client's parley.wasm is missing: build parleyd with make so that the web client works")
		}
	}
	st := cfg.Store
	if st == nil {
		if cfg.DataDir == "" {
			return nil, parley.Errorf(parley.KindInvalid, "server: no data folder")
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "parley.db"))
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		st = db
	}
	s := &Server{
		cfg:           cfg,
		log:           cfg.Logger,
		now:           cfg.Now,
		verify:        cfg.verify,
		registerLimit: newLimiters(cfg.RegisterRate),
		bundleLimit:   newLimiters(cfg.BundleRate),
		sendLimit:     newLimiters(cfg.SendRate),
		sessions:      make(map[parley.Address]*conn),
		conns:         make(map[*conn]struct{}),
	}
	if !cfg.NoTunnel {
		s.tunnel = tunnelhub.NewHub(tunnelhub.Config{Logger: cfg.Logger, Now: cfg.Now})
	}
	s.metrics = newMetrics(s)
	s.registerRelayMetrics()
	s.registerTunnelMetrics()
	s.metrics.registerWritten(st)
	s.store = newAccountCache(timedStore{st, s.metrics.storeSeconds})
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET "+wire.Path, s.serveWS)
	if s.tunnel != nil {
		s.mux.Handle("GET "+tunnel.Path, s.tunnel)
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	if web != nil {
		s.mux.Handle("GET /", web)
	} else {
		s.mux.HandleFunc("GET /{$}", s.serveIndex)
	}
	return s, nil
}

// Handler returns the server's HTTP handler: the WebSocket endpoint
// (wire.Path), the call tunnel (tunnel.Path), /metrics, /healthz and the web client (Config.Web) at /.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves HTTP on ln (HTTPS when Config.TLS is set), runs the TURN
// relay of Config.Relay, and deletes expired messages every
// Config.SweepInterval until ctx is done. It then shuts down gracefully:
// it stops accepting, closes every session with CloseGoingAway and waits
// for their goroutines, and returns nil. It does not close the store; call
// Close for that. A Server serves once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: slowLinkTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       tunnelhub.ConnContext,
	}
	g, gctx := errgroup.WithContext(ctx)
	ln = s.serveTLSAndRelay(gctx, g, ln)
	g.Go(func() error { return s.poller.run(gctx) })
	if wt := s.cfg.WebTransport; wt != nil && s.tunnel != nil {
		g.Go(func() error { return s.tunnel.ServeWebTransport(gctx, wt.Conn, wt.TLS) })
	}
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		t := time.NewTicker(s.cfg.SweepInterval)
		defer t.Stop()
		for {
			if _, err := s.Expire(gctx); err != nil && gctx.Err() == nil {
				s.log.Error("expire", "err", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closing.Store(true)
		err := hs.Shutdown(sctx) // stops accepting; hijacked WebSockets are ours to close
		s.closeSessions()
		return err
	})
	err := g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("shutdown timed out")
		return nil
	}
	return err
}

// closeSessions closes every connection with CloseGoingAway and waits for
// their goroutines.
func (s *Server) closeSessions() {
	s.closing.Store(true)
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		go c.goAway() // each waits up to 5s for the client's close frame
	}
	s.wg.Wait()
}

// Close closes every session and then the store. It waits for writes in
// flight to commit.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeSessions()
		if s.cfg.Relay != nil {
			s.cfg.Relay.Close()
		}
		s.closeErr = s.store.Close()
	})
	return s.closeErr
}

// Expire deletes the messages older than the retention period, as Serve
// does every SweepInterval, and returns how many it deleted.
func (s *Server) Expire(ctx context.Context) (int, error) {
	n, err := s.store.Expire(ctx, s.now().Add(-s.cfg.Retention))
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	s.limitersPrune()
	if n > 0 {
		s.log.Info("expired messages", "count", n)
	}
	return n, nil
}

func (s *Server) limitersPrune() {
	now := time.Now()
	s.registerLimit.prune(now)
	s.bundleLimit.prune(now)
	s.sendLimit.prune(now)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		http.Error(w, "shutting down", wire.HTTPStatus(parley.KindUnavailable))
		return
	}
	if _, err := s.store.CountMessages(r.Context()); err != nil {
		http.Error(w, "store unavailable", wire.HTTPStatus(parley.KindUnavailable))
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, indexPage)
}

const indexPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parley</title></head>
<body>
<h1>Parley</h1>
<p>This is a Parley server: end-to-end encrypted messaging. It stores and
forwards ciphertext only.</p>
<p>This server was started without the web client. Use the command-line
client: <code>parley register --server URL yourname</code>.</p>
</body></html>
`
