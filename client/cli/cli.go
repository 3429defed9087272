package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientstore"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed; stderr says why
	exitUsage = 2 // the command line is wrong
)

// env is what one invocation works with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	home           string
	verbose        bool
	caFile         string      // --ca, else $PARLEY_CA: extra roots for TLS
	tls            *tls.Config // built from caFile by open; nil: the system's roots
}

type command struct {
	name  string
	args  string // synopsis of the arguments
	short string
	long  string
	flags func(fs *flag.FlagSet) // adds the command's own flags
	run   func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error
}

var commands []*command

func init() {
	commands = []*command{cmdRegister, cmdSend, cmdRecv, cmdChat, cmdCall, cmdAnswer, cmdHistory, cmdPaths, cmdSafetyNumber, cmdWhoami, cmdHelp}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake on the command line: exit code 2 and a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Run runs the parley command with args (without the program name) and
// returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	global := flag.NewFlagSet("parley", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	addGlobalFlags(global, e)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "parley: %v\n", err)
		fmt.Fprintln(stderr, "Run 'parley help' for usage.")
		return exitUsage
	}
	args = global.Args()
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	cmd := lookup(args[0])
	if cmd == nil {
		fmt.Fprintf(stderr, "parley: unknown command %q\nRun 'parley help' for the list of commands.\n", args[0])
		return exitUsage
	}
	fs := flag.NewFlagSet("parley "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addGlobalFlags(fs, e)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printCommandHelp(stdout, cmd)
		return exitOK
	}
	if err == nil {
		if e.home == "" {
			e.home, err = defaultHome()
		}
		if e.caFile == "" {
			e.caFile = os.Getenv("PARLEY_CA")
		}
	}
	if err == nil {
		err = cmd.run(ctx, e, fs, pos)
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "invalid value"):
		fmt.Fprintf(stderr, "parley %s: %v\nusage: parley %s %s\nRun 'parley help %s' for details.\n", cmd.name, err, cmd.name, cmd.args, cmd.name)
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return exitError
	default:
		fmt.Fprintf(stderr, "parley %s: %s\n", cmd.name, explain(err))
		return exitError
	}
}

func addGlobalFlags(fs *flag.FlagSet, e *env) {
	fs.StringVar(&e.home, "home", e.home, "the client's folder (default $PARLEY_HOME, else ~/.parley)")
	fs.BoolVar(&e.verbose, "v", e.verbose, "log what the client does to stderr")
	fs.StringVar(&e.caFile, "ca", e.caFile, "also trust the certificates in this PEM `file` for https:// servers and TURN over TLS (default $PARLEY_CA)")
}

// tlsConfig returns the TLS configuration of connections to the server
// (its WebSocket, and TURN over TLS in calls): the system's roots plus the
// certificates of e.caFile. It is nil without a file, which leaves each
// library to its default: the system's roots, verified as usual.
func (e *env) tlsConfig() (*tls.Config, error) {
	if e.caFile == "" || e.tls != nil {
		return e.tls, nil
	}
	pem, err := os.ReadFile(e.caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil { // no system roots here: only the file's
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca: no PEM certificate in %s", e.caFile)
	}
	e.tls = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return e.tls, nil
}

// dialer returns how the client reaches the server: nil (the client's
// default) unless e.tlsConfig says otherwise.
func (e *env) dialer() (client.Dialer, error) {
	cfg, err := e.tlsConfig()
	if cfg == nil || err != nil {
		return nil, err
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg}
	return client.WebSocketDialer{Options: &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}}, nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments; everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func defaultHome() (string, error) {
	if h := os.Getenv("PARLEY_HOME"); h != "" {
		return h, nil
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home folder: give --home or set PARLEY_HOME (%v)", err)
	}
	return filepath.Join(dir, ".parley"), nil
}

// open opens the client in e.home; the folder is created unless mustExist.
func (e *env) open(ctx context.Context, mustExist bool) (*client.Client, func(), error) {
	db := filepath.Join(e.home, "parley.db")
	if mustExist {
		if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
			return nil, nil, notRegistered(e.home)
		}
	}
	dialer, err := e.dialer()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cannot create the folder %s: %w", e.home, err)
	}
	st, err := clientstore.Open(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	level := slog.LevelWarn
	if e.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	c, err := client.New(ctx, client.Config{Store: st, Dialer: dialer, Logger: log})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return c, func() { st.Close() }, nil
}

