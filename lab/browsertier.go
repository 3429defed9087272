package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/parleychat/parley/lab/browser"
	"github.com/parleychat/parley/lab/quality"
)

// The browser tier: the web client in headless Chromium, one in each
// client namespace ("parley-lab browser", package lab/browser), alice
// calling bob. Browsers keep no packet trace, so its figures come from
// WebRTC's own statistics: frames played are those not concealed, the
// longest gap is the longest run of mostly concealed 50 ms samples, the
// playout delay is the jitter buffer's mean plus half the round trip, and
// STOI compares what bob's browser would have played with the speech
// alice's microphone looped.

// chromium returns the browser to use, or "" if there is none.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// micWAV decodes the speech that a side sends to a 48 kHz WAV, for
// Chromium's fake microphone (which loops it).
func micWAV(ctx context.Context, ogg string) (string, error) {
	wav := strings.TrimSuffix(ogg, ".ogg") + "-48k.wav"
	if out, err := exec.CommandContext(ctx, "opusdec", "--quiet", "--rate", "48000", ogg, wav).CombinedOutput(); err != nil {
		return "", fmt.Errorf("opusdec: %v: %s", err, out)
	}
	return wav, nil
}

// browserRun is the two browsers of one run and tier: started and
// registered on the clean network (loading the web client takes 1.9 MB,
// minutes on the slowest profiles), then the call under the profile.
type browserRun struct {
	tier                  string // tierBrowser or tierTunnelBrowser
	dir, aliceMic, bobMic string
	agents                []*agent
	hold                  io.WriteCloser // alice's input: "go" starts her call
}

// agent is one "parley-lab browser" process.
type agent struct {
	name  string
	cmd   *exec.Cmd
	out   func() string
	lines <-chan string
	done  <-chan error
}

// startBrowsers starts bob's browser, waiting for a call, and alice's,
// ready to call him, in dir, for tier: WebRTC alone (tierBrowser), or the
// server's tunnel alone (tierTunnelBrowser, on the profile's tunnel
// carrier, if it has one).
func startBrowsers(ctx context.Context, cfg Config, net network, srv *server, dir, tier string, sp *speech, profile string) (*browserRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	br := &browserRun{tier: tier, dir: dir}
	// Each tier's two users are their own: they register on one server.
	suffix, extra := "-web", []string(nil)
	if tier == tierTunnelBrowser {
		suffix, extra = "-tun", []string{"--tunnel"}
		if c := tunnelCarrier(profile); c != "" {
			extra = append(extra, "--carrier", c)
		}
	}
	var err error
	if br.aliceMic, err = micWAV(ctx, sp.alice); err != nil {
		return nil, err
	}
	if br.bobMic, err = micWAV(ctx, sp.bob); err != nil {
		return nil, err
	}
	command := func(client int, user string, more ...string) *exec.Cmd {
		args := append([]string{"browser", "--chromium", cfg.Chromium, "--url", srv.url, "--user", user,
			"--profile", filepath.Join(dir, user+"-profile"), "--duration", cfg.CallDuration.String()}, extra...)
		args = append(args, more...)
		return net.Command(client, filepath.Join(cfg.Bin, "parley-lab"), args...)
	}
	bob := command(1, "bob"+suffix, "--mic", br.bobMic, "--record", filepath.Join(dir, "bob-heard.wav"), "--wait", "15m")
	alice := command(0, "alice"+suffix, "--mic", br.aliceMic, "--call", "bob"+suffix, "--hold", "--record", filepath.Join(dir, "alice-heard.wav"))
	if br.hold, err = alice.StdinPipe(); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		name string
		cmd  *exec.Cmd
	}{{"bob", bob}, {"alice", alice}} {
		a := &agent{name: x.name, cmd: x.cmd}
		if a.out, a.lines, a.done, err = startAgent(x.cmd, filepath.Join(dir, x.name+".log")); err != nil {
			br.stop()
			return nil, err
		}
		br.agents = append(br.agents, a)
		wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
		l, err := a.next(wait)
		cancel()
		if err != nil || l != "ready" {
			br.stop()
			return nil, fmt.Errorf("%s's browser did not get ready (%q, %v):\n%s", a.name, l, err, a.out())
		}
	}
	return br, nil
}

