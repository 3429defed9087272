package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserTunnelCall: calls between the CLI and a browser through
// parleyd's call tunnel (tier 2), in both directions: the CLI calls with
// --path tunnel and the browser answers; the browser, with its "tunnel"
// setting on, calls the CLI. The browser encodes its fake microphone (a WAV
// of speech) with WebCodecs Opus and plays what it receives through its
// jitter buffer and an AudioWorklet; the CLI sends an Ogg of speech and
// records what it receives. Over WebTransport where the server offers it
// (the browser's own WebTransport, with the server's self-signed
// certificate pinned by its hash), and over a WebSocket where it does not.
func TestBrowserTunnelCall(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	// One after the other: each runs a Chromium, the CLI and a server on
	// a small machine.
	for _, carrier := range []string{"webtransport", "websocket"} {
		t.Run(carrier, func(t *testing.T) {
			srv := launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: webFiles(t), wt: carrier == "webtransport"})
			browserTunnelCall(t, srv, carrier)
		})
	}
}

func browserTunnelCall(t *testing.T, srv *parleyd, carrier string) {
	wantPath := map[string]string{"webtransport": "server tunnel (WebTransport)", "websocket": "server tunnel (WebSocket)"}[carrier]
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "This is the browser speaking through the server's tunnel."))
	alice.register("alice")
	carol := register(t, srv.url(), "carol")
	speech := speechOgg(t, "This is the command line speaking through the tunnel. One, two, three, four, five.")
	dir := t.TempDir()

	// 1. The CLI calls through the tunnel; the browser answers.
	heard := filepath.Join(dir, "carol-heard.ogg")
	out, done := carol.start("call", "alice", "--path", "tunnel", "--send", speech, "--record", heard, "--duration", "4s")
	alice.callPhase("ringing")
	alice.run("accept", chromedp.Click(`#call-accept`))
	alice.callPhase("active")
	st := alice.hearing()
	t.Logf("CLI→browser: the browser's set-up %.0f ms, path %q, %.0f frames received, %.0f concealed, energy %.4f",
		st.SetupMs, st.Path, st.PacketsReceived, st.PacketsLost, st.AudioEnergy)
	if st.Path != wantPath || st.SetupMs <= 0 {
		t.Errorf("the browser's call stats: %+v; want path %q and a set-up time", st, wantPath)
	}
	alice.run("path shown", chromedp.WaitVisible(`#call-quality`))
	if got := get(alice, "path shown", chromedp.Text(`#call-quality`)); !strings.Contains(got, wantPath) {
		t.Errorf("the call screen shows %q, want the path %q", got, wantPath)
	}
	if code := <-done; code != 0 {
		t.Fatalf("parley call: exit %d\n%s", code, out.String())
	}
	alice.callPhase("ended")
	checkTunnelHeard(t, "carol", out.String(), heard, carrier)
	alice.openListed("carol")
	alice.notice(`^Incoming call · 0:0\d$`)

	// 2. The browser calls through the tunnel; the CLI answers.
	alice.run("settings", chromedp.Click(`#settings-button`), chromedp.WaitVisible(`#tunnel-calls`), chromedp.Click(`#tunnel-calls`))
	if !get(alice, "tunnel setting", chromedp.Evaluate[bool](`document.querySelector("#tunnel-calls").checked`)) {
		t.Fatal("the tunnel setting did not turn on")
	}
	alice.closeDialog()
	heard2 := filepath.Join(dir, "carol-heard2.ogg")
	out2, done2 := carol.answer("--send", speech, "--record", heard2, "--wait", "30s")
	alice.dismissCall()
	alice.run("call", chromedp.Click(`#call-button`))
	alice.callPhase("active")
	st = alice.hearing()
	alice.run("quality shown", chromedp.WaitVisible(`#call-quality[data-quality="good"], #call-quality[data-quality="fair"]`))
	time.Sleep(3 * time.Second)
	end := alice.callStats()
	if end.Tunnel == nil {
		t.Fatalf("the browser's call stats have no tunnel part: %+v", end)
	}
	t.Logf("browser→CLI: the browser's set-up %.0f ms, path %q; played %d frames, %d concealed; energy %.4f",
		st.SetupMs, end.Path, end.Tunnel.Played, end.Tunnel.Concealed, end.AudioEnergy)
	if end.Path != wantPath || end.Tunnel.Played < 150 || end.AudioEnergy <= st.AudioEnergy {
		t.Errorf("the browser's call stats: %+v; want path %q, ≥ 150 frames played (3 s) and audio energy growing", end, wantPath)
	}
	alice.run("hang up", chromedp.Click(`#call-hangup`))
	alice.callPhase("ended")
	if code := <-done2; code != 0 {
		t.Fatalf("parley answer: exit %d\n%s", code, out2.String())
	}
	if !strings.Contains(out2.String(), "alice hung up") {
		t.Errorf("parley answer did not see alice hang up:\n%s", out2.String())
	}
	checkTunnelHeard(t, "carol", out2.String(), heard2, carrier)
	alice.notice(`^Outgoing call · 0:0\d$`)
	if got := carol.must("history", "alice"); !regexp.MustCompile(`Incoming call · 0:0\d`).MatchString(got) {
		t.Errorf("carol's history has no record of alice's call:\n%s", got)
	}

	// 3. A tunnel call, declined.
	out3, done3 := carol.start("call", "alice", "--path", "tunnel", "--ring", "20s")
	alice.dismissCall()
	alice.callPhase("ringing")
	alice.run("decline", chromedp.Click(`#call-decline`))
	if code := <-done3; code == 0 || !strings.Contains(out3.String(), "declined") {
		t.Errorf("carol's tunnel call, declined: exit %d\n%s", code, out3.String())
	}
	alice.notice(`^You declined a call from carol$`)
}