// openWithPeer checks that args is one username and opens the registered
// client, for the commands that talk about one peer.
func (e *env) openWithPeer(ctx context.Context, args []string) (*client.Client, parley.UserID, func(), error) {
	if len(args) != 1 {
		return nil, "", nil, usagef("want one USER")
	}
	peer, err := parley.ParseUserID(args[0])
	if err != nil {
		return nil, "", nil, err
	}
	c, done, err := e.openRegistered(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return c, peer, done, nil
}

// openRegistered opens the client and checks that it is registered.
func (e *env) openRegistered(ctx context.Context) (*client.Client, func(), error) {
	c, done, err := e.open(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	if _, _, _, err := c.Whoami(); err != nil {
		done()
		return nil, nil, notRegistered(e.home)
	}
	return c, done, nil
}

func notRegistered(home string) error {
	return &parley.Error{Kind: parley.KindNotFound, Message: fmt.Sprintf("no account in %s yet: run 'parley register --server URL NAME' first (or give --home)", home)}
}

// explain turns an error into a sentence for the user.
func explain(err error) string {
	var pe *parley.Error
	if !errors.As(err, &pe) {
		return err.Error()
	}
	msg := err.Error()
	switch pe.Kind {
	case parley.KindUnauthorized:
		return "the server did not accept this device (" + msg + "); was the account removed or the server reset?"
	case parley.KindRateLimited:
		return "the server asks us to slow down (" + msg + "); try again in a minute"
	case parley.KindUnsupported:
		return "this client and the server do not understand each other (" + msg + "); is one of them out of date?"
	case parley.KindInternal:
		return "the server failed (" + msg + "); try again later"
	case parley.KindTooLarge:
		return "too large: " + msg
	}
	return msg
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `parley is the command-line client of Parley, end-to-end encrypted messaging.

Usage:
  parley [--home DIR] [--ca FILE] COMMAND [ARGUMENTS]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, `
Every command keeps its state in one folder: --home DIR, else $PARLEY_HOME,
else ~/.parley. Use one folder per account. --ca FILE (or $PARLEY_CA) trusts
the certificates in a PEM file besides the system's, for a server with a
self-signed certificate.

Start with:
  parley register --server http://127.0.0.1:8080 alice
  parley send bob "hello"
  parley recv --wait 5s

Run 'parley help COMMAND' for more about a command. The exit status is 0 on
success, 1 when a command fails (stderr says why) and 2 for a wrong command line.
`)
}

func printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "usage: parley %s %s\n\n%s\n", c.name, c.args, strings.TrimSpace(c.long))
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var e env
	addGlobalFlags(fs, &e)
	if c.flags != nil {
		c.flags(fs)
	}
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

var cmdHelp = &command{
	name:  "help",
	args:  "[COMMAND]",
	short: "explain parley or one of its commands",
	long:  "Help prints the list of commands, or what one command does and its flags.",
	run: func(_ context.Context, e *env, _ *flag.FlagSet, args []string) error {
		switch len(args) {
		case 0:
			printUsage(e.stdout)
			return nil
		case 1:
			c := lookup(args[0])
			if c == nil {
				return usagef("unknown command %q; the commands are %s", args[0], strings.Join(names(), ", "))
			}
			printCommandHelp(e.stdout, c)
			return nil
		}
		return usagef("too many arguments")
	},
}

func names() []string {
	var n []string
	for _, c := range commands {
		n = append(n, c.name)
	}
	slices.Sort(n)
	return n
}
