package call

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// speechOgg makes an Ogg Opus file of synthesized speech with espeak-ng and
// opusenc (Debian packages espeak-ng and opus-tools). Without them the test
// is skipped, or fails under CI=true.
func speechOgg(t *testing.T, text string) (ogg []byte, wavSeconds float64) {
	t.Helper()
	for _, tool := range []string{"espeak-ng", "opusenc"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " is not installed (Debian: apt-get install espeak-ng opus-tools); this test needs real speech"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	wav, oggPath := filepath.Join(dir, "speech.wav"), filepath.Join(dir, "speech.ogg")
	if out, err := exec.Command("espeak-ng", "-w", wav, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v\n%s", err, out)
	}
	if out, err := exec.Command("opusenc", "--quiet", wav, oggPath).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v\n%s", err, out)
	}
	st, err := os.Stat(wav)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(oggPath)
	if err != nil {
		t.Fatal(err)
	}
	return b, float64(st.Size()-44) / 2 / 22050 // espeak-ng writes 16-bit mono at 22050 Hz
}

// TestSpeech reads an opusenc file (many packets a page) and sends it
// through a call; the recording decodes with opusdec, if present.
func TestSpeech(t *testing.T) {
	t.Parallel()
	file, seconds := speechOgg(t, "Hello Bob. This is Alice, calling over Parley.")
	sent := readAll(t, file)
	var total time.Duration
	for _, p := range sent {
		d, _ := PacketDuration(p)
		total += d
	}
	if diff := total.Seconds() - seconds; diff < 0 || diff > 0.05 {
		t.Errorf("the packets last %v, the speech %.3fs", total, seconds)
	}

	n := &fakeNet{}
	alice := n.phone(t, "alice", 1, Config{})
	bob := n.phone(t, "bob", 1, Config{})
	var rec bytes.Buffer
	ac, err := alice.Dial(context.Background(), "bob", oggMedia(t, file, nil))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ring(t, bob).Accept(context.Background(), Media{Record: &rec})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(total + 5*time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s := bc.Stats(); ac.Stats().SendDone && s.Received >= len(sent) {
			break
		}
	}
	ac.Hangup(context.Background())
	as, _ := wait(t, ac)
	bs, _ := wait(t, bc)
	t.Logf("alice sent %d packets (%v), bob received %d, lost %d; set-up %v", as.Sent, total, bs.Received, bs.Lost, bs.Setup)
	checkRecording(t, "bob", rec.Bytes(), sent)

	if _, err := exec.LookPath("opusdec"); err == nil {
		dir := t.TempDir()
		in := filepath.Join(dir, "heard.ogg")
		if err := os.WriteFile(in, rec.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("opusdec", "--quiet", in, filepath.Join(dir, "heard.wav")).CombinedOutput(); err != nil {
			t.Errorf("opusdec cannot decode the recording: %v\n%s", err, out)
		}
	}
}