// dismissCall closes the card of a call that ended, unless it has gone
// by itself already (it stays four seconds).
func (b *browser) dismissCall() {
	b.t.Helper()
	get(b, "dismiss the call", chromedp.Evaluate[bool](`(document.querySelector("#call-dismiss")?.click(), true)`))
	b.run("the call's card goes", chromedp.WaitNotPresent(`#call-screen`))
}

// checkTunnelHeard checks that the CLI's tunnel call went over carrier and
// that its report and recording show the browser's audio (checkHeard: at
// least 2 s of frames, few lost), and that its jitter buffer played them.
func checkTunnelHeard(t *testing.T, who, out, recording, carrier string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^connected in \S+ \(tunnel over ` + carrier + `\)$`).MatchString(out) {
		t.Errorf("%s's call did not say it went through the tunnel over %s:\n%s", who, carrier, out)
	}
	m := jitterLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no jitter buffer report:\n%s", who, out)
	}
	played, _ := strconv.Atoi(m[1])
	if played < 100 {
		t.Errorf("%s's jitter buffer played %d frames, want ≥ 100 (2 s)\n%s", who, played, out)
	}
	checkPackets(t, who, out)
	// The recording holds what the jitter buffer played (the frames still
	// in it at the hang-up are not), and a short packet for each
	// concealed slot.
	n, voiced := recordingCounts(t, who, recording)
	if n < played || voiced < played*9/10 {
		t.Errorf("%s's recording holds %d packets (%d with audio); its jitter buffer played %d", who, n, voiced, played)
	}
}

// TestBrowserTunnelBrowsers: a browser calls a browser through the tunnel
// (only the caller has the setting on: the callee follows the offer); the
// callee hears the caller's speech, and silence while the caller is muted
// (the caller then sends the tunnel's empty silence frames); the callee
// hangs up.
func TestBrowserTunnelBrowsers(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: webFiles(t), wt: true})
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "Hello Bob. This is Alice, calling you through the server's tunnel."))
	bob := openCaller(t, "bob", srv.url(), speechWAV(t, "Hi Alice, Bob here. I can hear you through the tunnel."))
	alice.register("alice")
	bob.register("bob")
	alice.run("settings", chromedp.Click(`#settings-button`), chromedp.WaitVisible(`#tunnel-calls`), chromedp.Click(`#tunnel-calls`))
	alice.closeDialog()
	alice.open("bob")

	alice.run("call", chromedp.Click(`#call-button`))
	bob.callPhase("ringing")
	bob.run("accept", chromedp.Click(`#call-accept`))
	alice.callPhase("active")
	bob.callPhase("active")
	heard := bob.hearing()
	alice.hearing()
	t.Logf("browser→browser through the tunnel: bob's set-up %.0f ms, path %q", heard.SetupMs, heard.Path)
	// Over WebTransport, or a WebSocket: on the shared machine a starved
	// tab conceals frames and its Link may leave WebTransport for loss
	// (TestBrowserTunnelCall checks the carriers themselves).
	if !strings.HasPrefix(heard.Path, "server tunnel (") {
		t.Errorf("bob's path is %q, want the server's tunnel", heard.Path)
	}

	// Mute: bob still plays a frame every 20 ms, without energy in it.
	checkMute(t, alice, bob, func(a, b callStats) string {
		if b.Tunnel == nil || a.Tunnel == nil || b.Tunnel.Played-a.Tunnel.Played < 50 {
			return fmt.Sprintf("bob played too few frames in 1.5 s: %+v then %+v", a.Tunnel, b.Tunnel)
		}
		return ""
	})

	calleeHangsUp(t, alice, bob)
}

