package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client/cli"
)

func TestRegisterSendReceive(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	if got := alice.must("whoami"); got != "alice (device 1) on "+srv.url()+"\n" {
		t.Errorf("whoami: %q", got)
	}

	alice.must("send", "bob", "hello")
	if got := bob.must("recv", "--wait", "100ms"); got != "alice: hello\n" {
		t.Errorf("bob's recv: %q", got)
	}
	if got := bob.must("recv"); got != "" {
		t.Errorf("second recv shows again: %q", got)
	}

	bob.must("send", "alice", "hi", "alice")
	bob.must("send", "alice", "how are you?")
	out := alice.must("recv", "--json")
	var got []map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("recv --json: %v in %q", err, out)
		}
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("recv --json gave %d objects: %q", len(got), out)
	}
	for i, want := range []string{"hi alice", "how are you?"} {
		m := got[i]
		if m["from"] != "bob" || m["text"] != want {
			t.Errorf("message %d: %v", i, m)
		}
		if id, _ := m["id"].(string); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("message %d: id %q", i, id)
		}
		if at, err := time.Parse(time.RFC3339Nano, m["sent_at"].(string)); err != nil || time.Since(at) > time.Minute {
			t.Errorf("message %d: sent_at %v (%v)", i, m["sent_at"], err)
		}
	}

	// Both see the same safety number: 60 digits in groups of 5, and a QR code.
	sa, sb := alice.must("safety-number", "bob"), bob.must("safety-number", "alice")
	da, db := safetyDigits(t, sa), safetyDigits(t, sb)
	if da != db {
		t.Errorf("safety numbers differ:\n%s\n%s", sa, sb)
	}
	if !strings.Contains(sa, "█") {
		t.Errorf("no QR code:\n%s", sa)
	}

	if code, _, errOut := alice.run("two\nlines\n", "send", "bob", "-"); code != 0 {
		t.Fatalf("send from stdin: %d %s", code, errOut)
	}
	if got := bob.must("recv", "--json"); !strings.Contains(got, `"text":"two\nlines"`) {
		t.Errorf("recv --json of a two-line message: %q", got)
	}

	code, _, errOut := alice.run("", "send", "carol", "anyone?")
	if code != 1 || !strings.Contains(errOut, "no user named carol on this server") {
		t.Errorf("send to nobody: %d %q", code, errOut)
	}
	code, _, errOut = newUser(t, "alice2").run("", "register", "--server", srv.url(), "Alice")
	if code != 1 || !strings.Contains(errOut, "the name alice is taken") {
		t.Errorf("taken name: %d %q", code, errOut)
	}
}

var groups = regexp.MustCompile(`(?m)^    (\d{5}) (\d{5}) (\d{5}) (\d{5})$`)

func safetyDigits(t *testing.T, out string) string {
	t.Helper()
	m := groups.FindAllStringSubmatch(out, -1)
	if len(m) != 3 {
		t.Fatalf("safety number output:\n%s", out)
	}
	var d string
	for _, l := range m {
		d += strings.Join(l[1:], "")
	}
	return d
}

func TestOfflineDeliveryAcrossServerRestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	alice.must("send", "bob", "sent while bob was away")
	alice.must("send", "bob", "and another")
	srv.restart() // Close, then Open on the same data folder
	if got := bob.must("recv", "--wait", "100ms"); got != "alice: sent while bob was away\nalice: and another\n" {
		t.Errorf("bob's recv after a server restart: %q", got)
	}
	bob.must("send", "alice", "back")
	srv.restart()
	if got := alice.must("recv"); got != "bob: back\n" {
		t.Errorf("alice's recv: %q", got)
	}
}

func TestRedeliveryShownOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	px := startProxy(t, srv.url())
	alice, bob := register(t, srv.url(), "alice"), register(t, px.url(), "bob")
	alice.must("send", "bob", "only once")
	px.dropDeliverAcks.Store(1) // bob stores the message, but the server never hears his ack
	if got := bob.must("recv"); got != "alice: only once\n" {
		t.Fatalf("first recv: %q", got)
	}
	if got := bob.must("recv"); got != "" { // the server delivers it again
		t.Errorf("redelivered message shown again: %q", got)
	}
	if n := px.delivers.Load(); n != 2 {
		t.Errorf("the server delivered %d times, want 2 (the test lost no ack?)", n)
	}
	// (The server may deliver it a third time if the second ack is still
	// being written when bob reconnects: harmless, and not shown either.)
	if got := bob.must("recv"); got != "" {
		t.Errorf("third recv: %q", got)
	}
}

