package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/call"
)

// Calls in the web client: headless Chromium takes its microphone from a
// WAV of speech made with espeak-ng (--use-file-for-fake-audio-capture,
// which loops it), calls go through an in-process parleyd with its TURN
// relay, and the callee's inbound RTP statistics (read through
// globalThis.parleyCalls.stats(), the numbers behind the quality
// indicator) must show packets and audio energy.

// needSpeechTools skips the test (or fails it under CI=true) without
// espeak-ng and opusenc.
func needSpeechTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"espeak-ng", "opusenc"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed (Debian: apt-get install espeak-ng opus-tools); the call tests need real speech"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// speechWAV writes text, spoken by espeak-ng, to a WAV file and returns its
// path.
func speechWAV(t *testing.T, text string) string {
	t.Helper()
	needSpeechTools(t)
	wav := filepath.Join(t.TempDir(), "speech.wav")
	if out, err := exec.Command("espeak-ng", "-w", wav, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	return wav
}

// speechOgg is speechWAV encoded to Ogg Opus by opusenc.
func speechOgg(t *testing.T, text string) string {
	t.Helper()
	wav := speechWAV(t, text)
	ogg := strings.TrimSuffix(wav, ".wav") + ".ogg"
	if out, err := exec.Command("opusenc", "--quiet", wav, ogg).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v\n%s", err, out)
	}
	return ogg
}

