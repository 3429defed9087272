// Package lab runs Parley's calls and messaging through the hostile-network
// lab (DESIGN.md, "The hostile-network lab") and reports how they fare, per
// censor profile and call tier.
//
// For each profile the lab builds its network (package netlab: client,
// censor and server namespaces, which need root), starts the real parleyd
// in the server namespace (TLS with a self-signed certificate on port 443,
// its TURN relay on 3478 over UDP and TCP, and TURN over TLS on 443), and
// registers two users whose `parley` commands run in two client
// namespaces, on the clean network; then it turns the profile on and
// measures:
//
//   - Messaging: alice types messages into `parley chat bob` at a steady
//     pace while bob runs `parley recv --json`; the time from typing to
//     bob's output, and the messages lost or shown twice.
//   - A call, tier 1 (WebRTC in Go, the `parley call` / `parley answer`
//     CLI): alice calls bob and each sends an Ogg Opus file of espeak-ng
//     speech; both write a packet trace (--trace). From the outputs: did
//     it connect, over which path (direct, TURN/UDP, TURN/TCP, TURN/TLS),
//     and the set-up time. From the traces (package measure): the frames a
//     listener would have played, the longest gap and the playout delay,
//     for each direction. From the audio: STOI (package quality) between
//     the speech sent and the speech the listener would have heard, both
//     decoded by opusdec. From the impairments: the ITU-T G.107 E-model's
//     R and MOS, with the mouth-to-ear delay taken as the playout delay
//     plus 40 ms (a 20 ms frame to fill, and one more of decoding and
//     playout), the frames not played as the packet loss, and its
//     burstiness. The direction that heard worse (lower STOI) is reported.
//   - The same call through the tunnel (tier 2, `parley call --path
//     tunnel`, both sides; under tcp-freeze-16k on its WebSocket carrier,
//     whose flows that profile freezes): its listener is observed rather
//     than modelled, from the frames its jitter buffer played (the
//     traces' "play" lines, measure.Observe), and its own report (frames
//     repaired and concealed, buffer delay, carrier switches, the
//     sender's choices) is kept beside (Result.Jitter).
//   - The same call in the browser tier (the web client in headless
//     Chromium, one in each client namespace, loaded and registered before
//     the profile is on; browsertier.go): from WebRTC's own statistics and
//     a recording of what Chromium would have played.
//   - The same call between two more browsers through the tunnel (the web
//     client's tunnel setting): from the tunnel's own statistics and a
//     recording of what its playout worklet played.
//   - A third user registering under the profile (how long, or why not).
//
// Without root (a developer's laptop) the namespaces cannot be built: the
// lab then runs only the clean profile, on the host's loopback, and says
// so in the report's "network" field ("host" instead of "netns").
//
// WriteReport writes docs/lab-report.md (a table), docs/lab-report.json (one
// object per profile and tier; other tools read its field names) and
// docs/lab-report.svg (a chart of quality per profile).
package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Result is one profile and tier: one object of lab-report.json. The first
// fields are those the issue names; keep their names.
type Result struct {
	Profile            string  `json:"profile"`
	Tier               string  `json:"tier"` // "webrtc-cli": tier 1, the Go WebRTC client
	Connected          bool    `json:"connected"`
	Path               string  `json:"path"` // direct, TURN/UDP, TURN/TCP, TURN/TLS, or "" if it did not connect
	SetupMs            float64 `json:"setup_ms"`
	FramesPlayedPct    float64 `json:"frames_played_pct"`
	LongestGapMs       float64 `json:"longest_gap_ms"`
	AddedDelayMs       float64 `json:"added_delay_ms"`
	MOS                float64 `json:"mos"`
	STOI               float64 `json:"stoi"`
	MessageDeliveryMs  float64 `json:"message_delivery_ms"`
	MessagesLost       int     `json:"messages_lost"`
	MessagesDuplicated int     `json:"messages_duplicated"`

	// More detail.
	R                    float64 `json:"r"`
	FramesLostPct        float64 `json:"frames_lost_pct"` // never arrived
	FramesLatePct        float64 `json:"frames_late_pct"` // arrived after their playout time
	BurstR               float64 `json:"burst_r"`
	MessageDeliveryP95Ms float64 `json:"message_delivery_p95_ms"`
	Direction            string  `json:"direction,omitempty"` // the direction reported: "alice→bob" or "bob→alice"
	CallSeconds          float64 `json:"call_seconds"`
	Runs                 int     `json:"runs"`
	ConnectedRuns        int     `json:"connected_runs"` // of Runs; the figures are the medians of these
	Network              string  `json:"network"`        // "netns" (the censor's namespaces) or "host" (no impairment: not root)
	// Registering a new user under the profile: how long it took, or why
	// it failed within 90 s.
	RegisterMs    float64 `json:"register_ms"`
	RegisterError string  `json:"register_error,omitempty"`
	Error         string  `json:"error,omitempty"`

	// The tunnel tier's own report, of the listener in the direction
	// reported: what its jitter buffer did, and what the other side's
	// sender chose.
	Jitter *JitterReport `json:"jitter,omitempty"`
}

