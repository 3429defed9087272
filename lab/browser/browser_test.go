package browser

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// skipOrFail skips the test saying why, or fails it under CI=true (where
// everything it needs is installed).
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestCall: two browsers on this machine call each other through a real
// parleyd; both connect, the callee hears speech (the recording has
// energy), and the statistics are filled in.
func TestCall(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		skipOrFail(t, "chromium not found (apt-get install chromium)")
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		skipOrFail(t, "espeak-ng not found (apt-get install espeak-ng)")
	}
	if _, err := os.Stat("../../web/dist/parley.wasm"); err != nil {
		skipOrFail(t, "web/dist/parley.wasm is missing: run make web (make test does) so that parleyd serves the web client")
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir, "github.com/parleychat/parley/cmd/parleyd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := exec.Command(filepath.Join(dir, "parleyd"), "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"),
		"--tls-self-signed", "--turn-listen", "127.0.0.1:0", "--relay-allow", "0.0.0.0/0")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	r := bufio.NewReader(stdout)
	url, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, r)
	url = strings.TrimSpace(url)

	mic := func(name, text string) string {
		wav := filepath.Join(dir, name+".wav")
		if out, err := exec.Command("espeak-ng", "-w", wav, text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v\n%s", err, out)
		}
		return wav
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ready := make(chan struct{})
	var wg sync.WaitGroup
	var bob Result
	var bobErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		bob, bobErr = Run(ctx, Options{Chromium: chromium, Profile: filepath.Join(dir, "bob"), URL: url, User: "bob",
			Wait: time.Minute, Duration: 4 * time.Second, Mic: mic("bob", "Hi, Bob here."), Record: filepath.Join(dir, "bob-heard.wav"),
			Ready: func() { close(ready) }, Log: testLog{t}})
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("bob did not get ready")
	}
	alice, err := Run(ctx, Options{Chromium: chromium, Profile: filepath.Join(dir, "alice"), URL: url, User: "alice", Peer: "bob",
		Duration: 4 * time.Second, Mic: mic("alice", "Hello Bob, this is Alice speaking through the lab's browser."), Log: testLog{t}})
	wg.Wait()
	if err != nil || bobErr != nil {
		t.Fatalf("alice: %v; bob: %v", err, bobErr)
	}
	t.Logf("alice: %+v", alice)
	t.Logf("bob:   %+v", bob)
	for who, r := range map[string]Result{"alice": alice, "bob": bob} {
		if !r.Connected || r.Outcome != "completed" || r.Path == "" || r.SetupMs <= 0 || r.PacketsReceived < 100 || r.ConcealedPct > 10 || r.Seconds < 3 {
			t.Errorf("%s: %+v", who, r)
		}
	}
	// What bob heard: about 4 s at 48 kHz, with speech in it.
	b, err := os.ReadFile(filepath.Join(dir, "bob-heard.wav"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44+2*48000*3 || string(b[:4]) != "RIFF" || binary.LittleEndian.Uint32(b[24:]) != 48000 {
		t.Fatalf("bob's recording: %d bytes", len(b))
	}
	var sum float64
	for i := 44; i+1 < len(b); i += 2 {
		x := float64(int16(binary.LittleEndian.Uint16(b[i:]))) / 32768
		sum += x * x
	}
	if rms := math.Sqrt(sum / float64((len(b)-44)/2)); rms < 0.01 {
		t.Errorf("bob's recording is (nearly) silent: RMS %.4f", rms)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