// openCaller opens a browser whose microphone speaks wav.
func openCaller(t *testing.T, name, url, wav string) *browser {
	t.Helper()
	return openBrowser(t, name, t.TempDir(), url,
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
}

// callStats is what web/src/call.ts CallStats gives.
type callStats struct {
	ID              string   `json:"id"`
	Phase           string   `json:"phase"`
	Path            string   `json:"path"`
	SetupMs         float64  `json:"setupMs"`
	PacketsSent     float64  `json:"packetsSent"`
	PacketsReceived float64  `json:"packetsReceived"`
	PacketsLost     float64  `json:"packetsLost"`
	AudioEnergy     float64  `json:"audioEnergy"`
	AudioLevel      float64  `json:"audioLevel"`
	Moves           []string `json:"moves"` // between WebRTC and the tunnel
	// Tunnel is set for calls through the server's tunnel (api.ts TunnelStats).
	Tunnel *struct {
		Played    int `json:"played"`
		Concealed int `json:"concealed"`
		Late      int `json:"late"`
		Sent      int `json:"packets_sent"`
		Dropped   int `json:"packets_dropped"`
		Switches  []struct {
			From   string `json:"from"`
			To     string `json:"to"`
			Reason string `json:"reason"`
		} `json:"switches"`
	} `json:"tunnel"`
}

func (b *browser) callStats() callStats {
	b.t.Helper()
	st := get(b, "call stats", chromedp.Evaluate[*callStats](`globalThis.parleyCalls.stats()`, chromedp.EvalAwaitPromise))
	if st == nil {
		b.t.Fatalf("%s: no call in progress", b.name)
	}
	return *st
}

// callPhase waits until the call screen shows phase.
func (b *browser) callPhase(phase string) {
	b.t.Helper()
	b.run("call "+phase, chromedp.WaitVisible(fmt.Sprintf(`#call-screen[data-phase=%q]`, phase)))
}

// hearing waits until b has received audio with energy in it, and returns
// the statistics then.
func (b *browser) hearing() callStats {
	b.t.Helper()
	b.run("audio arrives", poll(`globalThis.parleyCalls.stats().then(s => s && s.packetsReceived > 50 && s.audioEnergy > 0)`))
	return b.callStats()
}

// notice waits until the open conversation shows a notice matching re.
func (b *browser) notice(re string) string {
	b.t.Helper()
	b.run("notice "+re, poll(fmt.Sprintf(
		`[...document.querySelectorAll('.message.notice .text')].some(e => new RegExp(%q).test(e.textContent))`, re)))
	texts := get(b, "notices", chromedp.Evaluate[[]string](`[...document.querySelectorAll('.message.notice .text')].map(e => e.textContent)`))
	for _, s := range texts {
		if regexp.MustCompile(re).MatchString(s) {
			return s
		}
	}
	return ""
}

// TestBrowserCall: a browser calls a browser through parleyd; the callee
// hears packets with audio energy; mute silences the caller; hang-up ends
// both sides and each history records the call. Then a call in "relay
// only" mode goes through the TURN relay, a third is declined, and a CLI
// user calling during a call gets "busy".
func TestBrowserCall(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerTURN(t, webFiles(t))
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "Hello Bob. This is Alice, calling you from a browser over Parley."))
	bob := openCaller(t, "bob", srv.url(), speechWAV(t, "Hi Alice, Bob here. I can hear you well."))
	alice.register("alice")
	bob.register("bob")
	alice.open("bob")

	// 1. A direct call, answered, muted and unmuted, hung up by bob.
	alice.run("call", chromedp.Click(`#call-button`))
	alice.callPhase("calling")
	bob.callPhase("ringing")
	bob.run("the ring sounds", poll(`globalThis.parleyCalls.ringState() === "running"`))
	bob.screenshot("call-incoming")
	bob.run("accept", chromedp.Click(`#call-accept`))
	bob.run("the ring stops", poll(`globalThis.parleyCalls.ringState() === "stopped"`))
	alice.callPhase("active")
	bob.callPhase("active")
	heard := bob.hearing()
	alice.hearing()
	t.Logf("browser→browser, direct: bob's set-up %.0f ms, path %q", heard.SetupMs, heard.Path)
	if heard.SetupMs <= 0 || heard.Path != "direct" {
		t.Errorf("bob's call stats: %+v, want a set-up time and a direct path", heard)
	}
	alice.run("quality shown", chromedp.WaitVisible(`#call-quality[data-quality="good"], #call-quality[data-quality="fair"]`))
	alice.screenshot("call-active")

	// Mute: bob still gets packets, without energy in them.
	checkMute(t, alice, bob, func(a, b callStats) string {
		if b.PacketsReceived <= a.PacketsReceived {
			return fmt.Sprintf("bob received no packets in 1.5 s: %+v then %+v", a, b)
		}
		return ""
	})

	// Busy: carol (the CLI) calls bob during the call.
	carol := register(t, srv.url(), "carol")
	code, out, errOut := carol.run("", "call", "bob", "--duration", "1s")
	if code == 0 || !strings.Contains(out+errOut, "busy") {
		t.Errorf("carol calling bob during a call: exit %d, %s%s; want busy", code, out, errOut)
	}

	calleeHangsUp(t, alice, bob)
	bob.open("carol")
	bob.notice(`^Missed call from carol while you were in another call$`)

	// 2. Relay only (bob's setting): the media goes through the TURN relay.
	bob.run("settings", chromedp.Click(`#settings-button`), chromedp.WaitVisible(`#relay-only`), chromedp.Click(`#relay-only`))
	if !get(bob, "relay only", chromedp.Evaluate[bool](`document.querySelector("#relay-only").checked`)) {
		t.Fatal("the relay-only setting did not turn on")
	}
	bob.closeDialog()
	bob.open("alice")
	bob.run("call alice", chromedp.Click(`#call-button`))
	alice.callPhase("ringing")
	alice.run("accept", chromedp.Click(`#call-accept`))
	relayed := alice.hearing()
	bobSide := bob.hearing()
	t.Logf("browser→browser, bob relay-only: bob's path %q, alice's %q; alice's set-up %.0f ms", bobSide.Path, relayed.Path, relayed.SetupMs)
	if bobSide.Path != "relay (udp)" {
		t.Errorf("bob (relay only) sends %q, want relay (udp)", bobSide.Path)
	}
	alice.run("hang up", chromedp.Click(`#call-hangup`))
	bob.callPhase("ended")
	alice.callPhase("ended")

	// 3. Declined.
	alice.run("call again", chromedp.Click(`#call-dismiss`), chromedp.WaitNotPresent(`#call-screen`), chromedp.Click(`#call-button`))
	bob.callPhase("ringing")
	bob.run("decline", chromedp.Click(`#call-decline`))
	alice.callPhase("ended")
	if got := get(alice, "outcome", chromedp.AttributeValue(`#call-screen`, "data-outcome")).Value; got != "declined" {
		t.Errorf("alice's call ended %q, want declined", got)
	}
	alice.notice(`^bob declined the call$`)
	bob.notice(`^You declined a call from alice$`)
}