// next returns a's next output line.
func (a *agent) next(ctx context.Context) (string, error) {
	select {
	case l, ok := <-a.lines:
		if !ok {
			return "", fmt.Errorf("%s's browser ended: %v", a.name, <-a.done)
		}
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (br *browserRun) stop() {
	for _, a := range br.agents {
		a.cmd.Process.Kill()
	}
}

// call has alice call bob and measures the call.
func (br *browserRun) call(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Tier: br.tier, Runs: 1}
	ctx, cancel := context.WithTimeout(ctx, cfg.CallDuration+4*time.Minute)
	defer cancel()
	if _, err := io.WriteString(br.hold, "go\n"); err != nil {
		return res, fmt.Errorf("starting alice's call: %w", err)
	}
	results := map[string]*browser.Result{}
	for _, a := range br.agents {
		var last string
		for {
			l, err := a.next(ctx)
			if err != nil && ctx.Err() != nil {
				return res, fmt.Errorf("%s's browser did not finish:\n%s", a.name, a.out())
			}
			if err != nil {
				break
			}
			last = l
		}
		var r browser.Result
		if err := json.Unmarshal([]byte(last), &r); err != nil {
			return res, fmt.Errorf("%s's browser gave no result:\n%s", a.name, a.out())
		}
		os.WriteFile(filepath.Join(br.dir, a.name+"-result.json"), []byte(last+"\n"), 0o644)
		results[a.name] = &r
	}
	a, b := results["alice"], results["bob"]
	if !a.Connected || !b.Connected {
		res.Error = a.Error
		if res.Error == "" {
			res.Error = b.Error
		}
		return res, nil
	}
	res.Connected, res.Path, res.SetupMs = true, browserPath(a.Path), a.SetupMs
	tunnel := br.tier == tierTunnelBrowser
	if tunnel {
		if a.Tunnel == nil || b.Tunnel == nil {
			return res, errors.New("a browser's call through the tunnel kept no tunnel statistics")
		}
		res.Path = "tunnel/" + a.Tunnel.Path
	}
	// The direction that heard worse, by STOI.
	res.STOI = -1
	for _, d := range []struct {
		name, mic, heard string
		listener, talker *browser.Result
	}{
		{"alice→bob", br.aliceMic, filepath.Join(br.dir, "bob-heard.wav"), b, a},
		{"bob→alice", br.bobMic, filepath.Join(br.dir, "alice-heard.wav"), a, b},
	} {
		stoi, err := loopedSTOI(d.mic, d.heard)
		if err != nil {
			return res, fmt.Errorf("%s: %w", d.name, err)
		}
		if res.STOI >= 0 && stoi >= res.STOI {
			continue
		}
		res.STOI, res.Direction = stoi, d.name
		res.CallSeconds = d.listener.Seconds
		if tunnel {
			tunnelFigures(&res, d.listener.Tunnel, d.talker.Tunnel)
			if d.listener.TunnelAudio != nil {
				res.Jitter.Underruns = d.listener.TunnelAudio.Underruns
			}
			continue
		}
		r := d.listener
		res.FramesPlayedPct = 100 - r.ConcealedPct
		res.FramesLostPct = 100 * float64(r.PacketsLost) / math.Max(1, float64(r.PacketsLost+r.PacketsReceived))
		res.LongestGapMs = r.LongestGapMs
		res.AddedDelayMs = r.JitterBufferMs + r.RTTMs/2
	}
	if tunnel {
		// The longest gap either listener heard (tunnelFigures).
		res.LongestGapMs = max(a.Tunnel.LongestGapMs, b.Tunnel.LongestGapMs)
	}
	res.BurstR = 1 // browsers do not expose the loss pattern
	res.R, res.MOS = eModelFigures(res.AddedDelayMs, 100-res.FramesPlayedPct, res.BurstR)
	return res, nil
}

// tunnelFigures fills in res from a browser's call through the tunnel: the
// listener's jitter buffer (the frames due up to the last that came:
// played, concealed or skipped; the longest run of slots it played
// nothing in, frames missing or delay growing) and the talker's sender.
// The delay is the buffer's playout delay above the earliest arrivals
// plus the path's least one-way delay, taken as half of each side's round
// trip to the server.
func tunnelFigures(res *Result, listener, talker *browser.TunnelStats) {
	l := listener
	// The frames due: played, concealed for missing, or skipped to
	// shrink the delay (received, never played).
	slots := math.Max(1, float64(l.Played+l.Concealed+l.Skipped))
	pct := func(n int) float64 { return 100 * float64(n) / slots }
	res.FramesPlayedPct = pct(l.Played)
	res.FramesLostPct = pct(max(0, l.Concealed-l.Late))
	res.FramesLatePct = pct(l.Late)
	res.LongestGapMs = l.LongestGapMs
	res.AddedDelayMs = l.DelayMs + (l.RTTMs+talker.RTTMs)/2
	res.Jitter = &JitterReport{
		PlayedPct: pct(l.Played), RepairedPct: pct(l.Repaired), ConcealedPct: pct(l.Concealed), LongestGapMs: l.LongestGapMs,
		DelayMs: l.DelayMs, MaxDelayMs: l.MaxTargetMs,
		Redundancy: talker.Redundancy, FramesPerPacket: talker.FramesPerPacket, Bitrate: talker.Bitrate,
		Switches: len(l.Switches) + len(talker.Switches),
	}
}

// browserPath is the report's name of the path the web client shows.
func browserPath(p string) string {
	switch p {
	case "relay (udp)", "relay (tcp)", "relay (tls)":
		return "TURN/" + strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(p, "relay ("), ")"))
	case "relay (peer's)":
		return "TURN (peer's)"
	}
	return p
}

