package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/systeminfo"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parleychat/parley/web"
	_ "modernc.org/sqlite" // to remove an account, as an operator would
)

// The web client's end-to-end tests drive Debian's chromium through the
// DevTools protocol (chromedp: the tests stay in Go, beside the rest, with
// no Node at run time). Each browser is its own process with its own
// profile folder, so two of them are two devices; a profile reopened is the
// same device after a browser restart. Screenshots of the main screens go
// to $PARLEY_ARTIFACTS (default: out/screenshots in the repository).

// chromiumPath finds a Chromium, or skips the test saying why (under
// CI=true it fails instead: CI installs chromium).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: CI must install it (apt-get install chromium)")
	}
	t.Skip("skipping the browser tests: chromium not found (apt-get install chromium)")
	return ""
}

var (
	webOnce sync.Once
	webFS   fs.FS
	webErr  error
)

// webFiles returns the web client as parleyd embeds it, with parley.wasm
// built from this checkout (so the tests never run a stale build).
func webFiles(t testing.TB) fs.FS {
	t.Helper()
	webOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-wasm-")
		if err != nil {
			webErr = err
			return
		}
		defer os.RemoveAll(dir)
		wasm := filepath.Join(dir, "parley.wasm")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", wasm, "github.com/parleychat/parley/web/wasm")
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			webErr = fmt.Errorf("building the wasm: %v\n%s", err, out)
			return
		}
		m := fstest.MapFS{}
		err = fs.WalkDir(web.Dist(), ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(web.Dist(), name)
			m[name] = &fstest.MapFile{Data: b}
			return err
		})
		delete(m, "parley.wasm.gz") // a build by make, maybe older than this one
		if err != nil {
			webErr = err
			return
		}
		goroot, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			webErr = fmt.Errorf("go env GOROOT: %v", err)
			return
		}
		for name, path := range map[string]string{"parley.wasm": wasm, "wasm_exec.js": filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js")} {
			b, err := os.ReadFile(path)
			if err != nil {
				webErr = err
				return
			}
			m[name] = &fstest.MapFile{Data: b}
		}
		webFS = m
	})
	if webErr != nil {
		t.Fatal(webErr)
	}
	return webFS
}

// browser is one Chromium process with one profile: one device.
type browser struct {
	t       testing.TB
	name    string
	profile string
	ctx     context.Context // the first tab
	close   func()
	console syncBuffer // the page's console, shown when a test fails
}

// openBrowser starts Chromium on profile (a folder; reuse it to reopen the
// same device) and loads url in its first tab.
func openBrowser(t testing.TB, name, profile, url string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 800),
	)
	opts = append(opts, extra...)
	b := &browser{t: t, name: name, profile: profile}
	// The first Run starts the browser, which lives as long as its context:
	// that one must not be the timed context of a step. A Chromium that
	// exits at once (seen on the shared 2-core machine while many start
	// together) gets a second try.
	for try := 1; ; try++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
			if e, ok := ev.(*cdpruntime.EventConsoleAPICalled); ok {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				}
				fmt.Fprintf(&b.console, "%s: %s\n", e.Type, strings.Join(parts, " "))
			}
		}))
		err := chromedp.Do(ctx)
		if err == nil {
			b.ctx = ctx
			b.close = func() { cancelTab(); cancelAlloc() }
			break
		}
		cancelTab()
		cancelAlloc()
		if try == 2 {
			t.Fatalf("%s: starting chromium: %v", name, err)
		}
		t.Logf("%s: chromium did not start (%v); trying once more", name, err)
		time.Sleep(time.Second)
	}
	t.Cleanup(func() {
		b.close()
		if t.Failed() {
			t.Logf("%s's browser console:\n%s", name, b.console.String())
		}
	})
	b.run("load", chromedp.Navigate(url), chromedp.WaitVisible(`body[data-ready="true"]`))
	return b
}

// run runs steps in the first tab, failing the test after a minute.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	get(b, what, chromedp.Steps(steps...))
}

// get runs action in b's first tab and returns its value, failing the test
// after a minute.
func get[T any](b *browser, what string, action chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.failureScreenshot()
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
	return v
}

