package e2e

import (
	"regexp"
	"testing"
	"time"
)

// startServerRefusingRelay starts a parleyd whose TURN relay relays to
// public addresses only, as in production: between two clients on
// loopback, a relay-only WebRTC call cannot connect.
func startServerRefusingRelay(t *testing.T) string {
	t.Helper()
	return "http://" + serveWithRelay(t, nil, nil)
}

// TestPathMemory: alice's first call, relay-only, takes WebRTC as she
// asks (--path webrtc) and does not connect; her next call, relay-only
// with no --path, races WebRTC (the tunnel is untried) and the tunnel, and
// starts in the tunnel when WebRTC has not come up within a second; her
// next call goes through the tunnel alone and says why, and 'parley paths'
// lists them all.
func TestPathMemory(t *testing.T) {
	t.Parallel()
	url := startServerRefusingRelay(t)
	alice, bob := register(t, url, "alice"), register(t, url, "bob")
	var bobSaid string
	call := func(args ...string) (code int, out string) {
		t.Helper()
		bobOut, bobDone := bob.start("answer", "--wait", "30s")
		aliceOut, aliceDone := alice.start(append([]string{"call", "bob", "--duration", "1s"}, args...)...)
		code, _ = <-aliceDone, <-bobDone
		bobSaid = bobOut.String()
		t.Logf("alice %v:\n%s", args, aliceOut.String())
		t.Logf("bob:\n%s", bobSaid)
		return code, aliceOut.String()
	}
	tunnelFirst := regexp.MustCompile(`(?m)^path: tunnel first \(WebRTC was not up within 1s of the answer; it may still come\)$`)
	moved := regexp.MustCompile(`(?m)^path: \S+ → `)

	start := time.Now()
	code, out := call("--relay-only", "--path", "webrtc")
	if code != 1 || !regexp.MustCompile(`connection failed`).MatchString(out) || moved.MatchString(out) || tunnelFirst.MatchString(out) {
		t.Fatalf("the relay-only call with --path webrtc: exit %d; want 1 and a failed connection, not the tunnel", code)
	}
	t.Logf("the WebRTC call failed after %v", time.Since(start).Round(100*time.Millisecond))

	code, out = call("--relay-only")
	if code != 0 {
		t.Fatalf("the relay-only call with --path auto: exit %d", code)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^path: webrtc \(remembered: on this network WebRTC did not connect on .*, and the tunnel has not been tried here \(the call races it beside WebRTC\)\)$`),
		tunnelFirst,
	} {
		if !want.MatchString(out) {
			t.Errorf("the call that raced printed no line like %s", want)
		}
	}
	// It connects in the tunnel soon after the grace WebRTC gets, on both
	// sides, without a move.
	connected := regexp.MustCompile(`(?m)^connected in (\S+) \(tunnel over websocket\)$`)
	for who, out := range map[string]string{"alice": out, "bob": bobSaid} {
		if m := connected.FindStringSubmatch(out); m == nil {
			t.Errorf("%s's side of the call that raced did not connect in the tunnel", who)
		} else if d, err := time.ParseDuration(m[1]); err != nil || d > 3*time.Second {
			t.Errorf("%s's side of the call that raced connected in %s, want under 3s", who, m[1])
		}
		if moved.MatchString(out) || !tunnelFirst.MatchString(out) {
			t.Errorf("%s's side of the call that raced moved, or did not say that it started in the tunnel", who)
		}
	}

	code, out = call()
	if code != 0 {
		t.Fatalf("the call with --path auto: exit %d", code)
	}
	for _, want := range []string{
		`(?m)^path: tunnel \(remembered: on this network WebRTC did not connect on \d{4}-\d\d-\d\d \d\d:\d\d, the tunnel did on \d{4}-\d\d-\d\d \d\d:\d\d\)$`,
		`(?m)^carrier: websocket first \(remembered: the last call through the tunnel here went over websocket, on .*\)$`,
		`(?m)^connected in \S+ \(tunnel over websocket\)$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the call with --path auto printed no line like %s", want)
		}
	}
	// Bob answered the tunnelled call before: his side tries its carrier first.
	if !regexp.MustCompile(`(?m)^carrier: websocket first if the call comes through the tunnel \(remembered: `).MatchString(bobSaid) {
		t.Errorf("bob's answer did not say which carrier it tries first")
	}

	paths := alice.must("paths")
	t.Logf("parley paths:\n%s", paths)
	for _, want := range []string{
		`(?m)^this network \([0-9a-f]{24}\):$`,
		`(?m)^  \S+ \S+  webrtc  made, did not connect, relay only$`,
		`(?m)^  \S+ \S+  tunnel  made, connected in \S+ \(tunnel over websocket\)$`,
		`(?m)^  next call: tunnel \(remembered: on this network WebRTC did not connect`,
	} {
		if !regexp.MustCompile(want).MatchString(paths) {
			t.Errorf("parley paths printed no line like %s", want)
		}
	}
	// The call that raced counts as a WebRTC call that did not connect
	// and a tunnelled one that did.
	if n := len(regexp.MustCompile(`(?m)^  \S+ \S+  tunnel  made, connected`).FindAllString(paths, -1)); n != 2 {
		t.Errorf("parley paths lists %d tunnelled calls, want 2", n)
	}
	if n := len(regexp.MustCompile(`(?m)^  \S+ \S+  webrtc  made, did not connect, relay only$`).FindAllString(paths, -1)); n != 2 {
		t.Errorf("parley paths lists %d WebRTC calls that did not connect, want 2", n)
	}
	alice.must("paths", "--forget")
	if paths := alice.must("paths"); paths != "this network: nothing remembered\n" {
		t.Errorf("after --forget, parley paths printed %q", paths)
	}
}
