package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// network is where one profile runs: the lab's namespaces, or the host.
type network interface {
	// Kind is "netns" or "host" (Result.Network).
	Kind() string
	// ServerIP and ClientIP are the addresses of the server and of client
	// i (0 is alice, 1 is bob).
	ServerIP() string
	ClientIP(i int) string
	// Command runs a program on the server (client < 0) or on client i.
	Command(client int, name string, args ...string) *exec.Cmd
	// SetProfile turns a censor profile on (the network starts clean).
	SetProfile(ctx context.Context, name string) error
	Close() error
}

// server is a parleyd running for one profile.
type server struct {
	url, ca string
	cmd     *exec.Cmd
	done    chan error
	log     *lockedBuffer
}

// runProfile measures one run of one profile, in dir: the CLI tier, and
// the browser tier if there is a browser.
func runProfile(ctx context.Context, cfg Config, profile, dir string, sp *speech) ([]Result, error) {
	res := Result{Profile: profile, Tier: tierWebRTC, Runs: 1}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	net, err := openNetwork(ctx, profile, 2, cfg.Progress)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	res.Network = net.Kind()
	srv, err := startServer(ctx, cfg, net, dir)
	if err != nil {
		return nil, err
	}
	defer func() { os.WriteFile(filepath.Join(dir, "parleyd.log"), []byte(srv.log.String()), 0o644) }()
	defer srv.stop()
	users := []*user{
		{name: "alice", client: 0, home: filepath.Join(dir, "alice"), cfg: cfg, net: net, srv: srv},
		{name: "bob", client: 1, home: filepath.Join(dir, "bob"), cfg: cfg, net: net, srv: srv},
	}
	// The users register on the clean network: what is measured is
	// calling and messaging under the profile. Registering under it is
	// measured apart, by a third user (Result.RegisterMs).
	for _, u := range users {
		if err := u.register(ctx); err != nil {
			return nil, fmt.Errorf("registering %s: %w\nserver log:\n%s", u.name, err, srv.log.String())
		}
	}
	var browsers []*browserRun
	for _, tier := range cfg.tiers() {
		if tier != tierBrowser && tier != tierTunnelBrowser {
			continue
		}
		br, err := startBrowsers(ctx, cfg, net, srv, filepath.Join(dir, tier), tier, sp, profile)
		if err != nil {
			return nil, fmt.Errorf("browsers: %w", err)
		}
		defer br.stop()
		browsers = append(browsers, br)
	}
	if err := net.SetProfile(ctx, profile); err != nil {
		return nil, err
	}
	m, err := measureMessages(ctx, cfg, users[0], users[1])
	if err != nil {
		return nil, fmt.Errorf("messaging: %w", err)
	}
	res.MessageDeliveryMs, res.MessageDeliveryP95Ms = ms(m.median), ms(m.p95)
	res.MessagesLost, res.MessagesDuplicated = m.lost, m.duplicated
	tun := res // the same messaging figures
	if err := measureCall(ctx, cfg, users[0], users[1], dir, sp, &res, "--path", "webrtc"); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	out := []Result{res}
	if !cfg.NoTunnel {
		tun.Tier = tierTunnel
		tcfg := cfg
		tcfg.CallDuration = cfg.callDuration(profile, tierTunnel)
		if err := measureCall(ctx, tcfg, users[0], users[1], filepath.Join(dir, "tunnel"), sp, &tun, tunnelFlags(profile)...); err != nil {
			return nil, fmt.Errorf("tunnel call: %w", err)
		}
		out = append(out, tun)
	}
	for _, br := range browsers {
		web, err := br.call(ctx, cfg)
		if err != nil {
			// The browsers' trouble is their tier's failed run; the other
			// tiers' figures of this run stand.
			fmt.Fprintf(cfg.Progress, "lab: %s: %s call: %v\n", profile, br.tier, err)
			web = Result{Tier: br.tier, Runs: 1, Error: "browser call: " + firstLine(err.Error())}
		}
		web.Profile, web.Network = profile, net.Kind()
		// Messaging is the same client library in both tiers: measured once.
		web.MessageDeliveryMs, web.MessageDeliveryP95Ms = res.MessageDeliveryMs, res.MessageDeliveryP95Ms
		web.MessagesLost, web.MessagesDuplicated = res.MessagesLost, res.MessagesDuplicated
		out = append(out, web)
	}
	// Last, so that an upload still draining from a registration that
	// failed on a slow link (the kernel sends what a closed socket left)
	// cannot take the link from what is measured before.
	carol := &user{name: "carol", client: 0, home: filepath.Join(dir, "carol"), cfg: cfg, net: net, srv: srv}
	start := time.Now()
	if err := carol.registerOnce(ctx, cfg.RegisterTimeout); err != nil {
		for i := range out {
			out[i].RegisterError = err.Error()
		}
	} else {
		for i := range out {
			out[i].RegisterMs = ms(time.Since(start))
		}
	}
	return out, nil
}