// JitterReport is what a tunnelled call's receiver and sender did, as
// "parley call" and "parley answer" print it.
type JitterReport struct {
	PlayedPct       float64 `json:"played_pct"`    // frames played (delivered or repaired), of those sent
	RepairedPct     float64 `json:"repaired_pct"`  // frames played from a redundant copy, of those sent
	ConcealedPct    float64 `json:"concealed_pct"` // slots concealed, of the frames sent
	LongestGapMs    float64 `json:"longest_gap_ms"`
	DelayMs         float64 `json:"delay_ms"`     // the buffer's target delay at the end
	MaxDelayMs      float64 `json:"max_delay_ms"` // its highest target
	Redundancy      int     `json:"redundancy"`   // the sender's depth at the end
	FramesPerPacket int     `json:"frames_per_packet"`
	Bitrate         int     `json:"bitrate"`  // what the sender would have set its encoder to, bit/s
	Switches        int     `json:"switches"` // carrier switches, both sides
	// Underruns (tunnel-browser) counts the times the listener's playout
	// worklet ran dry: audio the tunnel delivered but the page played late.
	Underruns int `json:"underruns,omitempty"`
}

// Config is what to run.
type Config struct {
	// Bin is the folder with the parleyd and parley binaries.
	Bin string
	// Profiles to run (netlab's names); none means all.
	Profiles []string
	// CallDuration is how long each call lasts once connected (20 s if
	// zero).
	CallDuration time.Duration
	// Runs per profile; the report gives the median of each figure (1 if
	// zero).
	Runs int
	// Messages sent per run (20 if zero), one every MessageEvery (250 ms
	// if zero).
	Messages     int
	MessageEvery time.Duration
	// Work is a folder for the files of the runs (a temporary one if
	// empty; kept if given).
	Work string
	// Progress, if set, receives a line per step.
	Progress io.Writer
	// RegisterTimeout bounds the new user's registration under each
	// profile (90 s if zero).
	RegisterTimeout time.Duration
	// Chromium is the browser of the browser tier ("" finds chromium on
	// the PATH; "none" leaves the browser tier out). The tier also needs
	// parley-lab in Bin.
	Chromium string
	// NoTunnel leaves the tunnel tiers (tier 2: "parley call --path
	// tunnel", and the web client's tunnel setting) out.
	NoTunnel bool
	// TunnelCalls, by profile, is how long the tunnel tier's call lasts
	// there instead of CallDuration (LongCalls: the targets).
	TunnelCalls map[string]time.Duration
}

// LongCalls are the tunnel calls that the targets of calls through the
// tunnel ask to last: 5 minutes under rate-32k, 10 under tcp-freeze-16k.
var LongCalls = map[string]time.Duration{"rate-32k": 5 * time.Minute, "tcp-freeze-16k": 10 * time.Minute}

// callDuration is how long the call of tier lasts under profile.
func (cfg Config) callDuration(profile, tier string) time.Duration {
	if d, ok := cfg.TunnelCalls[profile]; ok && tier == tierTunnel {
		return d
	}
	return cfg.CallDuration
}

// The tiers, in the report's order.
const (
	tierWebRTC  = "webrtc-cli"
	tierTunnel  = "tunnel-cli"
	tierBrowser = "webrtc-browser"
	// tierTunnelBrowser is the web client's call through the tunnel:
	// WebCodecs and AudioWorklets around the Go core's tunnel, over the
	// browser's own WebTransport and WebSocket.
	tierTunnelBrowser = "tunnel-browser"
)

