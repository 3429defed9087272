// Command parleyd is the Parley server: accounts, the prekey directory, the
// durable mailbox and live sessions for end-to-end encrypted messaging. It
// stores and forwards ciphertext only.
//
// Usage:
//
//	parleyd [--listen 127.0.0.1:8080] [--data ./parley-data] [--log-level info]
//
// The first line parleyd prints on stdout is the URL it serves; logs go to
// stderr. SIGINT or SIGTERM shuts it down gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/parleychat/parley/server"
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

	srv, err := server.Open(ctx, server.Config{DataDir: *data, Logger: log, Web: web.Dist(),
		RegisterRate: server.Rate{Every: *regEvery, Burst: *regBurst}})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, serveURL(ln.Addr()))
	log.Info("serving", "addr", ln.Addr().String(), "data", *data)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	if err := srv.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// serveURL is the URL a local client uses to reach addr.
func serveURL(addr net.Addr) string {
	host, port := "127.0.0.1", ""
	if a, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
