package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserRace: a browser's WebRTC call races the server's tunnel, as
// the CLI's --path auto does. With "relay only" on, and a relay that
// relays to no address of this machine, WebRTC cannot come up: the
// browser's call to the CLI (which answers with its own share of the
// tunnel secret) starts in the tunnel a second after the answer, without
// failing, and each side hears the other there.
func TestBrowserRace(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", web: webFiles(t), turn: true, refuseRelay: true})
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "This is the browser speaking, first through the tunnel."))
	alice.register("alice")
	carol := register(t, srv.url(), "carol")
	speech := speechOgg(t, "This is the command line speaking to the browser. One, two, three, four, five.")
	heard := filepath.Join(t.TempDir(), "carol-heard.ogg")

	alice.run("settings", chromedp.Click(`#settings-button`), chromedp.WaitVisible(`#relay-only`), chromedp.Click(`#relay-only`))
	if !get(alice, "settings", chromedp.Evaluate[bool](`document.querySelector("#relay-only").checked && document.querySelector("#race-calls").checked`)) {
		t.Fatal("relay only is not on, or racing is not on by default")
	}
	alice.closeDialog()
	out, done := carol.answer("--send", speech, "--record", heard, "--wait", "30s")
	alice.run("call", chromedp.SendKeys(`#new-conversation`, "carol\n"), chromedp.WaitEnabled(`#call-button`), chromedp.Click(`#call-button`))
	alice.callPhase("active")
	st := alice.hearing()
	time.Sleep(3 * time.Second)
	end := alice.callStats()
	t.Logf("the browser: set-up %.0f ms, path %q, moves %q; energy %.4f then %.4f", st.SetupMs, end.Path, end.Moves, st.AudioEnergy, end.AudioEnergy)
	if end.Tunnel != nil {
		t.Logf("the browser's tunnel: sent %d packets, dropped %d", end.Tunnel.Sent, end.Tunnel.Dropped)
	}
	if !strings.HasPrefix(end.Path, "server tunnel (") || end.Tunnel == nil || len(end.Moves) != 0 {
		t.Errorf("the browser's call: path %q, moves %q; want the tunnel, no move", end.Path, end.Moves)
	}
	if st.SetupMs <= 0 || st.SetupMs > 3000 {
		t.Errorf("the browser heard the first audio %.0f ms after dialling, want within 3 s", st.SetupMs)
	}
	if end.AudioEnergy <= st.AudioEnergy || end.Tunnel.Played < 150 {
		t.Errorf("the browser's tunnel played %d frames in 3 s, audio energy %.4f → %.4f", end.Tunnel.Played, st.AudioEnergy, end.AudioEnergy)
	}
	alice.run("hang up", chromedp.Click(`#call-hangup`))
	alice.callPhase("ended")
	if code := <-done; code != 0 {
		t.Fatalf("parley answer: exit %d\n%s", code, out.String())
	}
	t.Logf("carol:\n%s", out.String())
	if !regexp.MustCompile(`(?m)^path: tunnel first \(`).MatchString(out.String()) {
		t.Errorf("carol's side did not say that the call started in the tunnel")
	}
	checkTunnelHeard(t, "carol", out.String(), heard, "websocket")
	alice.notice(`^Outgoing call · 0:0\d$`)
}
