package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/call"
	"github.com/parleychat/parley/client/cli"
)

// writeOgg writes an Ogg Opus file of n numbered 20 ms packets tagged tag,
// and returns the packets. Each is a CELT fullband frame (TOC 0xF8): any
// bytes after a TOC decode, so no encoder is needed.
func writeOgg(t *testing.T, path string, tag byte, n int) [][]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := call.NewOggWriter(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for i := range n {
		p := []byte{0xF8, 0xFF, 0xFE, tag, byte(i >> 8), byte(i)}
		pkts = append(pkts, p)
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return pkts
}

// checkRecording checks that the Ogg file at path holds at least 95% of
// sent, in order, and nothing else but concealed gaps.
func checkRecording(t *testing.T, path string, sent [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := call.NewOggReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	i, got := 0, 0
	for {
		p, err := r.ReadPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(p) == 1 { // a concealed gap
			continue
		}
		got++
		for i < len(sent) && !bytes.Equal(sent[i], p) {
			i++
		}
		if i == len(sent) {
			t.Fatalf("%s: packet %d (%x) out of order or never sent", path, got, p)
		}
		i++
	}
	if got*100 < len(sent)*95 {
		t.Errorf("%s holds %d of the %d packets sent", path, got, len(sent))
	}
}

var (
	setupLine   = regexp.MustCompile(`(?m)^set-up time: (\d+(?:\.\d+)?)(ms|µs|s)$`)
	packetsLine = regexp.MustCompile(`(?m)^packets: sent (\d+), received (\d+), lost (\d+)$`)
)

// start runs the parley command in the background; done gets its exit
// code, out its standard output and error.
func (u *user) start(args ...string) (out *syncBuffer, done <-chan int) {
	out = &syncBuffer{}
	d := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		d <- cli.Run(ctx, append([]string{"--home", u.home}, args...), strings.NewReader(""), out, out)
	}()
	return out, d
}

// answer runs "parley answer" with args in the background, as start
// does, once it waits for a call.
func (u *user) answer(args ...string) (out *syncBuffer, done <-chan int) {
	u.t.Helper()
	out, done = u.start(append([]string{"answer"}, args...)...)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "waiting for a call"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			u.t.Fatalf("%s is not waiting for a call:\n%s", u.name, out.String())
		}
	}
	return out, done
}

// TestCall: alice calls bob through a real parleyd; each plays a 2 s file
// and records the other's.
func TestCall(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob, carol := register(t, srv.url(), "alice"), register(t, srv.url(), "bob"), register(t, srv.url(), "carol")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	const frames = 100
	speech := writeOgg(t, file("speech.ogg"), 'a', frames)
	reply := writeOgg(t, file("reply.ogg"), 'b', frames)

	var wg sync.WaitGroup
	var bobCode int
	var bobOut, bobErr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		bobCode, bobOut, bobErr = bob.run("", "answer", "--send", file("reply.ogg"), "--record", file("bob-heard.ogg"), "--wait", "30s", "--trace", file("bob.trace"))
	}()
	aliceOut, aliceDone := alice.start("call", "bob", "--send", file("speech.ogg"), "--record", file("alice-heard.ogg"), "--duration", "2.5s", "--trace", file("alice.trace"))

	// While they talk, carol's call gets "busy".
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(aliceOut.String(), "set-up time:"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("alice's call did not connect:\n%s", aliceOut.String())
		}
	}
	if code, _, errOut := carol.run("", "call", "bob"); code != 1 || errOut != "parley call: bob is busy\n" {
		t.Errorf("carol's call to bob, busy: exit %d, stderr %q", code, errOut)
	}

	code := <-aliceDone
	wg.Wait()
	out := aliceOut.String() // stdout and stderr
	t.Logf("alice:\n%s", out)
	t.Logf("bob:\n%s%s", bobOut, bobErr)
	if code != 0 || bobCode != 0 {
		t.Fatalf("call: exit %d, answer: exit %d", code, bobCode)
	}
	if m := setupLine.FindStringSubmatch(out); m == nil {
		t.Errorf("call printed no set-up time")
	}
	m := packetsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("call printed no packet counts")
	}
	if sent, _ := strconv.Atoi(m[1]); sent != frames {
		t.Errorf("alice sent %s packets, want %d", m[1], frames)
	}
	if recv, _ := strconv.Atoi(m[2]); recv*100 < frames*95 {
		t.Errorf("alice received %s packets of %d", m[2], frames)
	}
	if !regexp.MustCompile(`(?m)^alice is calling \(device 1\); answering$`).MatchString(bobOut) ||
		!regexp.MustCompile(`(?m)^alice hung up after \d+\.\ds$`).MatchString(bobOut) {
		t.Errorf("answer's output:\n%s", bobOut)
	}
	checkRecording(t, file("alice-heard.ogg"), reply)
	checkRecording(t, file("bob-heard.ogg"), speech)
	checkTraces(t, file("alice.trace"), file("bob.trace"), frames)
}

// checkTraces checks the --trace files of a call: the caller's lists each
// packet sent once, the callee's lists those it received, which match the
// sent ones and took a plausible time.
func checkTraces(t *testing.T, caller, callee string, frames int) {
	t.Helper()
	type line struct {
		Dir  string `json:"dir"`
		Seq  uint16 `json:"seq"`
		TS   uint32 `json:"ts"`
		Size int    `json:"size"`
		At   int64  `json:"at_us"`
	}
	read := func(path, dir string) map[uint16]line {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint16]line{}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var x line
			if err := json.Unmarshal([]byte(l), &x); err != nil {
				t.Fatalf("%s: %q: %v", path, l, err)
			}
			if x.Dir == dir {
				out[x.Seq] = x
			}
		}
		return out
	}
	sent, got := read(caller, "out"), read(callee, "in")
	if len(sent) != frames || len(got)*100 < frames*95 {
		t.Fatalf("traces: %d packets sent, %d received, of %d", len(sent), len(got), frames)
	}
	for seq, r := range got {
		s, ok := sent[seq]
		if d := r.At - s.At; !ok || s.TS != r.TS || s.Size != r.Size || d < 0 || d > 1e6 {
			t.Errorf("packet %d: sent %+v, received %+v", seq, s, r)
		}
	}
}

func TestCallFailures(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	for _, tc := range []struct {
		u    *user
		args []string
		code int
		want string
	}{
		{alice, []string{"call", "carol"}, 1, "no user named carol on this server"},
		{alice, []string{"call", "bob", "--ring", "1s"}, 1, "no answer from bob within 1s"},
		{bob, []string{"answer", "--wait", "500ms"}, 1, "no call within 500ms"},
		{alice, []string{"call", "bob", "--relay-only"}, 1, "relay only needs a TURN server"},
		{alice, []string{"call", "bob", "--send", "/nonexistent.ogg"}, 1, "cannot open the file to send"},
		{alice, []string{"call", "alice"}, 2, "you cannot call yourself"},
		{alice, []string{"call"}, 2, "want one USER"},
	} {
		code, _, errOut := tc.u.run("", tc.args...)
		if code != tc.code || !regexp.MustCompile(regexp.QuoteMeta(tc.want)).MatchString(errOut) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