// tiers lists the tiers cfg runs.
func (cfg Config) tiers() []string {
	t := []string{tierWebRTC}
	if !cfg.NoTunnel {
		t = append(t, tierTunnel)
	}
	if cfg.Chromium != "" {
		t = append(t, tierBrowser)
		if !cfg.NoTunnel {
			t = append(t, tierTunnelBrowser)
		}
	}
	return t
}

// Run runs the lab and returns one Result per profile and tier.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if cfg.CallDuration <= 0 {
		cfg.CallDuration = 20 * time.Second
	}
	cfg.Runs = max(cfg.Runs, 1)
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = 90 * time.Second
	}
	if cfg.Messages <= 0 {
		cfg.Messages = 20
	}
	if cfg.MessageEvery <= 0 {
		cfg.MessageEvery = 250 * time.Millisecond
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	for _, b := range []string{"parleyd", "parley"} {
		if _, err := os.Stat(filepath.Join(cfg.Bin, b)); err != nil {
			return nil, fmt.Errorf("lab: %s not found in %s (build with: go build -o %s ./cmd/...)", b, cfg.Bin, cfg.Bin)
		}
	}
	switch cfg.Chromium {
	case "none":
		cfg.Chromium = ""
	case "":
		cfg.Chromium = chromium()
		if cfg.Chromium == "" {
			fmt.Fprintln(cfg.Progress, "lab: chromium not found: the browser tier is left out (apt-get install chromium)")
		}
	}
	if cfg.Chromium != "" {
		if _, err := os.Stat(filepath.Join(cfg.Bin, "parley-lab")); err != nil {
			return nil, fmt.Errorf("lab: the browser tier needs parley-lab in %s (go build -o %s ./cmd/...)", cfg.Bin, cfg.Bin)
		}
	}
	for _, tool := range []string{"espeak-ng", "opusenc", "opusdec"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab: %s not found (Debian: apt-get install espeak-ng opus-tools)", tool)
		}
	}
	if cfg.Work == "" {
		dir, err := os.MkdirTemp("", "parley-lab-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Work = dir
	}
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return nil, err
	}
	profiles := cfg.Profiles
	if len(profiles) == 0 {
		profiles = profileNames()
	}
	longest := cfg.CallDuration
	for _, p := range profiles {
		longest = max(longest, cfg.callDuration(p, tierTunnel))
	}
	speech, err := makeSpeech(ctx, cfg.Work, longest)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, name := range profiles {
		byTier := map[string][]Result{}
		for i := range cfg.Runs {
			fmt.Fprintf(cfg.Progress, "lab: %s, run %d of %d\n", name, i+1, cfg.Runs)
			dir := filepath.Join(cfg.Work, fmt.Sprintf("%s-%d", name, i+1))
			rs, err := runProfile(ctx, cfg, name, dir, speech)
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			if err != nil {
				// One profile's trouble must not cost the others: it is
				// reported as a run that did not connect, with the reason.
				fmt.Fprintf(cfg.Progress, "lab: %s: %v\n", name, err)
				rs = nil
				for _, tier := range cfg.tiers() {
					rs = append(rs, Result{Profile: name, Tier: tier, Runs: 1, Error: firstLine(err.Error())})
				}
			}
			for _, r := range rs {
				fmt.Fprintf(cfg.Progress, "lab: %s, %s: %s\n", name, r.Tier, summary(r))
				byTier[r.Tier] = append(byTier[r.Tier], r)
			}
		}
		for _, tier := range cfg.tiers() {
			if runs := byTier[tier]; len(runs) > 0 {
				out = append(out, median(runs))
			}
		}
	}
	return out, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func summary(r Result) string {
	if !r.Connected {
		return fmt.Sprintf("the call did not connect (%s); messages %.0f ms, %d lost", r.Error, r.MessageDeliveryMs, r.MessagesLost)
	}
	return fmt.Sprintf("%s, set-up %.0f ms, played %.1f%%, gap %.0f ms, delay %.0f ms, MOS %.2f, STOI %.2f; messages %.0f ms, %d lost, %d twice",
		r.Path, r.SetupMs, r.FramesPlayedPct, r.LongestGapMs, r.AddedDelayMs, r.MOS, r.STOI, r.MessageDeliveryMs, r.MessagesLost, r.MessagesDuplicated)
}

