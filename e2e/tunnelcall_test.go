package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var jitterLine = regexp.MustCompile(`(?m)^jitter buffer: played (\d+), repaired (\d+), concealed (\d+), late (\d+), longest gap ([^,]+), delay `)

// TestTunnelCall: alice calls bob through parleyd's call tunnel (tier 2):
// no WebRTC; both record what the other played through their jitter
// buffers, and the traces pair up as for a WebRTC call. The carrier is a
// WebSocket, or WebTransport when the server offers it (the clients race
// both and prefer WebTransport).
func TestTunnelCall(t *testing.T) {
	t.Parallel()
	for _, carrier := range []string{"websocket", "webtransport"} {
		t.Run(carrier, func(t *testing.T) {
			t.Parallel()
			srv := launch(t, &parleyd{t: t, dir: t.TempDir(), addr: "127.0.0.1:0", wt: carrier == "webtransport"})
			tunnelCall(t, srv, carrier)
		})
	}
}

func tunnelCall(t *testing.T, srv *parleyd, carrier string) {
	alice, bob := register(t, srv.url(), "alice"), register(t, srv.url(), "bob")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	const frames = 100
	writeOgg(t, file("speech.ogg"), 'a', frames) // paces the call; the lower version is sent
	reply := writeOgg(t, file("reply.ogg"), 'b', frames)
	lower := writeOgg(t, file("speech-low.ogg"), 'c', frames)

	bobOut, bobDone := bob.start("answer", "--send", file("reply.ogg"), "--record", file("bob-heard.ogg"), "--wait", "30s", "--trace", file("bob.trace"))
	aliceOut, aliceDone := alice.start("call", "bob", "--path", "tunnel", "--send", file("speech.ogg"), "--send-lower", file("speech-low.ogg"), "--record", file("alice-heard.ogg"), "--duration", "3s", "--trace", file("alice.trace"))
	code, bobCode := <-aliceDone, <-bobDone
	out, bout := aliceOut.String(), bobOut.String()
	t.Logf("alice:\n%s", out)
	t.Logf("bob:\n%s", bout)
	if code != 0 || bobCode != 0 {
		t.Fatalf("call: exit %d, answer: exit %d", code, bobCode)
	}
	for who, o := range map[string]string{"alice": out, "bob": bout} {
		if !regexp.MustCompile(`(?m)^connected in \S+ \(tunnel over ` + carrier + `\)$`).MatchString(o) {
			t.Errorf("%s's call did not say it went through the tunnel over %s", who, carrier)
		}
		m := jitterLine.FindStringSubmatch(o)
		if m == nil {
			t.Errorf("%s printed no jitter buffer report", who)
			continue
		}
		if played, _ := strconv.Atoi(m[1]); played*100 < frames*95 {
			t.Errorf("%s's jitter buffer played %d frames of %d", who, played, frames)
		}
	}
	if m := setupLine.FindStringSubmatch(out); m == nil {
		t.Errorf("call printed no set-up time")
	}
	checkRecording(t, file("alice-heard.ogg"), reply)
	checkRecording(t, file("bob-heard.ogg"), lower)
	checkTraces(t, file("alice.trace"), file("bob.trace"), frames)
	if tr, err := os.ReadFile(file("alice.trace")); err != nil || strings.Count(string(tr), `"version":1}`) < frames {
		t.Errorf("alice's trace does not say that %d frames came from the lower version (%v)", frames, err)
	}
}
