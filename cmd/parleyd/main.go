// Command parleyd is the Parley server: accounts, the prekey directory, the
// durable mailbox and live sessions for end-to-end encrypted messaging. It
// stores and forwards ciphertext only.
//
// Usage:
//
//	parleyd [--listen 127.0.0.1:8080] [--data ./parley-data] [--log-level info]
//	        [--tls-cert FILE --tls-key FILE | --tls-self-signed]
//	        [--turn-listen 127.0.0.1:3478|off] [--relay-ip IP] [--relay-host NAME]
//	        [--relay-allow CIDR]...
//
// The first line parleyd prints on stdout is the URL it serves; logs go to
// stderr. SIGINT or SIGTERM shuts it down gracefully.
package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/tlsmux"
	tunnelhub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		os.Exit(1)
	}
}

const usage = `parleyd is the Parley server: end-to-end encrypted messaging that you host.

It keeps accounts and devices, the directory of prekeys that lets clients
start Signal-protocol sessions, and a durable mailbox that holds each
encrypted message until the recipient's device acknowledges it (or the
retention period, 30 days, ends). Clients connect over one WebSocket
(GET /v1/ws). The server only ever sees ciphertext and public keys.

It also serves /metrics (Prometheus), /healthz and a page at /.
The first line on stdout is the URL it serves; logs go to stderr.
SIGINT or SIGTERM shuts it down gracefully.

Calls: parleyd runs a TURN relay for WebRTC calls, on UDP and TCP
(--turn-listen, 127.0.0.1:3478 by default; "off" turns it off). With TLS
(--tls-cert and --tls-key, or --tls-self-signed for development) the
HTTPS port also takes TURN over TLS, told apart by ALPN ("stun.turn") or
its first bytes. Devices get short-lived credentials (--turn-ttl) over
their session; the secret behind them is the file turn-secret in the data
folder. The relay refuses to relay to loopback, private, link-local and
other special addresses unless --relay-allow lets it.

When WebRTC cannot get through (UDP blocked, STUN or DTLS filtered), a
call's media goes through the call tunnel instead: end-to-end encrypted
frames that parleyd forwards between the two devices' WebSocket
connections at /v1/tunnel, or their WebTransport sessions (QUIC datagrams,
on --webtransport-listen: the HTTP port's number over UDP by default, with
a self-signed certificate that clients check by its hash unless --tls-cert
gives one). --no-tunnel turns it off. parleyd never holds the media keys.

Usage: parleyd [flags]

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultData := "./parley-data"
	if d := getenv("PARLEY_DATA"); d != "" {
		defaultData = d
	}
	listen := fs.String("listen", "127.0.0.1:8080", "`address` to serve HTTP on; \":0\" or \"127.0.0.1:0\" picks a free port")
	data := fs.String("data", defaultData, "`folder` for the database; $PARLEY_DATA sets the default")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	regEvery := fs.Duration("register-every", 10*time.Second, "registrations per client IP: on average one per this `interval`")
	regBurst := fs.Int("register-burst", 10, "registrations per client IP allowed at once before --register-every applies")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with the certificate (chain) in this PEM `file`; needs --tls-key")
	tlsKey := fs.String("tls-key", "", "the private key of --tls-cert, a PEM `file`")
	selfSigned := fs.Bool("tls-self-signed", false, "serve HTTPS with a new self-signed certificate for the --listen host (development and tests); its SHA-256 fingerprint goes to stderr, the certificate to DATA/tls-self-signed.pem (for parley --ca)")
	turnListen := fs.String("turn-listen", relay.DefaultListen, "`address` of the TURN relay, UDP and TCP; \"off\" turns the relay off. When --listen picks a free port and this flag is not given, the relay picks one too")
	relayIP := fs.String("relay-ip", "", "the relay's public `IP`, put in relayed addresses (default: the IP of --turn-listen; required when that IP is unspecified)")
	relayHost := fs.String("relay-host", "", "`name` or IP clients reach the relay at, in TURN URLs (default: the first DNS name of --tls-cert, else --relay-ip)")
	noTunnel := fs.Bool("no-tunnel", false, "turn off the call tunnel (calls' media through the server's own connections, for networks that block WebRTC)")
	wtListen := fs.String("webtransport-listen", "same", "UDP `address` of the call tunnel's WebTransport (QUIC) endpoint; \"same\" is --listen's address over UDP, \"off\" turns it off")
	wtHost := fs.String("webtransport-host", "", "`name` or IP clients reach WebTransport at (default: the first DNS name of --tls-cert, else the host of --listen)")
	turnTTL := fs.Duration("turn-ttl", relay.DefaultCredentialTTL, "how long a TURN credential works; it bounds the length of a relayed call")
	var allow []netip.Prefix
	fs.Func("relay-allow", "let the relay reach this `CIDR` even if it is loopback, private or link-local (repeatable; tests on loopback pass 127.0.0.0/8)", func(v string) error {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return err
		}
		allow = append(allow, p.Masked())
		return nil
	})
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	cfg := server.Config{DataDir: *data, Logger: log, Web: web.Dist(), NoTunnel: *noTunnel,
		RegisterRate: server.Rate{Every: *regEvery, Burst: *regBurst}}
	var certNames []string
	switch {
	case *selfSigned && (*tlsCert != "" || *tlsKey != ""):
		return errors.New("--tls-self-signed and --tls-cert/--tls-key exclude each other")
	case *tlsCert != "" || *tlsKey != "":
		if *tlsCert == "" || *tlsKey == "" {
			return errors.New("--tls-cert and --tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert: %w", err)
		}
		certNames = cert.Leaf.DNSNames
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	case *selfSigned:
		cert, fp, err := tlsmux.SelfSigned(certHosts(*listen, *relayHost)...)
		if err != nil {
			return err
		}
		// The certificate goes to the data folder, for clients to trust
		// (parley --ca FILE); a new one is made at each start.
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return err
		}
		pemFile := filepath.Join(*data, selfSignedFile)
		if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o644); err != nil {
			return fmt.Errorf("writing the self-signed certificate: %w", err)
		}
		fmt.Fprintf(stderr, "parleyd: self-signed certificate, SHA-256 fingerprint %s; clients trust it with: parley --ca %s\n", fp, pemFile)
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}

	if *turnListen != "off" && *turnListen != "" {
		addr := *turnListen
		if !given["turn-listen"] {
			if _, port, err := net.SplitHostPort(*listen); err == nil && port == "0" {
				host, _, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort(host, "0")
			}
		}
		rcfg := relay.Config{Listen: addr, Host: *relayHost, CredentialTTL: *turnTTL, Allow: allow, Logger: log}
		if *relayIP != "" {
			if rcfg.RelayIP = net.ParseIP(*relayIP); rcfg.RelayIP == nil {
				return fmt.Errorf("--relay-ip %q is no IP address", *relayIP)
			}
		}
		if rcfg.Host == "" && len(certNames) > 0 {
			rcfg.Host = certNames[0]
		}
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return err
		}
		var err error
		if rcfg.Secret, err = relay.LoadSecret(*data); err != nil {
			return err
		}
		if cfg.Relay, err = relay.Listen(rcfg); err != nil {
			return err
		}
		defer cfg.Relay.Close()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if !*noTunnel && *wtListen != "off" && *wtListen != "" {
		wt, err := webTransport(*wtListen, *wtHost, ln.Addr(), certNames, cfg.TLS, *tlsCert != "")
		if err != nil {
			ln.Close()
			return err
		}
		defer wt.Conn.Close()
		cfg.WebTransport = wt
	}
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer srv.Close()
	fmt.Fprintln(stdout, serveURL(ln.Addr(), cfg.TLS != nil))
	log.Info("serving", "addr", ln.Addr().String(), "data", *data, "tls", cfg.TLS != nil)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	if err := srv.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// webTransport opens the call tunnel's WebTransport endpoint: on addr
// ("same": the HTTP listener's address, over UDP), with the operator's
// certificate when there is one, else with self-signed certificates that
// browsers accept by their hashes.
func webTransport(addr, host string, httpAddr net.Addr, certNames []string, operator *tls.Config, haveCert bool) (*server.WebTransport, error) {
	if addr == "same" {
		addr = httpAddr.String()
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("--webtransport-listen: %w", err)
	}
	if host == "" {
		if len(certNames) > 0 {
			host = certNames[0]
		} else {
			host, _, _ = net.SplitHostPort(addr)
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				host = "localhost"
			}
		}
	}
	_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	wt := &server.WebTransport{Conn: pc, URL: "https://" + net.JoinHostPort(host, port) + tunnel.Path}
	if haveCert {
		wt.TLS = operator.Clone()
		return wt, nil
	}
	certs, err := tunnelhub.NewCertSource([]string{host}, nil)
	if err != nil {
		pc.Close()
		return nil, err
	}
	wt.TLS, wt.Hashes = certs.TLSConfig(), certs.Hashes
	return wt, nil
}

// selfSignedFile is where --tls-self-signed writes its certificate (PEM) in
// the data folder.
const selfSignedFile = "tls-self-signed.pem"

// certHosts are the names a self-signed certificate is for: the host of
// the listen address (localhost and the loopback addresses when it is
// unspecified), and the relay's host name.
func certHosts(listen, relayHost string) []string {
	host, _, _ := net.SplitHostPort(listen)
	var hosts []string
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	} else {
		hosts = []string{host}
	}
	if relayHost != "" {
		hosts = append(hosts, relayHost)
	}
	return hosts
}

// serveURL is the URL a local client uses to reach addr.
func serveURL(addr net.Addr, tls bool) string {
	host, port := "127.0.0.1", ""
	if a, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/"
}
