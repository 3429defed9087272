package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/lab/measure"
	"github.com/parleychat/parley/lab/quality"
)

var (
	connectedLine = regexp.MustCompile(`(?m)^connected in (\S+) \(([^)]*)\)$`)
	setupLine     = regexp.MustCompile(`(?m)^set-up time: (\S+)$`)
	jitterLine    = regexp.MustCompile(`(?m)^jitter buffer: played (\d+), repaired (\d+), concealed (\d+), late \d+, longest gap (\S+), delay (\S+) \(at most (\S+)\)$`)
	senderLine    = regexp.MustCompile(`(?m)^sender: redundancy (\d+), (\d+) frames a packet, bitrate it would choose (\d+) bit/s; (\d+) carrier switches$`)
)

// measureCall has a call b, both sending speech for cfg.CallDuration, and
// fills in the call's part of res; flags go to parley call and answer
// (--path, --carrier).
func measureCall(ctx context.Context, cfg Config, a, b *user, dir string, sp *speech, res *Result, flags ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.CallDuration+3*time.Minute)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := func(name string) string { return filepath.Join(dir, name) }

	answer := b.command(append([]string{"answer", "--send", sp.bob, "--send-lower", strings.Join(sp.bobLower, ","),
		"--record", file("bob-heard.ogg"), "--trace", file("bob.trace"), "--wait", "2m"}, flags...)...)
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

	call := a.command(append([]string{"call", b.name, "--send", sp.alice, "--send-lower", strings.Join(sp.aliceLower, ","),
		"--record", file("alice-heard.ogg"), "--trace", file("alice.trace"),
		"--duration", cfg.CallDuration.String(), "--ring", "60s"}, flags...)...)
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
	if last := finalCarrier(aliceOut); last != "" {
		res.Path = "tunnel/" + last // where the call ended up, not where it started
	}
	if s := setupLine.FindSubmatch(aliceOut); s != nil {
		if d, err := time.ParseDuration(string(s[1])); err == nil {
			res.SetupMs = ms(d)
		}
	}
	if res.SetupMs == 0 {
		res.Error = "connected, but no audio arrived"
	}

	at, err := readTrace(file("alice.trace"))
	if err != nil {
		return err
	}
	bt, err := readTrace(file("bob.trace"))
	if err != nil {
		return err
	}
	// The tunnel's receiver is observed (its jitter buffer traces what it
	// played); WebRTC's in Go records whatever arrives, and is modelled.
	observed := res.Tier == tierTunnel
	var worst *heard
	for _, d := range []struct {
		name         string
		sent, recv   []measure.Packet
		played       []measure.Packet
		until        time.Time
		speech, work string
		lower        []string
	}{
		{"alice→bob", at.Sent, bt.Received, bt.Played, measure.End(bt.Sent, bt.Received), sp.alice, file("a2b"), sp.aliceLower},
		{"bob→alice", bt.Sent, at.Received, at.Played, measure.End(at.Sent, at.Received), sp.bob, file("b2a"), sp.bobLower},
	} {
		o := measure.Options{Until: d.until}
		var p measure.Playout
		if observed {
			p = measure.Observe(d.sent, d.recv, d.played, o)
		} else {
			p = measure.Analyze(d.sent, d.recv, o)
		}
		h, err := listen(ctx, p, d.speech, d.work, d.lower, d.sent)
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
	if res.Tier == tierTunnel {
		// The listener of the direction reported, and the other's sender.
		listener, speaker := []byte(bobOut.String()), aliceOut
		if worst.direction == "bob→alice" {
			listener, speaker = speaker, listener
		}
		res.Jitter = jitterReport(listener, speaker, p.Sent)
		res.LongestGapMs = max(res.LongestGapMs, heardGap(aliceOut), heardGap([]byte(bobOut.String())))
	}
	return nil
}

