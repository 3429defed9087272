package lab

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	moveLine  = regexp.MustCompile(`(?m)^path: webrtc → tunnel \(([^)]*)\)$`)
	movedLine = regexp.MustCompile(`(?m)^moved in (\S+) \(tunnel over (websocket|webtransport)\)$`)
)

// TestLabMove: a call that --path auto puts on WebRTC, on the lab's clean
// network, which starts dropping all UDP (the udp-blocked profile) a few
// seconds in, as a censor that turns on mid-call would: both sides move
// the call to the server's tunnel, which the race left open, without
// hanging up, within seconds, and hear each other through it for the rest
// of the call. Then a second call on the blocked network connects within
// 3 s (the udp-blocked target), whichever tier wins the race.
func TestLabMove(t *testing.T) {
	needRoot(t, "the mid-call move", "")
	needTools(t)
	const callFor, blockAfter = 12 * time.Second, 3 * time.Second
	ctx, ml := startMoveLab(t, callFor)
	net, alice, bob, sp := ml.net, ml.alice, ml.bob, ml.sp
	if err := bob.register(ctx); err != nil {
		t.Fatalf("registering bob: %v", err)
	}
	aliceOut, ended := callPair(t, ctx, alice, bob, sp, callFor)
	waitFor(t, aliceOut, "connected in", 30*time.Second)
	if !strings.Contains(aliceOut.String(), "(direct") {
		t.Fatalf("the call did not start on WebRTC, direct:\n%s", aliceOut.String())
	}
	time.Sleep(blockAfter)
	if err := net.SetProfile(ctx, "udp-blocked"); err != nil {
		t.Fatal(err)
	}
	t.Log("UDP is blocked")
	outs := ended()
	for who, out := range outs {
		t.Logf("%s:\n%s", who, out)
		m := moveLine.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s's call did not say it moved to the tunnel", who)
			continue
		}
		if !regexp.MustCompile(`^(nothing came over WebRTC for 1\.5s|WebRTC failed: .*|(alice|bob) moved the call to the tunnel)$`).MatchString(m[1]) {
			t.Errorf("%s's call moved because %q", who, m[1])
		}
		if m := movedLine.FindStringSubmatch(out); m == nil {
			t.Errorf("%s's call did not say that the tunnel took over", who)
		} else if d, err := time.ParseDuration(m[1]); err != nil || d > time.Second {
			// The race left it open, the other device in it.
			t.Errorf("%s's tunnel took %s to come up", who, m[1])
		}
		// The rest of the call, some 7 s once the cut is seen, through
		// the tunnel's jitter buffer: at least 4 s of it played.
		if m := regexp.MustCompile(`(?m)^jitter buffer: played (\d+),`).FindStringSubmatch(out); m == nil {
			t.Errorf("%s's call printed no jitter buffer report", who)
		} else if n, _ := strconv.Atoi(m[1]); n < 200 {
			t.Errorf("%s's jitter buffer played %d frames after the move, want ≥ 200", who, n)
		}
	}

	_, ended = callPair(t, ctx, alice, bob, sp, 4*time.Second)
	for who, out := range ended() {
		t.Logf("%s, the second call:\n%s", who, out)
		for _, line := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^connected in (\S+) \(`),
			regexp.MustCompile(`(?m)^set-up time: (\S+)$`),
		} {
			if m := line.FindStringSubmatch(out); m == nil {
				t.Errorf("%s's second call printed no line like %s", who, line)
			} else if d, err := time.ParseDuration(m[1]); err != nil || d > 3*time.Second {
				t.Errorf("%s's second call: %q, want under 3s", who, m[0])
			}
		}
		if strings.Contains(out, "path: tunnel → webrtc") {
			t.Errorf("%s's second call moved up to WebRTC over UDP, on a network that blocks UDP", who)
		}
	}
}

// moveLab is the lab's clean network with parleyd, alice and bob
// registered (each in a client namespace), and speech for a call.
type moveLab struct {
	net        network
	srv        *server
	alice, bob *user
	sp         *speech
	dir, bin   string
}

// startMoveLab starts a moveLab with speech for calls of callFor; the
// context bounds the test.
func startMoveLab(t *testing.T, callFor time.Duration) (context.Context, *moveLab) {
	t.Helper()
	ml := &moveLab{bin: buildBinaries(t), dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	var err error
	if ml.sp, err = makeSpeech(ctx, ml.dir, callFor); err != nil {
		t.Fatal(err)
	}
	if ml.net, err = openNetwork(ctx, "clean", 2, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.net.Close() })
	cfg := Config{Bin: ml.bin}
	if ml.srv, err = startServer(ctx, cfg, ml.net, ml.dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ml.srv.stop)
	ml.alice = &user{name: "alice", client: 0, home: filepath.Join(ml.dir, "alice"), cfg: cfg, net: ml.net, srv: ml.srv}
	ml.bob = &user{name: "bob", client: 1, home: filepath.Join(ml.dir, "bob"), cfg: cfg, net: ml.net, srv: ml.srv}
	if err := ml.alice.register(ctx); err != nil {
		t.Fatalf("registering alice: %v", err)
	}
	return ctx, ml
}

// TestLabMoveBrowser: the CLI calls the web client (whose calls race the
// tunnel by default) on the lab's clean network, which starts dropping all
// UDP a few seconds in: both move the call to the tunnel without hanging
// up and hear each other through it. When UDP goes through again, both
// move back up to WebRTC.
func TestLabMoveBrowser(t *testing.T) {
	needRoot(t, "the browser's mid-call move", "")
	needTools(t)
	browser := chromium()
	if browser == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; CI installs it")
		}
		t.Skip("chromium is not installed (Debian: apt-get install chromium)")
	}
	const callFor, blockAfter, blockFor = 22 * time.Second, 4 * time.Second, 7 * time.Second
	ctx, ml := startMoveLab(t, callFor)
	mic, err := micWAV(ctx, ml.sp.bob)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ml.net.Command(1, filepath.Join(ml.bin, "parley-lab"), "browser", "--chromium", browser, "--url", ml.srv.url,
		"--user", "bob", "--profile", filepath.Join(ml.dir, "bob-profile"), "--mic", mic, "--wait", "2m", "--race")
	bob := &agent{name: "bob", cmd: cmd}
	if bob.out, bob.lines, bob.done, err = startAgent(cmd, filepath.Join(ml.dir, "bob-web.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	if l, err := bob.next(ctx); err != nil || l != "ready" {
		t.Fatalf("bob's browser did not get ready (%q, %v):\n%s", l, err, bob.out())
	}
	var aliceOut lockedBuffer
	aliceDone := start(t, ml.alice.command("call", "bob", "--send", ml.sp.alice, "--duration", callFor.String()), &aliceOut)
	waitFor(t, &aliceOut, "connected in", time.Minute)
	if !strings.Contains(aliceOut.String(), "(direct") {
		t.Fatalf("the call did not start on WebRTC, direct:\n%s", aliceOut.String())
	}
	time.Sleep(blockAfter)
	if err := ml.net.SetProfile(ctx, "udp-blocked"); err != nil {
		t.Fatal(err)
	}
	t.Log("UDP is blocked")
	time.Sleep(blockFor)
	if err := ml.net.SetProfile(ctx, "clean"); err != nil {
		t.Fatal(err)
	}
	t.Log("UDP goes through again")
	select {
	case err := <-aliceDone:
		if err != nil {
			t.Errorf("alice's parley: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("alice's call did not end")
	}
	out := aliceOut.String()
	t.Logf("alice:\n%s", out)
	var res browserResult
	if l, err := bob.next(ctx); err != nil || json.Unmarshal([]byte(l), &res) != nil {
		t.Fatalf("bob's browser gave no result (%q, %v):\n%s", l, err, bob.out())
	}
	t.Logf("bob's browser: %+v", res)
	if m := moveLine.FindStringSubmatch(out); m == nil {
		t.Errorf("alice's call did not move to the tunnel")
	}
	// The browser's audio, through the tunnel after the move until the
	// move back up: some 7 s of the call, at least 4 s of it played.
	if m := regexp.MustCompile(`(?m)^jitter buffer: played (\d+),`).FindStringSubmatch(out); m == nil {
		t.Errorf("alice's call printed no jitter buffer report")
	} else if n, _ := strconv.Atoi(m[1]); n < 200 {
		t.Errorf("alice's jitter buffer played %d frames of the browser's audio after the move, want ≥ 200", n)
	}
	if !regexp.MustCompile(`(?m)^path: tunnel → webrtc \((WebRTC came back over UDP|bob moved the call back up to WebRTC)`).MatchString(out) {
		t.Errorf("alice's call did not move back up to WebRTC when UDP went through again")
	}
	if !slices.ContainsFunc(res.Moves, func(m string) bool { return strings.HasPrefix(m, "webrtc → tunnel (") }) || res.TunnelPlayed < 200 {
		t.Errorf("bob's browser: moves %q, %d frames played through the tunnel; want a move to it and ≥ 200 frames", res.Moves, res.TunnelPlayed)
	}
	if n := len(res.Moves); n < 2 || !strings.HasPrefix(res.Moves[n-1], "tunnel → webrtc (") || strings.HasPrefix(res.LastPath, "server tunnel (") {
		t.Errorf("bob's browser: moves %q, last path %q; want the call back on WebRTC", res.Moves, res.LastPath)
	}
}

// browserResult is the part of "parley-lab browser"'s result (package
// lab/browser, Result) that TestLabMoveBrowser reads.
type browserResult struct {
	Connected    bool     `json:"connected"`
	LastPath     string   `json:"last_path"`
	Moves        []string `json:"moves"`
	TunnelPlayed int      `json:"tunnel_played"`
	Error        string   `json:"error"`
}

// callPair starts bob answering and alice calling him for d, and returns
// what alice prints as she prints it, and the function that waits for
// both to end and returns what each printed, by name.
func callPair(t *testing.T, ctx context.Context, alice, bob *user, sp *speech, d time.Duration) (*lockedBuffer, func() map[string]string) {
	t.Helper()
	var aliceOut, bobOut lockedBuffer
	bobDone := start(t, bob.command("answer", "--send", sp.bob, "--wait", "60s"), &bobOut)
	waitFor(t, &bobOut, "waiting for a call", 20*time.Second)
	aliceDone := start(t, alice.command("call", "bob", "--send", sp.alice, "--duration", d.String()), &aliceOut)
	return &aliceOut, func() map[string]string {
		t.Helper()
		for who, done := range map[string]<-chan error{"alice": aliceDone, "bob": bobDone} {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s's parley: %v", who, err)
				}
			case <-ctx.Done():
				t.Fatalf("%s's call did not end", who)
			}
		}
		return map[string]string{"alice": aliceOut.String(), "bob": bobOut.String()}
	}
}

// start starts cmd, its output going to out, and returns the channel of
// its end; it is killed at the end of the test.
func start(t *testing.T, cmd *exec.Cmd, out *lockedBuffer) <-chan error {
	t.Helper()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return done
}

// waitFor waits until out holds s.
func waitFor(t *testing.T, out *lockedBuffer, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v:\n%s", s, d, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