// failureScreenshot saves what the page shows, to see why a step failed.
func (b *browser) failureScreenshot() {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		path := filepath.Join(artifacts(b.t), "failed-"+strings.ReplaceAll(b.t.Name(), "/", "-")+"-"+b.name+".png")
		if os.WriteFile(path, png, 0o644) == nil {
			b.t.Logf("%s's page at the failure: %s", b.name, path)
		}
	}
}

// artifacts returns the folder for screenshots: $PARLEY_ARTIFACTS, or
// out/screenshots in the repository.
func artifacts(t testing.TB) string {
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "out", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// poll waits until the JavaScript expression is truthy.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))
}

func (b *browser) register(username string) {
	b.t.Helper()
	b.run("register",
		chromedp.SendKeys(`#register-username`, username),
		chromedp.Click(`#register-submit`),
		chromedp.WaitVisible(`#new-conversation`),
		chromedp.WaitVisible(`#connection[data-state="online"]`),
	)
}

// open opens the conversation with peer.
func (b *browser) open(peer string) {
	b.t.Helper()
	b.run("open "+peer, chromedp.Click(`#new-conversation`), poll(`document.activeElement?.id === "new-conversation"`),
		chromedp.SendKeys(`#new-conversation`, peer+kb.Enter), chromedp.WaitVisible(`#composer`), chromedp.WaitEnabled(`#composer`))
}

// send types text in the composer and presses Enter. The composer may be
// re-rendered just as typing starts (a conversation being opened), which
// can lose keys: it checks what arrived before sending.
func (b *browser) send(text string) {
	b.t.Helper()
	for try := 0; ; try++ {
		b.run("clear", chromedp.WaitEnabled(`#composer`))
		get(b, "clear", chromedp.Evaluate[bool](`(e => { e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})); return true })(document.querySelector("#composer"))`))
		b.run("type", chromedp.SendKeys(`#composer`, text))
		if get(b, "typed", chromedp.Value(`#composer`)) == text {
			break
		}
		if try == 2 {
			b.t.Fatalf("%s: typing %q into the composer keeps losing keys", b.name, text)
		}
	}
	b.run("send", chromedp.SendKeys(`#composer`, kb.Enter))
}

// openListed opens the conversation with peer from the list, once it is
// there.
func (b *browser) openListed(peer string) {
	b.t.Helper()
	sel := fmt.Sprintf(`.conversation[data-peer=%q]`, peer)
	b.run("open "+peer, chromedp.WaitVisible(sel), chromedp.Click(sel), chromedp.WaitVisible(`#composer`))
}

// sentOrDelivered matches an outgoing message the server has.
const sentOrDelivered = `.message[data-outgoing="true"][data-state="sent"], .message[data-outgoing="true"][data-state="delivered"]`

// closeDialog closes the open dialog with its close button.
func (b *browser) closeDialog() {
	b.t.Helper()
	b.run("close the dialog", chromedp.WaitVisible(`dialog[open] button[aria-label="Close"]`))
	// A DOM click: the dialog's layout may change under a mouse click (its
	// text changes as the verification is saved).
	get(b, "close the dialog", chromedp.Evaluate[bool](`(document.querySelector('dialog[open] button[aria-label="Close"]').click(), true)`))
	b.run("dialog closed", chromedp.WaitNotPresent(`dialog[open]`),
		// The dialog hands the focus back to what opened it; typing
		// before that could go to the wrong element.
		poll(`document.activeElement && document.activeElement !== document.body`))
}

// waitText waits until the open conversation shows a message with text.
func (b *browser) waitText(text string) {
	b.t.Helper()
	q, _ := json.Marshal(text)
	b.run("wait for "+text, poll(fmt.Sprintf(
		`[...document.querySelectorAll('.message .text')].some(e => e.textContent === %s)`, q)))
}