// tunnelFlags are parley call's flags for the tunnel tier. Under
// tcp-freeze-16k UDP is open, and the tunnel would take WebTransport and
// never meet the freeze; it is made to use its WebSocket there, whose
// flows the profile freezes.
func tunnelFlags(profile string) []string {
	if c := tunnelCarrier(profile); c != "" {
		return []string{"--path", "tunnel", "--carrier", c}
	}
	return []string{"--path", "tunnel"}
}

// tunnelCarrier is the one carrier the tunnel tiers use under profile, or
// "" for any.
func tunnelCarrier(profile string) string {
	if profile == "tcp-freeze-16k" {
		return "websocket"
	}
	return ""
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startServer starts parleyd on the server: HTTPS with a self-signed
// certificate on port 443 (TURN over TLS too), the TURN relay on 3478,
// relaying between the clients' addresses.
func startServer(ctx context.Context, cfg Config, net network, dir string) (*server, error) {
	data := filepath.Join(dir, "server")
	ip := net.ServerIP()
	port, turnPort := "443", "3478"
	if net.Kind() == "host" {
		port, turnPort = "0", "0" // free ports on the host's loopback
	}
	args := []string{"--listen", ip + ":" + port, "--data", data, "--tls-self-signed",
		"--turn-listen", ip + ":" + turnPort, "--relay-ip", ip}
	// The clients' own addresses, and the server's: two relayed
	// candidates talk through the relay's own address.
	for i := range 2 {
		args = append(args, "--relay-allow", net.ClientIP(i)+"/32")
	}
	args = append(args, "--relay-allow", ip+"/32")
	cmd := net.Command(-1, filepath.Join(cfg.Bin, "parleyd"), args...)
	s := &server{cmd: cmd, done: make(chan error, 1), log: &lockedBuffer{}, ca: filepath.Join(data, "tls-self-signed.pem")}
	cmd.Stderr = s.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting parleyd: %w", err)
	}
	go func() { s.done <- cmd.Wait() }()
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
	}()
	select {
	case s.url = <-first:
	case <-time.After(20 * time.Second):
		s.stop()
		return nil, fmt.Errorf("parleyd printed no URL in 20 s:\n%s", s.log.String())
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if !strings.HasPrefix(s.url, "https://") {
		s.stop()
		return nil, fmt.Errorf("parleyd printed %q, want its https URL:\n%s", s.url, s.log.String())
	}
	return s, nil
}

func (s *server) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
}

// user is one registered parley home on one client.
type user struct {
	name   string
	client int
	home   string
	cfg    Config
	net    network
	srv    *server
}

// command returns `parley --home HOME --ca CA args...` on the user's client.
func (u *user) command(args ...string) *exec.Cmd {
	return u.net.Command(u.client, filepath.Join(u.cfg.Bin, "parley"), append([]string{"--home", u.home, "--ca", u.srv.ca}, args...)...)
}

func (u *user) register(ctx context.Context) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = u.registerOnce(ctx, 60*time.Second); err == nil || strings.Contains(err.Error(), "already registered") {
			return nil // (an earlier try got through, its answer did not)
		}
	}
	return err
}

// registerOnce runs parley register once, for at most d.
func (u *user) registerOnce(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out, err := combined(ctx, u.command("register", "--server", u.srv.url, u.name))
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLine(out))
	}
	return nil
}

// combined runs cmd until it exits or ctx ends, and returns its output.
func combined(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var b lockedBuffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(b.String()), err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return []byte(b.String()), ctx.Err()
	}
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// errNeedsRoot: the profile needs the lab's namespaces.
var errNeedsRoot = errors.New("needs the lab's network namespaces (root)")
