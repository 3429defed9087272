package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/parleychat/parley/lab/measure"
	"github.com/parleychat/parley/lab/quality"
)

var (
	connectedLine = regexp.MustCompile(`(?m)^connected in (\S+) \(([^)]*)\)$`)
	setupLine     = regexp.MustCompile(`(?m)^set-up time: (\S+)$`)
)

// measureCall has a call b, both sending speech for cfg.CallDuration, and
// fills in the call's part of res.
func measureCall(ctx context.Context, cfg Config, a, b *user, dir string, sp *speech, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.CallDuration+3*time.Minute)
	defer cancel()
	file := func(name string) string { return filepath.Join(dir, name) }

	answer := b.command("answer", "--send", sp.bob, "--record", file("bob-heard.ogg"), "--trace", file("bob.trace"), "--wait", "2m")
	var bobOut lockedBuffer
	answer.Stdout, answer.Stderr = &bobOut, &bobOut
	if err := answer.Start(); err != nil {
		return err
	}
	bobDone := make(chan error, 1)
	go func() { bobDone <- answer.Wait() }()
	defer answer.Process.Kill()
	for !strings.Contains(bobOut.String(), "waiting for a call") {
		select {
		case err := <-bobDone:
			return fmt.Errorf("parley answer ended before the call (%v):\n%s", err, bobOut.String())
		case <-ctx.Done():
			return fmt.Errorf("parley answer is not waiting for a call:\n%s", bobOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}

	call := a.command("call", b.name, "--send", sp.alice, "--record", file("alice-heard.ogg"), "--trace", file("alice.trace"),
		"--duration", cfg.CallDuration.String(), "--ring", "60s")
	aliceOut, callErr := combined(ctx, call)
	select {
	case <-bobDone:
	case <-time.After(30 * time.Second):
		answer.Process.Kill()
		<-bobDone
	}
	os.WriteFile(file("alice.out"), aliceOut, 0o644)
	os.WriteFile(file("bob.out"), []byte(bobOut.String()), 0o644)

	m := connectedLine.FindSubmatch(aliceOut)
	if m == nil {
		res.Connected = false
		res.Error = lastLine(aliceOut)
		if callErr == nil {
			res.Error = "no connection reported"
		}
		return nil
	}
	res.Connected, res.Path = true, pathName(string(m[2]))
	if s := setupLine.FindSubmatch(aliceOut); s != nil {
		if d, err := time.ParseDuration(string(s[1])); err == nil {
			res.SetupMs = ms(d)
		}
	}
	if res.SetupMs == 0 {
		res.Error = "connected, but no audio arrived"
	}

	aSent, aRecv, err := readTrace(file("alice.trace"))
	if err != nil {
		return err
	}
	bSent, bRecv, err := readTrace(file("bob.trace"))
	if err != nil {
		return err
	}
	var worst *heard
	for _, d := range []struct {
		name         string
		sent, recv   []measure.Packet
		until        time.Time
		speech, work string
	}{
		{"alice→bob", aSent, bRecv, measure.End(bSent, bRecv), sp.alice, file("a2b")},
		{"bob→alice", bSent, aRecv, measure.End(aSent, aRecv), sp.bob, file("b2a")},
	} {
		h, err := listen(ctx, d.sent, d.recv, d.until, d.speech, d.work)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		h.direction = d.name
		if worst == nil || h.stoi < worst.stoi {
			worst = h
		}
	}
	p := worst.playout
	res.Direction = worst.direction
	res.FramesPlayedPct = p.PlayedPct
	if p.Sent > 0 {
		res.FramesLostPct = 100 * float64(p.Lost) / float64(p.Sent)
		res.FramesLatePct = 100 * float64(p.Late) / float64(p.Sent)
	}
	res.LongestGapMs = ms(p.LongestGap)
	res.AddedDelayMs = ms(p.Delay)
	res.CallSeconds = p.Duration.Seconds()
	res.STOI = worst.stoi
	res.BurstR = quality.BurstR(lostPattern(p.Heard))
	res.R, res.MOS = eModel(p, res.BurstR)
	return nil
}

func readTrace(path string) (sent, received []measure.Packet, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return measure.ReadTrace(f)
}

// heard is what one direction of a call sounded like to its listener.
type heard struct {
	direction string
	playout   measure.Playout
	stoi      float64
}

// listen models the listener of one direction and scores what it heard
// against what was sent, in work (a folder it creates).
func listen(ctx context.Context, sent, recv []measure.Packet, until time.Time, speech, work string) (*heard, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	p := measure.Analyze(sent, recv, measure.Options{Until: until})
	h := &heard{playout: p}
	if p.Sent == 0 {
		return h, nil
	}
	all := make([]bool, len(p.Heard))
	for i := range all {
		all[i] = true
	}
	ref, err := decode(ctx, speech, all, filepath.Join(work, "sent"))
	if err != nil {
		return nil, err
	}
	got, err := decode(ctx, speech, p.Heard, filepath.Join(work, "heard"))
	if err != nil {
		return nil, err
	}
	if h.stoi, err = quality.STOI(ref.samples, got.samples, ref.rate); err != nil {
		return nil, fmt.Errorf("STOI: %w", err)
	}
	return h, nil
}

type pcm struct {
	samples []float64
	rate    int
}

// decode writes name.ogg (the packets of speech that keep says) and
// decodes it with opusdec to name.wav at 16 kHz.
func decode(ctx context.Context, speech string, keep []bool, name string) (*pcm, error) {
	src, err := os.ReadFile(speech)
	if err != nil {
		return nil, err
	}
	var ogg bytes.Buffer
	if err := measure.PlayedOgg(bytes.NewReader(src), keep, &ogg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(name+".ogg", ogg.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "opusdec", "--quiet", "--rate", "16000", name+".ogg", name+".wav").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("opusdec: %v: %s", err, out)
	}
	f, err := os.Open(name + ".wav")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, rate, err := quality.ReadWAV(f)
	if err != nil {
		return nil, fmt.Errorf("%s.wav: %w", name, err)
	}
	return &pcm{s, rate}, nil
}

// lostPattern is the frames not heard.
func lostPattern(heard []bool) []bool {
	lost := make([]bool, len(heard))
	for i, h := range heard {
		lost[i] = !h
	}
	return lost
}

// pathName is the report's name of the path "parley call" printed.
func pathName(cli string) string {
	switch {
	case strings.HasPrefix(cli, "direct"):
		return "direct"
	case strings.HasPrefix(cli, "relay over "):
		return "TURN/" + strings.ToUpper(strings.TrimPrefix(cli, "relay over "))
	case cli == "the other side's relay":
		return "TURN (peer's)"
	case cli == "relay":
		return "TURN"
	}
	return cli
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