// texts returns the texts of the open conversation, notices left out.
func (b *browser) texts() []string {
	b.t.Helper()
	return get(b, "read texts", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('.message:not(.notice) .text')].map(e => e.textContent)`))
}

// screenshot saves the page as NAME.png among the test artifacts.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := artifacts(b.t)
	b.run("settle", chromedp.Sleep(300*time.Millisecond))
	png := get(b, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// darkMode makes the page see prefers-color-scheme: dark.
var darkMode = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
	})
	return err
})

func TestBrowserChat(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerWeb(t, webFiles(t))
	aliceProfile, bobProfile := t.TempDir(), t.TempDir()
	alice := openBrowser(t, "alice", aliceProfile, srv.url())
	alice.screenshot("register")
	alice.register("alice")
	bob := openBrowser(t, "bob", bobProfile, srv.url())
	bob.register("bob")

	// Alice starts the conversation; bob sees it in his list, unread.
	alice.open("bob")
	alice.send("hello bob, from alice's browser")
	bob.run("unread badge", chromedp.WaitVisible(`.conversation[data-peer="alice"] .unread`))
	unread := get(bob, "read badge", chromedp.Text(`.conversation[data-peer="alice"] .unread`))
	if strings.TrimSpace(unread) != "1" {
		t.Errorf("bob's unread count for alice: %q, want 1", unread)
	}
	bob.screenshot("conversation-list")
	bob.openListed("alice")
	bob.waitText("hello bob, from alice's browser")
	bob.send("hi alice, bob here")
	alice.waitText("hi alice, bob here")
	// Bob's device stored it: alice's message shows delivered.
	alice.run("delivered", chromedp.WaitVisible(`.message[data-outgoing="true"][data-state="delivered"]`))
	alice.screenshot("conversation")

	// Both see the same safety number, and alice marks bob verified.
	digits := func(b *browser) string {
		b.run("safety number", chromedp.Click(`#safety-number-button`), chromedp.WaitVisible(`#safety-digits`))
		return strings.Join(strings.Fields(get(b, "digits", chromedp.Text(`#safety-digits`))), "")
	}
	da := digits(alice)
	alice.screenshot("safety-number")
	db := digits(bob)
	if da != db || len(da) != 60 {
		t.Errorf("safety numbers differ: alice %q, bob %q", da, db)
	}
	alice.run("verify", chromedp.Click(`#verify-toggle`))
	alice.closeDialog()
	alice.run("verified mark", chromedp.WaitVisible(`.conversation[data-peer="bob"] .verified-mark`))

	// Bob closes his browser; alice writes twice; bob comes back and finds both.
	bob.close()
	alice.send("while you were away 1")
	alice.send("while you were away 2")
	alice.run("sent while bob is away", poll(`[...document.querySelectorAll('.message[data-outgoing="true"]')].filter(e => e.dataset.state === 'sent' || e.dataset.state === 'delivered').length >= 3`))
	bob = openBrowser(t, "bob again", bobProfile, srv.url())
	bob.openListed("alice")
	bob.waitText("while you were away 2")
	want := []string{"hello bob, from alice's browser", "hi alice, bob here", "while you were away 1", "while you were away 2"}
	if got := bob.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("bob's history after reopening:\n got %q\nwant %q", got, want)
	}

	// A reload keeps history and sessions.
	alice.run("reload", chromedp.Reload(), chromedp.WaitVisible(`body[data-ready="true"]`))
	alice.openListed("bob")
	alice.waitText("while you were away 2")
	alice.send("after a reload")
	bob.waitText("after a reload")
	bob.send("still here")
	alice.waitText("still here")

	// A second tab of alice's profile does not run a second client.
	tab, cancel := chromedp.NewContext(alice.ctx)
	defer cancel()
	tctx, tcancel := context.WithTimeout(tab, time.Minute)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(srv.url()), chromedp.WaitVisible(`#locked`)); err != nil {
		t.Errorf("a second tab: %v", err)
	}

	// Phone-sized and dark.
	bob.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)), darkMode)
	bob.screenshot("phone-dark-conversation")

	// None of it is readable on the server.
	srv.stop()
	for _, text := range append(want, "after a reload", "still here") {
		if files := filesContaining(t, srv.dir, text); len(files) != 0 {
			t.Errorf("the server's data holds the plaintext %q in %v", text, files)
		}
		if strings.Contains(srv.logs.String(), text) {
			t.Errorf("the server's log holds the plaintext %q", text)
		}
	}
}