// startAgent starts cmd, copying its output to log and sending its output
// lines on lines (closed at the end); done gets its exit.
func startAgent(cmd *exec.Cmd, log string) (out func() string, lines <-chan string, done <-chan error, err error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, nil, nil, err
	}
	var buf lockedBuffer
	cmd.Stderr = &multiWriter{&buf, f}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	ls := make(chan string, 16)
	d := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			buf.Write(append(sc.Bytes(), '\n'))
			ls <- sc.Text()
		}
		close(ls)
		d <- cmd.Wait()
		f.Close()
	}()
	return buf.String, ls, d, nil
}

type multiWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (m *multiWriter) Write(p []byte) (int, error) {
	m.a.Write(p)
	return m.b.Write(p)
}

// loopedSTOI scores the recording heard (what a browser would have played)
// against mic, the WAV its peer's fake microphone looped. WebRTC's jitter
// buffer stretches and shrinks time to ride out loss and jitter, so the
// recording drifts against the loop: it is scored in windows of stoiWindow,
// each lined up with the loop on its own, and the windows' scores are
// averaged. Both are taken to 16 kHz first (STOI works at 10 kHz).
func loopedSTOI(mic, heard string) (float64, error) {
	ref, rate, err := readWAV(mic)
	if err != nil {
		return 0, err
	}
	got, gotRate, err := readWAV(heard)
	if err != nil {
		return 0, err
	}
	const work = 16000
	if ref, err = quality.Resample(ref, rate, work); err != nil {
		return 0, err
	}
	if got, err = quality.Resample(got, gotRate, work); err != nil {
		return 0, err
	}
	// From the first sound to the last: the call's set-up is measured
	// apart, and a playout that runs before audio comes (the tunnel's
	// worklet plays silence from the dial) would score its wait as
	// unintelligible speech.
	got = trimSilence(got)
	win := int(stoiWindow.Seconds() * work)
	// The loop, long enough to hold any window at any offset.
	var loop []float64
	for len(loop) < win+len(ref) {
		loop = append(loop, ref...)
	}
	maxLag := time.Duration(len(ref)) * time.Second / work
	var sum float64
	n := 0
	for start := 0; start+win <= len(got); start += win {
		w := got[start : start+win]
		lag, err := quality.Align(loop, w, work, maxLag)
		if err != nil {
			return 0, fmt.Errorf("lining up %s: %w", heard, err)
		}
		c, d := quality.Overlap(loop, w, lag)
		if len(d) < win/2 {
			continue // lined up off the loop's end: too little to score
		}
		v, err := quality.STOI(c, d, work)
		if err != nil {
			continue // a window of silence
		}
		sum += v
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s: no window of speech to score (%d samples)", heard, len(got))
	}
	return sum / float64(n), nil
}

// trimSilence returns x without its leading and trailing digital silence
// (samples under -80 dBFS).
func trimSilence(x []float64) []float64 {
	const floor = 1e-4
	i, j := 0, len(x)
	for i < j && math.Abs(x[i]) < floor {
		i++
	}
	for j > i && math.Abs(x[j-1]) < floor {
		j--
	}
	return x[i:j]
}

// stoiWindow is the length of the windows the browser's recording is
// scored in.
const stoiWindow = time.Second

func readWAV(path string) ([]float64, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	s, rate, err := quality.ReadWAV(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return s, rate, nil
}
