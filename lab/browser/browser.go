// Package browser drives the web client in a headless Chromium for the
// hostile-network lab: one user, registered on a parleyd, who either calls
// a peer or waits for a call and accepts it. The microphone is a WAV file
// (Chromium's fake capture device, which loops it); what the browser would
// play is recorded from the remote stream through Web Audio, after
// WebRTC's own jitter buffer and loss concealment; and the receiver's
// statistics are sampled every 50 ms during the call.
//
// The lab runs it as a process inside a client's network namespace
// ("parley-lab browser"), so that Chromium's traffic crosses the censor and
// its DevTools connection stays on that namespace's loopback.
//
// The page is instrumented before it loads (a script that wraps
// RTCPeerConnection to see the remote track); the web client itself is
// the one parleyd serves, unchanged, driven through its own interface
// (the call button, Accept) and its diagnostics (globalThis.parleyCalls).
package browser

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/parleychat/parley/lab/quality"
)

//go:embed instrument.js
var instrument string

// Options say who the browser is and what it does.
type Options struct {
	Chromium string // the browser's executable
	Profile  string // a fresh user-data folder
	URL      string // parleyd's URL (a self-signed certificate is accepted)
	User     string // registers this username
	// Peer, if set, is called once registered; else the browser waits up
	// to Wait for a call and accepts it.
	Peer string
	// Duration is how long the caller stays in the call once connected.
	Duration time.Duration
	Wait     time.Duration
	// Mic is the WAV file the microphone plays (looped).
	Mic string
	// Record, if set, receives what the browser would have played, as a
	// 16-bit mono WAV at 48 kHz.
	Record string
	// Ready is called once registered and (callee) waiting for a call.
	Ready func()
	// Go, if set, holds the caller, once ready, until it is closed (the
	// lab turns its censor on meanwhile).
	Go <-chan struct{}
	// Race lets the call race the server's tunnel and move between the
	// two, as the web client does by default; unset, the browser measures
	// WebRTC alone (tier 1), as the CLI's --path webrtc does.
	Race bool
	// Tunnel has the call go through the server's tunnel alone (tier 2),
	// as the web client's "tunnel" setting does; Carrier, if set
	// ("websocket", "webtransport"), keeps its tunnel to that carrier.
	Tunnel  bool
	Carrier string
	// Log receives progress lines.
	Log io.Writer
}

// Result is what the browser saw of the call.
type Result struct {
	Connected       bool    `json:"connected"`
	Path            string  `json:"path"`     // as the web client's quality indicator names it
	SetupMs         float64 `json:"setup_ms"` // dial (or accept) to the first audio packet
	PacketsReceived int     `json:"packets_received"`
	PacketsLost     int     `json:"packets_lost"`
	// ConcealedPct is the share of the samples played that WebRTC
	// concealed (synthesized for lost or late packets).
	ConcealedPct float64 `json:"concealed_pct"`
	// LongestGapMs is the longest run of 50 ms samples in which most of
	// what was played was concealed.
	LongestGapMs float64 `json:"longest_gap_ms"`
	// JitterBufferMs is the mean time a sample waited in the jitter
	// buffer; RTTMs the path's round-trip time (ICE).
	JitterBufferMs float64 `json:"jitter_buffer_ms"`
	RTTMs          float64 `json:"rtt_ms"`
	Outcome        string  `json:"outcome"` // the call screen's outcome when it ended
	Seconds        float64 `json:"seconds"` // connected time
	Error          string  `json:"error,omitempty"`
	// What the web client's call statistics said last before the end:
	// the path, the moves between WebRTC and the tunnel, and the frames
	// the tunnel played (with Options.Race, the tunnel stands by).
	LastPath     string   `json:"last_path,omitempty"`
	Moves        []string `json:"moves,omitempty"`
	TunnelPlayed int      `json:"tunnel_played,omitempty"`
	// Tunnel calls: what the tunnel (its jitter buffer, sender and
	// carriers) and its audio said last before the end.
	Tunnel      *TunnelStats      `json:"tunnel,omitempty"`
	TunnelAudio *TunnelAudioStats `json:"tunnel_audio,omitempty"`
}

// TunnelAudioStats is the part of the web client's tunnel audio statistics
// (tunnel.ts TunnelAudioStats) the lab keeps.
type TunnelAudioStats struct {
	FramesSent int `json:"framesSent"` // handed to the tunnel, silence included
	// Underruns counts the times the playout worklet ran dry (the frames
	// came from the jitter buffer later than the audio clock asked).
	Underruns int `json:"underruns"`
	// SecondsDropped is the audio it dropped unplayed: it was handed more
	// than it holds at most.
	SecondsDropped float64 `json:"secondsDropped"`
}