// TestBrowserAndCLI: a message from the command-line client reaches the
// browser, the reply reaches the command line, and both compute the same
// safety number.
func TestBrowserAndCLI(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerWeb(t, webFiles(t))
	carol := register(t, srv.url(), "carol")
	alice := openBrowser(t, "alice", t.TempDir(), srv.url())
	alice.register("alice")

	carol.must("send", "alice", "hello from the command line")
	alice.openListed("carol")
	alice.waitText("hello from the command line")
	alice.send("hello from the browser")
	alice.run("sent", chromedp.WaitVisible(sentOrDelivered))
	if got := carol.must("recv", "--wait", "1s"); !strings.Contains(got, "alice: hello from the browser") {
		t.Errorf("carol's recv: %q", got)
	}
	alice.run("safety number", chromedp.Click(`#safety-number-button`), chromedp.WaitVisible(`#safety-digits`))
	d := get(alice, "digits", chromedp.Text(`#safety-digits`))
	if cli := safetyDigits(t, carol.must("safety-number", "alice")); cli != strings.Join(strings.Fields(d), "") {
		t.Errorf("safety numbers differ: CLI %q, browser %q", cli, d)
	}
	alice.closeDialog()

	// A message to nobody fails with the reason and a retry; once dave
	// exists, the retry delivers it.
	alice.open("dave")
	alice.send("are you there, dave?")
	alice.run("failed", chromedp.WaitVisible(`.message[data-state="failed"] .retry`))
	if reason := get(alice, "reason", chromedp.Text(`.message[data-state="failed"]`)); !strings.Contains(reason, "no user named dave") {
		t.Errorf("the failed message says %q", reason)
	}
	dave := register(t, srv.url(), "dave")
	alice.run("retry", chromedp.Click(`.message[data-state="failed"] .retry`),
		chromedp.WaitVisible(sentOrDelivered))
	if got := dave.must("recv", "--wait", "1s"); !strings.Contains(got, "alice: are you there, dave?") {
		t.Errorf("dave's recv: %q", got)
	}
}

// BenchmarkWebClient measures the web client with a history of 1,000
// messages: the time from opening the page to an interactive conversation
// list, the time to open the 1,000-message conversation, and the memory of
// the tab (the renderer process's RSS, the JavaScript heap, and what the Go
// runtime took). Each iteration restarts the browser on the same profile.
func BenchmarkWebClient(b *testing.B) {
	chromiumPath(b)
	const history = 1000
	ctx := context.Background()
	files := webFiles(b)
	srv := startServerWeb(b, files)
	profile := b.TempDir()
	alice := openBrowser(b, "alice", profile, srv.url())
	alice.register("alice")
	carol, stop := crashClient(b, ctx, srv.url(), "carol")
	defer stop()
	for i := range history {
		if _, err := carol.Send(ctx, "alice", fmt.Sprintf("message %d of a long history, long enough to wrap on a phone screen", i+1)); err != nil {
			b.Fatal(err)
		}
	}
	alice.run("receive the history", chromedp.Poll[chromedp.Void](
		fmt.Sprintf(`document.querySelector('.conversation[data-peer="carol"] .unread')?.textContent === '%d'`, history),
		chromedp.WithPollingTimeout(0)))
	alice.close()

	var toList, toHistory, rss, jsHeap, goSys float64
	for b.Loop() {
		br := openBrowser(b, "alice", profile, srv.url()) // returns once the list is interactive
		toList += get(br, "time to the list", chromedp.Evaluate[float64](`performance.now()`))
		start := time.Now()
		br.run("open the history", chromedp.Click(`.conversation[data-peer="carol"]`),
			poll(fmt.Sprintf(`document.querySelectorAll('.message').length >= %d`, history)))
		toHistory += float64(time.Since(start).Milliseconds())
		mem := get(br, "memory", chromedp.Evaluate[map[string]float64](
			`({js: performance.memory ? performance.memory.usedJSHeapSize : 0, go: parley.stats().go_sys_bytes})`))
		jsHeap += mem["js"]
		goSys += mem["go"]
		rss += rendererRSS(b, br)
		br.close()
	}
	n := float64(b.N)
	b.ReportMetric(toList/n, "ms-to-list")
	b.ReportMetric(toHistory/n, "ms-to-history")
	b.ReportMetric(rss/n/(1<<20), "renderer-MiB")
	b.ReportMetric(jsHeap/n/(1<<20), "js-heap-MiB")
	b.ReportMetric(goSys/n/(1<<20), "go-sys-MiB")
	wasm, _ := fs.ReadFile(files, "parley.wasm")
	b.ReportMetric(float64(len(wasm))/(1<<20), "wasm-MiB")
	b.ReportMetric(0, "ns/op")
}