// TestBrowserCLICall: the CLI calls a browser with an Ogg of speech, and
// the browser calls the CLI; each side gets the other's audio.
func TestBrowserCLICall(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerTURN(t, webFiles(t))
	alice := openCaller(t, "alice", srv.url(), speechWAV(t, "This is the browser speaking to the command line."))
	alice.register("alice")
	carol := register(t, srv.url(), "carol")
	speech := speechOgg(t, "This is the command line speaking to the browser. One, two, three, four, five.")
	dir := t.TempDir()

	// The CLI calls; the browser answers.
	heard := filepath.Join(dir, "carol-heard.ogg")
	out, done := carol.start("call", "alice", "--send", speech, "--record", heard, "--duration", "4s")
	alice.callPhase("ringing")
	alice.run("accept", chromedp.Click(`#call-accept`))
	st := alice.hearing()
	t.Logf("CLI→browser: the browser's set-up %.0f ms, path %q", st.SetupMs, st.Path)
	if code := <-done; code != 0 {
		t.Fatalf("parley call: exit %d\n%s", code, out.String())
	}
	alice.callPhase("ended")
	checkHeard(t, "carol", out.String(), heard)
	alice.openListed("carol")
	alice.notice(`^Incoming call · 0:0\d$`)
	if got := carol.must("history", "alice"); !regexp.MustCompile(`Outgoing call · 0:0\d`).MatchString(got) {
		t.Errorf("carol's history has no record of the call:\n%s", got)
	}

	// The browser calls; the CLI answers.
	heard2 := filepath.Join(dir, "carol-heard2.ogg")
	out2, done2 := carol.answer("--send", speech, "--record", heard2, "--wait", "30s")
	alice.run("dismiss", chromedp.Click(`#call-dismiss`), chromedp.WaitNotPresent(`#call-screen`), chromedp.Click(`#call-button`))
	alice.callPhase("active")
	alice.hearing()
	time.Sleep(2 * time.Second)
	alice.run("hang up", chromedp.Click(`#call-hangup`))
	alice.callPhase("ended")
	if code := <-done2; code != 0 {
		t.Fatalf("parley answer: exit %d\n%s", code, out2.String())
	}
	if !strings.Contains(out2.String(), "alice hung up") {
		t.Errorf("parley answer did not see alice hang up:\n%s", out2.String())
	}
	checkHeard(t, "carol", out2.String(), heard2)
	alice.notice(`^Outgoing call · 0:0\d$`)
}

// calleeHangsUp: callee hangs up a call caller made; it ends "completed"
// and both histories record it.
func calleeHangsUp(t *testing.T, caller, callee *browser) {
	t.Helper()
	callee.run("hang up", chromedp.Click(`#call-hangup`))
	callee.callPhase("ended")
	caller.callPhase("ended")
	if got := get(caller, "outcome", chromedp.AttributeValue(`#call-screen`, "data-outcome")).Value; got != "completed" {
		t.Errorf("%s's call ended %q, want completed", caller.name, got)
	}
	caller.notice(`^Outgoing call · 0:\d\d$`)
	callee.open(caller.name)
	callee.notice(`^Incoming call · 0:\d\d$`)
}

// checkMute checks that muting caller silences what callee hears while
// its media keeps flowing (flowing compares callee's statistics 1.5 s
// apart and says what is wrong, or "").
func checkMute(t *testing.T, caller, callee *browser, flowing func(a, b callStats) string) {
	t.Helper()
	energy := func() float64 {
		a := callee.callStats()
		time.Sleep(1500 * time.Millisecond)
		b := callee.callStats()
		if msg := flowing(a, b); msg != "" {
			t.Error(msg)
		}
		return b.AudioEnergy - a.AudioEnergy
	}
	speaking := energy()
	caller.run("mute", chromedp.Click(`#call-mute`), chromedp.WaitVisible(`#call-mute[aria-pressed="true"]`))
	time.Sleep(500 * time.Millisecond) // what was on its way
	muted := energy()
	caller.run("unmute", chromedp.Click(`#call-mute`), chromedp.WaitVisible(`#call-mute[aria-pressed="false"]`))
	t.Logf("audio energy %s got in 1.5 s: %.4f speaking, %.6f muted", callee.name, speaking, muted)
	if speaking <= 0 || muted > speaking/20 {
		t.Errorf("muting %s: %s's audio energy went from %.4f to %.6f, want (near) silence", caller.name, callee.name, speaking, muted)
	}
}

// checkHeard checks that the CLI's report and recording show audio from
// the browser: at least 2 s of packets, few lost.
func checkHeard(t *testing.T, who, out, recording string) {
	t.Helper()
	received := checkPackets(t, who, out)
	n, voiced := recordingCounts(t, who, recording)
	if n < received || voiced < received/2 {
		t.Errorf("%s's recording holds %d packets (%d with audio) of the %d received", who, n, voiced, received)
	}
}

// checkPackets checks the CLI's packet counts: at least 100 received (2 s),
// at most 5% lost. It returns the packets received.
func checkPackets(t *testing.T, who, out string) int {
	t.Helper()
	m := packetsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s's output has no packet counts:\n%s", who, out)
	}
	received, _ := strconv.Atoi(m[2])
	lost, _ := strconv.Atoi(m[3]) // for a tunnel call: the slots its jitter buffer concealed
	if received < 100 || lost > received/20 {
		t.Errorf("%s received %d packets, lost %d; want ≥ 100 (2 s), ≤ 5%% lost\n%s", who, received, lost, out)
	}
	return received
}

// recordingCounts counts the packets of a CLI's recording, and those with
// audio: not an empty frame put where one was lost or concealed, nor DTX.
func recordingCounts(t *testing.T, who, recording string) (n, voiced int) {
	t.Helper()
	f, err := os.Open(recording)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := call.NewOggReader(f)
	if err != nil {
		t.Fatalf("%s's recording: %v", who, err)
	}
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return n, voiced
		}
		n++
		if len(p) > 3 {
			voiced++
		}
	}
}