// heardGap is the longest gap a tunnel call's listener heard, as its
// jitter buffer reports it from its output: the longest run of slots it
// played no frame in, whether the frame was missing or the buffer was
// growing its delay (the frames then play later, but the listener hears
// the silence all the same: the traces' frames-not-played miss those).
func heardGap(out []byte) float64 {
	j := jitterLine.FindSubmatch(out)
	if j == nil {
		return 0
	}
	d, _ := time.ParseDuration(string(j[4]))
	return ms(d)
}

// jitterReport reads what the listener's jitter buffer did and what the
// speaker's sender chose from their output; sent is the frames sent.
func jitterReport(listener, speaker []byte, sent int) *JitterReport {
	j := jitterLine.FindSubmatch(listener)
	snd := senderLine.FindSubmatch(speaker)
	if j == nil || snd == nil || sent == 0 {
		return nil
	}
	n := func(b []byte) float64 { v, _ := strconv.ParseFloat(string(b), 64); return v }
	d := func(b []byte) float64 { v, _ := time.ParseDuration(string(b)); return ms(v) }
	r := &JitterReport{
		RepairedPct: 100 * n(j[2]) / float64(sent), ConcealedPct: 100 * n(j[3]) / float64(sent), LongestGapMs: d(j[4]), DelayMs: d(j[5]), MaxDelayMs: d(j[6]),
		Redundancy: int(n(snd[1])), FramesPerPacket: int(n(snd[2])), Bitrate: int(n(snd[3])), Switches: int(n(snd[4])),
	}
	// Played counts the silence sent after the speech too: what was not
	// concealed was played.
	r.PlayedPct = max(0, 100-r.ConcealedPct)
	if other := senderLine.FindSubmatch(listener); other != nil {
		r.Switches += int(n(other[4]))
	}
	return r
}

func readTrace(path string) (measure.Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return measure.Trace{}, err
	}
	defer f.Close()
	return measure.ReadTraces(f)
}

// heard is what one direction of a call sounded like to its listener.
type heard struct {
	direction string
	playout   measure.Playout
	stoi      float64
}

// listen scores what the listener of one direction heard (p) against the
// speech, in work (a folder it creates). The frames sent from a lower
// version of the speech (sent[i].Version) are heard as that version's.
func listen(ctx context.Context, p measure.Playout, speech, work string, lower []string, sent []measure.Packet) (*heard, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
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
	if from := versions(sent); from != nil {
		if speech, err = mixVersions(speech, lower, from, filepath.Join(work, "as-sent.ogg")); err != nil {
			return nil, err
		}
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

// versions is the version each frame was sent from, or nil if all came
// from the file itself.
func versions(sent []measure.Packet) []int {
	var from []int
	for i, p := range sent {
		if p.Version > 0 && from == nil {
			from = make([]int, len(sent))
		}
		if from != nil {
			from[i] = p.Version
		}
	}
	return from
}

// mixVersions writes to name the speech as it was sent, frame by frame
// from the version from says, and returns name.
func mixVersions(speech string, lower []string, from []int, name string) (string, error) {
	var rs []io.Reader
	for _, f := range append([]string{speech}, lower...) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rs = append(rs, bytes.NewReader(b))
	}
	var out bytes.Buffer
	if err := measure.MixOgg(rs, from, &out); err != nil {
		return "", fmt.Errorf("the speech as sent: %w", err)
	}
	return name, os.WriteFile(name, out.Bytes(), 0o644)
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
	case strings.HasPrefix(cli, "tunnel over "):
		return "tunnel/" + strings.TrimPrefix(cli, "tunnel over ")
	}
	return cli
}

var switchLine = regexp.MustCompile(`(?m)^path: \S+ → (\w+)#\d+ \(`)

// finalCarrier is the kind of carrier a tunnelled call last moved to, from
// its "path: A → B (reason)" lines; "" if it never moved.
func finalCarrier(out []byte) string {
	all := switchLine.FindAllSubmatch(out, -1)
	if len(all) == 0 {
		return ""
	}
	return string(all[len(all)-1][1])
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