// rendererRSS returns the resident memory of the tab's renderer process,
// in bytes (0 if it cannot be read).
func rendererRSS(b testing.TB, br *browser) float64 {
	b.Helper()
	info, err := chromedp.CallBrowser(br.ctx, systeminfo.GetProcessInfo, cdp.Empty{})
	if err != nil {
		b.Logf("process info: %v", err)
		return 0
	}
	var total float64
	for _, p := range info.ProcessInfo {
		if p.Type != "renderer" {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.ID))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var v float64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), &v)
				total += v * 1024
			}
		}
	}
	return total
}

// tabTo presses Tab until the element matching sel has the focus.
func (b *browser) tabTo(sel string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	for range 40 {
		if get(b, "focus", chromedp.Evaluate[bool](fmt.Sprintf(`!!document.activeElement?.matches(%s)`, q))) {
			return
		}
		b.run("tab", chromedp.KeyEvent(kb.Tab))
	}
	b.t.Fatalf("%s: Tab never reaches %s", b.name, sel)
}

// TestBrowserKeyboardOnly: registering, starting a conversation, sending
// and looking at the safety number all work with the keyboard alone.
func TestBrowserKeyboardOnly(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerWeb(t, webFiles(t))
	bob := register(t, srv.url(), "bob")
	alice := openBrowser(t, "alice", t.TempDir(), srv.url())

	alice.tabTo(`#register-username`)
	alice.run("type a name", chromedp.KeyEvent("alice"+kb.Enter), chromedp.WaitVisible(`#connection[data-state="online"]`))
	alice.tabTo(`#new-conversation`)
	alice.run("open bob", chromedp.KeyEvent("bob"+kb.Enter), chromedp.WaitVisible(`#composer`))
	alice.tabTo(`#composer`)
	alice.run("write", chromedp.KeyEvent("typed without a mouse"+kb.Enter),
		chromedp.WaitVisible(sentOrDelivered))
	if got := bob.must("recv", "--wait", "1s"); !strings.Contains(got, "alice: typed without a mouse") {
		t.Errorf("bob's recv: %q", got)
	}
	alice.tabTo(`#safety-number-button`)
	alice.run("safety number", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`#safety-digits`),
		chromedp.KeyEvent(kb.Escape), chromedp.WaitNotPresent(`dialog[open]`))
}

// TestBrowserIdentityChange: when a contact's identity key changes (carol
// reinstalls: the operator removed her old account and she registered
// again), the browser warns in the conversation and her verified mark goes.
func TestBrowserIdentityChange(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	srv := startServerWeb(t, webFiles(t))
	carol := register(t, srv.url(), "carol")
	alice := openBrowser(t, "alice", t.TempDir(), srv.url())
	alice.register("alice")
	carol.must("send", "alice", "before")
	alice.openListed("carol")
	alice.waitText("before")
	alice.run("verify carol", chromedp.Click(`#safety-number-button`), chromedp.WaitVisible(`#safety-digits`), chromedp.Click(`#verify-toggle`))
	alice.closeDialog()
	alice.run("verified", chromedp.WaitVisible(`.conversation[data-peer="carol"] .verified-mark`))

	srv.stop()
	db, err := sql.Open("sqlite", filepath.Join(srv.dir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"prekeys", "devices", "accounts"} {
		if _, err := db.Exec("DELETE FROM " + table + " WHERE user = 'carol'"); err != nil {
			t.Fatalf("removing carol from %s: %v", table, err)
		}
	}
	db.Close()
	srv.start()
	carol = register(t, srv.url(), "carol") // new keys
	carol.must("send", "alice", "after reinstalling")
	alice.waitText("after reinstalling")
	alice.run("warning", chromedp.WaitVisible(`#identity-warning`), chromedp.WaitNotPresent(`.conversation[data-peer="carol"] .verified-mark`),
		poll(`[...document.querySelectorAll('.message.notice')].some(e => e.textContent.includes('safety number with carol changed'))`))
	alice.screenshot("identity-warning")
	// Looking at the new number and marking it verified clears the warning.
	alice.run("verify again", chromedp.Click(`#safety-number-button`), chromedp.WaitVisible(`#safety-digits`), chromedp.Click(`#verify-toggle`))
	alice.closeDialog()
	alice.run("no warning", chromedp.WaitNotPresent(`#identity-warning`), chromedp.WaitVisible(`.conversation[data-peer="carol"] .verified-mark`))
}