// TestRegisterRetried: a registration that the network broke (the server
// stopped waiting for its upload) is tried again, and resumes.
func TestRegisterRetried(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	px := startProxy(t, srv.url())
	px.cutRegisters.Store(2)
	alice := newUser(t, "alice")
	code, out, errOut := alice.run("", "register", "--server", px.url(), "alice")
	if code != 0 || strings.Count(errOut, "trying again") != 2 {
		t.Fatalf("register through two cut connections: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	bob := register(t, srv.url(), "bob")
	bob.must("send", "alice", "welcome")
	if got := alice.must("recv", "--wait", "5s"); got != "bob: welcome\n" {
		t.Errorf("alice's recv: %q", got)
	}
	// A third cut is one too many: the error says what happened.
	px.cutRegisters.Store(3)
	code, _, errOut = newUser(t, "carol").run("", "register", "--server", px.url(), "carol")
	if code != 1 || !strings.Contains(errOut, "authentication timed out") {
		t.Errorf("register through three cut connections: exit %d, stderr %q", code, errOut)
	}
}

func TestUnacknowledgedSendRetried(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	px := startProxy(t, srv.url())
	alice, bob := register(t, px.url(), "alice"), register(t, srv.url(), "bob")

	// The server stores the message but its answer is lost.
	px.dropSendResults.Store(1)
	code, _, errOut := alice.run("", "send", "--timeout", "2s", "bob", "answer lost")
	if code != 1 || !strings.Contains(errOut, "stays in the outbox") {
		t.Fatalf("send with a lost answer: %d %q", code, errOut)
	}
	// The server is down: the message waits in the outbox.
	srv.stop()
	code, _, errOut = alice.run("", "send", "bob", "server down")
	if code != 1 || !strings.Contains(errOut, "stays in the outbox") {
		t.Fatalf("send with the server down: %d %q", code, errOut)
	}
	srv.start()
	// A new process sends the outbox first, oldest first.
	alice.must("send", "bob", "third")
	if got := bob.must("recv"); got != "alice: answer lost\nalice: server down\nalice: third\n" {
		t.Errorf("bob's recv: %q", got)
	}
}

func TestChat(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	bob.must("send", "alice", "waiting for you")

	in, inw := io.Pipe()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(t.Context(), []string{"--home", alice.home, "chat", "bob"}, in, &out, &errOut)
	}()
	waitFor(t, &out, "bob: waiting for you\n")
	io.WriteString(inw, "hello bob\n\n")
	waitFor(t, &out, "") // nothing to wait for; give the line a moment
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got += bob.must("recv"); got != "" {
			break
		}
	}
	if got != "alice: hello bob\n" {
		t.Errorf("bob got %q", got)
	}
	bob.must("send", "alice", "live reply")
	waitFor(t, &out, "bob: live reply\n")
	// Another parley on alice's folder takes the connection for a moment;
	// the chat gets it back.
	alice.must("send", "bob", "from another terminal")
	bob.must("send", "alice", "after the takeover")
	waitFor(t, &out, "bob: after the takeover\n")
	io.WriteString(inw, "bye\n")
	inw.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("chat exit %d: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chat did not end after its input")
	}
	if got := bob.must("recv"); got != "alice: from another terminal\nalice: bye\n" {
		t.Errorf("bob's last recv: %q", got)
	}
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.String(), s) {
			return
		}
	}
	t.Fatalf("waited for %q; have %q", s, b.String())
}

// TestServerNeverSeesPlaintext puts known text through the whole system and
// then looks for it in everything the server wrote: its data folder and its
// logs.
func TestServerNeverSeesPlaintext(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	marker := func() string {
		var b [12]byte
		rand.Read(b[:])
		return "plaintext-marker-" + hex.EncodeToString(b[:])
	}
	m1, m2 := marker(), marker()
	alice.must("send", "bob", m1) // a PreKeySignalMessage
	if got := bob.must("recv"); got != "alice: "+m1+"\n" {
		t.Fatalf("bob's recv: %q", got)
	}
	bob.must("send", "alice", m2) // a SignalMessage
	alice.must("send", "bob", m1+" again")
	srv.stop() // flush and close everything the server writes

	for _, m := range []string{m1, m2} {
		if strings.Contains(srv.logs.String(), m) {
			t.Errorf("the server's log holds the plaintext %q", m)
		}
		if files := filesContaining(t, srv.dir, m); len(files) != 0 {
			t.Errorf("the server's data holds the plaintext %q in %v", m, files)
		}
	}
	if srv.logs.String() == "" {
		t.Errorf("the server logged nothing: was the log captured?")
	}
	// The search does find plaintext where it is: in the clients' own history.
	if files := filesContaining(t, bob.home, m1); len(files) == 0 {
		t.Errorf("the marker is not in bob's history either: the search is broken")
	}
	if files := filesContaining(t, alice.home, m2); len(files) != 0 {
		t.Logf("alice has %q already? %v", m2, files) // not received yet: only in bob's
	}
	if files := filesContaining(t, bob.home, m2); len(files) == 0 {
		t.Errorf("bob's sent message is not in his history")
	}
}

func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestReadableErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := register(t, srv.url(), "alice")
	// The server loses its data: alice's device is unknown to it.
	srv.stop()
	srv.dir = t.TempDir()
	srv.start()
	code, _, errOut := alice.run("", "recv")
	if code != 1 || !strings.Contains(errOut, "the server did not accept this device") {
		t.Errorf("recv on a reset server: %d %q", code, errOut)
	}
	// No server at all.
	srv.stop()
	code, _, errOut = alice.run("", "recv")
	if code != 1 || !strings.Contains(errOut, "cannot reach the server at "+srv.url()) {
		t.Errorf("recv without a server: %d %q", code, errOut)
	}
	code, _, errOut = alice.run("", "safety-number", "bob")
	if code != 1 || !strings.Contains(errOut, "cannot reach the server") {
		t.Errorf("safety-number without a server: %d %q", code, errOut)
	}
}