// median combines the runs of one profile: it connected if most runs did,
// on the path most of those took, and each call figure is the median over
// the runs that connected (over all runs for the messages).
func median(runs []Result) Result {
	var ok []Result
	paths := map[string]int{}
	for _, x := range runs {
		if x.Connected {
			ok = append(ok, x)
			paths[x.Path]++
		}
	}
	if len(runs) == 1 {
		r := runs[0]
		r.Runs, r.ConnectedRuns = 1, len(ok)
		return r
	}
	calls := ok
	if len(calls) == 0 {
		calls = runs
	}
	r := calls[len(calls)/2]
	med := func(f func(Result) float64) float64 { return medianOf(calls, f) }
	r.Connected = len(ok)*2 > len(runs)
	r.ConnectedRuns = len(ok)
	r.Path = ""
	for p, n := range paths {
		if n > paths[r.Path] {
			r.Path = p
		}
	}
	r.SetupMs = med(func(x Result) float64 { return x.SetupMs })
	r.FramesPlayedPct = med(func(x Result) float64 { return x.FramesPlayedPct })
	r.FramesLostPct = med(func(x Result) float64 { return x.FramesLostPct })
	r.FramesLatePct = med(func(x Result) float64 { return x.FramesLatePct })
	r.LongestGapMs = med(func(x Result) float64 { return x.LongestGapMs })
	r.AddedDelayMs = med(func(x Result) float64 { return x.AddedDelayMs })
	r.MOS = med(func(x Result) float64 { return x.MOS })
	r.R = med(func(x Result) float64 { return x.R })
	r.STOI = med(func(x Result) float64 { return x.STOI })
	r.BurstR = med(func(x Result) float64 { return x.BurstR })
	r.CallSeconds = med(func(x Result) float64 { return x.CallSeconds })
	if r.Jitter != nil {
		var js []Result
		for _, x := range calls {
			if x.Jitter != nil {
				js = append(js, x)
			}
		}
		jm := func(f func(*JitterReport) float64) float64 {
			return medianOf(js, func(x Result) float64 { return f(x.Jitter) })
		}
		r.Jitter = &JitterReport{
			PlayedPct:       jm(func(j *JitterReport) float64 { return j.PlayedPct }),
			RepairedPct:     jm(func(j *JitterReport) float64 { return j.RepairedPct }),
			ConcealedPct:    jm(func(j *JitterReport) float64 { return j.ConcealedPct }),
			LongestGapMs:    jm(func(j *JitterReport) float64 { return j.LongestGapMs }),
			DelayMs:         jm(func(j *JitterReport) float64 { return j.DelayMs }),
			MaxDelayMs:      jm(func(j *JitterReport) float64 { return j.MaxDelayMs }),
			Redundancy:      int(jm(func(j *JitterReport) float64 { return float64(j.Redundancy) })),
			FramesPerPacket: int(jm(func(j *JitterReport) float64 { return float64(j.FramesPerPacket) })),
			Bitrate:         int(jm(func(j *JitterReport) float64 { return float64(j.Bitrate) })),
			Switches:        int(jm(func(j *JitterReport) float64 { return float64(j.Switches) })),
			Underruns:       int(jm(func(j *JitterReport) float64 { return float64(j.Underruns) })),
		}
	}
	all := func(f func(Result) float64) float64 { return medianOf(runs, f) }
	r.MessageDeliveryMs = all(func(x Result) float64 { return x.MessageDeliveryMs })
	r.MessageDeliveryP95Ms = all(func(x Result) float64 { return x.MessageDeliveryP95Ms })
	r.MessagesLost = int(all(func(x Result) float64 { return float64(x.MessagesLost) }))
	r.MessagesDuplicated = int(all(func(x Result) float64 { return float64(x.MessagesDuplicated) }))
	r.RegisterMs = all(func(x Result) float64 { return x.RegisterMs })
	r.Runs = len(runs)
	return r
}

// medianOf is the median of f over rs (the mean of the middle two of an
// even count).
func medianOf(rs []Result, f func(Result) float64) float64 {
	v := make([]float64, len(rs))
	for i, x := range rs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}