// TestBrowserTunnelSwitch: the browser calls the CLI through the tunnel
// over WebTransport, and then the UDP path freezes (a proxy in front of
// the server's WebTransport port drops everything): both sides move the
// call to their spare carrier, a WebSocket, the audio goes on, and the
// browser's call screen shows the new path.
func TestBrowserTunnelSwitch(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	var front *udpFront
	srv := launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: webFiles(t), wt: true,
		wtFront: func(t testing.TB, server net.Addr) string {
			front = startUDPFront(t, server)
			return front.addr()
		}})
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "This is the browser speaking while the path freezes."))
	alice.register("alice")
	carol := register(t, srv.url(), "carol")
	speech := speechOgg(t, "This is the command line speaking while the path freezes. One, two, three, four, five.")
	alice.run("settings", chromedp.Click(`#settings-button`), chromedp.WaitVisible(`#tunnel-calls`), chromedp.Click(`#tunnel-calls`))
	alice.closeDialog()
	alice.open("carol")

	heard := filepath.Join(t.TempDir(), "carol-heard.ogg")
	out, done := carol.answer("--send", speech, "--record", heard, "--wait", "30s")
	alice.run("call", chromedp.Click(`#call-button`))
	alice.callPhase("active")
	if st := alice.hearing(); st.Path != "server tunnel (WebTransport)" {
		t.Fatalf("the call went over %q, want the tunnel over WebTransport", st.Path)
	}
	alice.run("path shown", chromedp.WaitVisible(`#call-quality`))

	front.cut.Store(true)
	cut := time.Now()
	alice.run("the path moves", poll(`document.querySelector("#call-quality")?.textContent.includes("server tunnel (WebSocket)")`))
	moved := time.Since(cut)
	before := alice.callStats()
	time.Sleep(2 * time.Second)
	after := alice.callStats()
	if before.Tunnel == nil || after.Tunnel == nil {
		t.Fatalf("no tunnel statistics: %+v, %+v", before, after)
	}
	played, concealed := after.Tunnel.Played-before.Tunnel.Played, after.Tunnel.Concealed-before.Tunnel.Concealed
	t.Logf("the call screen showed the WebSocket %v after the cut; then in 2 s the browser played %d frames, concealed %d", moved, played, concealed)
	if after.Path != "server tunnel (WebSocket)" || played < 80 || after.AudioEnergy <= before.AudioEnergy {
		t.Errorf("after the move: %+v then %+v; want the WebSocket, ≥ 80 frames played in 2 s and audio energy growing", before, after)
	}
	if sw := after.Tunnel.Switches; len(sw) == 0 || !strings.HasPrefix(sw[0].From, "webtransport#") ||
		!strings.HasPrefix(sw[0].To, "websocket#") || sw[0].Reason == "" {
		t.Errorf("the browser's switches: %+v; want one from WebTransport to a WebSocket, with its reason", sw)
	} else {
		t.Logf("the browser's switch: %s → %s (%s)", sw[0].From, sw[0].To, sw[0].Reason)
	}
	alice.run("hang up", chromedp.Click(`#call-hangup`))
	alice.callPhase("ended")
	if code := <-done; code != 0 {
		t.Fatalf("parley answer: exit %d\n%s", code, out.String())
	}
	if !regexp.MustCompile(`(?m)^path: webtransport#\d+ → websocket#\d+ \(.+\)$`).MatchString(out.String()) {
		t.Errorf("carol's call did not move from WebTransport to a WebSocket:\n%s", out.String())
	}
}

// udpFront forwards UDP between clients and a server, from one upstream
// socket per client, and drops everything both ways while cut is set: a
// path that freezes, as a network that starts dropping UDP would.
type udpFront struct {
	ln     net.PacketConn
	server net.Addr
	cut    atomic.Bool

	mu sync.Mutex // guards up
	up map[string]net.PacketConn
}

func startUDPFront(t testing.TB, server net.Addr) *udpFront {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &udpFront{ln: ln, server: server, up: map[string]net.PacketConn{}}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.up {
			c.Close()
		}
	})
	go f.serve()
	return f
}

func (f *udpFront) addr() string { return f.ln.LocalAddr().String() }

func (f *udpFront) serve() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := f.ln.ReadFrom(buf)
		if err != nil {
			return
		}
		if up := f.upstream(from); up != nil && !f.cut.Load() {
			up.WriteTo(buf[:n], f.server)
		}
	}
}

// upstream returns the socket that speaks to the server for client,
// opening it (and its return path) the first time.
func (f *udpFront) upstream(client net.Addr) net.PacketConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.up[client.String()]; ok {
		return c
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil
	}
	f.up[client.String()] = c
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if !f.cut.Load() {
				f.ln.WriteTo(buf[:n], client)
			}
		}
	}()
	return c
}