// TunnelStats is the part of the web client's tunnel statistics (api.ts
// TunnelStats) the lab keeps.
type TunnelStats struct {
	Path            string         `json:"path"` // the carrier: "webtransport" or "websocket"
	Received        int            `json:"received"`
	Played          int            `json:"played"`
	Repaired        int            `json:"repaired"`
	Concealed       int            `json:"concealed"`
	Late            int            `json:"late"`
	Skipped         int            `json:"skipped"`  // received, skipped to shrink the delay
	Inserted        int            `json:"inserted"` // slots concealed to grow it
	LongestGapMs    float64        `json:"longest_gap_ms"`
	DelayMs         float64        `json:"delay_ms"`
	MaxTargetMs     float64        `json:"max_target_delay_ms"`
	RTTMs           float64        `json:"rtt_ms"`
	Bitrate         int            `json:"bitrate"`
	Redundancy      int            `json:"redundancy"`
	FramesPerPacket int            `json:"frames_per_packet"`
	Switches        []TunnelSwitch `json:"switches"`
}

// TunnelSwitch is one of the tunnel's moves between carriers.
type TunnelSwitch struct {
	Reason string `json:"reason"`
}

// Run drives one browser through one call.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(o.Chromium),
		chromedp.UserDataDir(o.Profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", o.Mic),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1000, 760),
	)
	// A Chromium that fails to start (seen on the shared 2-core machine
	// while other browsers start) gets one more try with a fresh profile.
	var bctx context.Context
	for try := 1; ; try++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
		defer cancelAlloc()
		var cancelTab context.CancelFunc
		bctx, cancelTab = chromedp.NewContext(actx)
		defer cancelTab()
		err := chromedp.Do(bctx)
		if err == nil {
			break
		}
		if try == 2 || ctx.Err() != nil {
			return res, fmt.Errorf("starting chromium: %w", err)
		}
		first, _, _ := strings.Cut(err.Error(), "\n")
		logf("chromium did not start (%s); trying once more", first)
		cancelTab()
		cancelAlloc()
		if err := os.RemoveAll(o.Profile); err != nil {
			return res, err
		}
	}
	step := func(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(bctx, d)
		defer cancel()
		if _, err := chromedp.Run(c, chromedp.Steps(actions...)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	// The web client's settings (callview.tsx); a frame without an
	// origin (about:blank) has no localStorage.
	var settings []string
	if !o.Race {
		settings = append(settings, `localStorage.setItem("parley-race", "off");`)
	}
	if o.Tunnel {
		settings = append(settings, `localStorage.setItem("parley-tunnel", "true");`)
	}
	if o.Carrier != "" {
		settings = append(settings, fmt.Sprintf(`localStorage.setItem("parley-tunnel-carrier", %q);`, o.Carrier))
	}
	script := instrument
	if len(settings) > 0 {
		script = "try { " + strings.Join(settings, " ") + " } catch {}\n" + script
	}
	addScript := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	})
	if err := step("load", 90*time.Second, addScript, chromedp.Navigate(o.URL),
		chromedp.WaitVisible(`#register-username`)); err != nil {
		return res, err
	}
	if err := step("register", 90*time.Second,
		chromedp.SendKeys(`#register-username`, o.User),
		chromedp.Click(`#register-submit`),
		chromedp.WaitVisible(`#connection[data-state="online"]`)); err != nil {
		return res, err
	}
	logf("%s: registered", o.User)
	if o.Peer == "" {
		if o.Ready != nil {
			o.Ready()
		}
		if err := step("wait for a call", o.Wait, chromedp.WaitVisible(`#call-screen[data-phase="ringing"]`),
			chromedp.Click(`#call-accept`)); err != nil {
			return res, err
		}
		logf("%s: accepted a call", o.User)
	} else {
		if o.Ready != nil {
			o.Ready()
		}
		if o.Go != nil {
			select {
			case <-o.Go:
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
		if err := step("call "+o.Peer, time.Minute,
			chromedp.SendKeys(`#new-conversation`, o.Peer+"\n"),
			chromedp.WaitEnabled(`#call-button`),
			chromedp.Click(`#call-button`)); err != nil {
			return res, err
		}
		logf("%s: calling %s", o.User, o.Peer)
	}
	// Connected, or ended before that.
	if err := step("connect", 90*time.Second, chromedp.WaitVisible(`#call-screen[data-phase="active"], #call-screen[data-phase="ended"]`)); err != nil {
		return res, err
	}
	if phase := attr(bctx, `#call-screen`, "data-phase"); phase != "active" {
		res.Outcome = attr(bctx, `#call-screen`, "data-outcome")
		res.Error = "the call did not connect: " + text(bctx, `#call-status`)
		return res, nil
	}
	res.Connected = true
	connectedAt := time.Now()
	logf("%s: connected", o.User)
	// The call's statistics every half second while it lasts, keeping
	// the last (once it ends there are none).
	var last *callStats
	sample := func() {
		c, cancel := context.WithTimeout(bctx, 5*time.Second)
		defer cancel()
		if st, err := chromedp.Run(c, chromedp.Evaluate[*callStats](`globalThis.parleyCalls.stats()`, chromedp.EvalAwaitPromise)); err == nil && st != nil {
			last = st
		}
	}
	if o.Peer != "" {
		for end := time.Now().Add(o.Duration); time.Now().Before(end); {
			sample()
			time.Sleep(min(500*time.Millisecond, time.Until(end)))
		}
		sample()
		if err := step("hang up", 10*time.Second, chromedp.Click(`#call-hangup`)); err != nil {
			return res, err
		}
	}
	// Until the call ends (the peer hangs up), at most Duration plus a
	// minute.
	for deadline := time.Now().Add(o.Duration + time.Minute); ; {
		if attr(bctx, `#call-screen`, "data-phase") == "ended" {
			break
		}
		if time.Now().After(deadline) {
			return res, errors.New("end: the call did not end")
		}
		sample()
		time.Sleep(500 * time.Millisecond)
	}
	res.Outcome = attr(bctx, `#call-screen`, "data-outcome")
	seconds := time.Since(connectedAt).Seconds()
	// The hang-up must leave before the browser closes; on a frozen
	// connection it cannot, which is the network's doing, not a failure of
	// the measurement.
	if err := step("hang-up sent", 15*time.Second, chromedp.Evaluate[chromedp.Void](`globalThis.parleyCalls.settled()`, chromedp.EvalAwaitPromise)); err != nil {
		logf("%s: the hang-up did not leave within 15 s (%v)", o.User, err)
	}
	c, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	lab, err := chromedp.Run(c, chromedp.Evaluate[*measured](`globalThis.__lab.take()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return res, fmt.Errorf("reading the call's measurements: %w", err)
	}
	if lab == nil {
		return res, errors.New("the page kept no measurements of the call")
	}
	lab.Result.Connected, lab.Result.Outcome, lab.Result.Seconds = res.Connected, res.Outcome, seconds
	res = lab.Result
	if last != nil {
		res.LastPath, res.Moves = last.Path, last.Moves
		res.Tunnel, res.TunnelAudio = last.Tunnel, last.TunnelAudio
		if last.Tunnel != nil {
			res.TunnelPlayed = last.Tunnel.Played
		}
	}
	if o.Record != "" {
		pcm, err := base64.StdEncoding.DecodeString(lab.Audio)
		if err != nil {
			return res, fmt.Errorf("the recording: %w", err)
		}
		if err := writeWAV(o.Record, pcm, lab.Rate); err != nil {
			return res, err
		}
	}
	return res, nil
}

// callStats is the part of the web client's call statistics (call.ts
// CallStats) the lab keeps.
type callStats struct {
	Path        string            `json:"path"`
	Moves       []string          `json:"moves"`
	Tunnel      *TunnelStats      `json:"tunnel"`
	TunnelAudio *TunnelAudioStats `json:"tunnelAudio"`
}

// measured is what the page's instrumentation (instrument.js) hands over.
type measured struct {
	Result
	Audio string `json:"audio"` // base64 of 16-bit little-endian PCM
	Rate  int    `json:"rate"`
}

func attr(ctx context.Context, sel, name string) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(c, chromedp.AttributeValue(sel, name))
	return v.Value
}

func text(ctx context.Context, sel string) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, _ := chromedp.Run(c, chromedp.Text(sel))
	return v
}

// writeWAV writes 16-bit little-endian mono PCM at rate as a WAV file.
func writeWAV(path string, pcm []byte, rate int) error {
	samples := make([]float64, len(pcm)/2)
	for i := range samples {
		samples[i] = float64(int16(binary.LittleEndian.Uint16(pcm[2*i:]))) / 32768
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := quality.WriteWAV(f, samples, rate); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
