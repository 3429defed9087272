package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ReportInfo describes a run of the lab, for the report's header.
type ReportInfo struct {
	Date         time.Time
	CallDuration time.Duration
	TunnelCalls  map[string]time.Duration // Config.TunnelCalls
	Runs         int
	Messages     int
	Command      string // how to run it again
}

// WriteReport writes lab-report.md, lab-report.json and lab-report.svg to
// dir, which it makes if need be (a missing one lost a whole run's results).
func WriteReport(dir string, info ReportInfo, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"lab-report.json": append(j, '\n'),
		"lab-report.md":   markdown(info, results),
		"lab-report.svg":  chart(results),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func markdown(info ReportInfo, results []Result) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The hostile-network lab: report\n\n")
	fmt.Fprintf(&b, "Made %s by `%s`: each profile %d run(s) (medians shown), a call of %v of speech each way, %d messages.\n",
		info.Date.UTC().Format("2006-01-02 15:04 MST"), info.Command, info.Runs, info.CallDuration, info.Messages)
	if len(info.TunnelCalls) > 0 {
		var long []string
		for p, d := range info.TunnelCalls {
			long = append(long, fmt.Sprintf("%v under %s", d, p))
		}
		slices.Sort(long)
		fmt.Fprintf(&b, "The tunnel tier's calls last longer where its targets ask: %s.\n", strings.Join(long, ", "))
	}
	network := "the lab's network namespaces (root)"
	for _, r := range results {
		if r.Network == "host" {
			network = "the host's loopback, without impairment (not root: only the clean profile ran)"
		}
	}
	fmt.Fprintf(&b, "Network: %s. The profiles are described in `lab/netlab`; how each figure is made, in `lab` and `lab/measure`.\n\n", network)
	b.WriteString("![Call quality per profile](lab-report.svg)\n\n")
	b.WriteString("| profile | tier | connected | path | set-up ms | frames played % | lost % | late % | longest gap ms | playout delay ms | MOS | STOI | message ms (p50 / p95) | messages lost / twice | registering |\n")
	b.WriteString("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		reg := fmt.Sprintf("%.0f ms", r.RegisterMs)
		if r.RegisterError != "" {
			reg = "**fails**: " + cell(r.RegisterError)
		}
		connected := "yes"
		if r.ConnectedRuns < r.Runs {
			connected = fmt.Sprintf("%s (%d of %d runs)", map[bool]string{true: "yes", false: "**no**"}[r.Connected], r.ConnectedRuns, r.Runs)
		}
		if r.ConnectedRuns == 0 {
			fmt.Fprintf(&b, "| %s | %s | **no** (%s) | – | – | – | – | – | – | – | – | – | %.0f / %.0f | %d / %d | %s |\n",
				r.Profile, r.Tier, cell(r.Error), r.MessageDeliveryMs, r.MessageDeliveryP95Ms, r.MessagesLost, r.MessagesDuplicated, reg)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %.0f | %.0f | %.2f | %.2f | %.0f / %.0f | %d / %d | %s |\n",
			r.Profile, r.Tier, connected, r.Path, r.SetupMs, r.FramesPlayedPct, r.FramesLostPct, r.FramesLatePct, r.LongestGapMs, r.AddedDelayMs,
			r.MOS, r.STOI, r.MessageDeliveryMs, r.MessageDeliveryP95Ms, r.MessagesLost, r.MessagesDuplicated, reg)
	}
	var tunnel []Result
	for _, r := range results {
		if r.Jitter != nil && r.ConnectedRuns > 0 {
			tunnel = append(tunnel, r)
		}
	}
	if len(tunnel) > 0 {
		b.WriteString("\nThe tunnel's own report (its receiver's jitter buffer in the direction above, the other side's sender):\n\n")
		b.WriteString("| profile | tier | carrier | played % | repaired % | concealed % | longest gap ms | buffer delay ms (end / max) | redundancy | frames a packet | bitrate chosen | carrier switches | playout underruns |\n")
		b.WriteString("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, r := range tunnel {
			j := r.Jitter
			underruns := "–" // the CLI writes a file: it has no audio clock to fall behind
			if r.Tier == tierTunnelBrowser {
				underruns = fmt.Sprint(j.Underruns)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.1f | %.1f | %.1f | %.0f | %.0f / %.0f | %d | %d | %d | %d | %s |\n",
				r.Profile, r.Tier, strings.TrimPrefix(r.Path, "tunnel/"), j.PlayedPct, j.RepairedPct, j.ConcealedPct, j.LongestGapMs,
				j.DelayMs, j.MaxDelayMs, j.Redundancy, j.FramesPerPacket, j.Bitrate, j.Switches, underruns)
		}
	}
	b.WriteString(`
How to read it:
- **connected**: in how many runs the call's media came up; the call figures are the medians of those runs (a run that
  failed outright shows its reason).
- **path**: how the call's media went, as ICE chose it: direct, or through parleyd's TURN relay over UDP, TCP or TLS;
  for the tunnel, the carrier it ended on (webtransport: QUIC datagrams; websocket: TCP).
- **set-up**: from dialling to the first audio packet received by the caller.
- **frames played**: the share of the frames sent that a listener would have played, with a playout delay set to the
  95th percentile of the call's one-way delays (20 ms to 1 s); the rest never came (lost) or came too late. Frames
  sent less than the playout delay before the listener hung up are not counted (they were still waiting to be played).
  The figures are those of the direction that heard worse.
- **longest gap**: the longest stretch the listener heard nothing of the speech: for webrtc-cli the longest run of frames
  not played, for webrtc-browser the longest run of mostly concealed 50 ms samples, for the tunnel tiers the longest run
  of 20 ms slots in which either listener's jitter buffer played no frame (missing, or the buffer growing its delay: the
  frames then play later, but the silence is heard all the same).
- **playout delay**: from the sender handing a frame to the network to the listener playing it (the added one-way
  delay of the JSON's ` + "`added_delay_ms`" + `).
- **MOS**: the ITU-T G.107 E-model's, from the playout delay plus 40 ms, the frames not played, and how bursty their
  loss was (Opus taken as Ie 0, Bpl 25.1, an assumption: ITU-T publishes no Opus values). **STOI**: short-time
  objective intelligibility of the speech the listener would have heard against the speech sent. Its floor is not 0:
  by the published algorithm unrelated speech scores about 0.25 and noise about 0.45, so read it between those and 1.
- **tiers**: webrtc-cli is ` + "`parley call`/`parley answer`" + ` (Go, pion): frames, gaps and delay come from both sides'
  packet traces, and the listener is modelled (package lab/measure), its audio decoded by opusdec. webrtc-browser is the
  web client in headless Chromium: its figures are WebRTC's own statistics (samples concealed, the jitter buffer's
  delay plus half the round trip) and STOI is of what Chromium would have played (scored in 1 s windows, since its
  jitter buffer stretches time; it also carries Chromium's own audio processing and encoder, so read browser rows against each other).
  tunnel-cli is ` + "`parley call --path tunnel`" + ` (both sides): tier 2, the audio through parleyd's call tunnel. Its
  listener is observed, not modelled: "frames played" are those its own adaptive jitter buffer played (first copies and
  repairs from the redundant copies of later packets), "playout delay" the median from sending a frame to playing it,
  and STOI is of the speech made of those frames, each from the version of the speech it was sent from: the CLI sends
  from lower-bitrate encodings (opusenc at 6 to 32 kbit/s, ` + "`--send-lower`" + `) as its sender's chosen bitrate says,
  as a browser sets its encoder. The second table is that jitter buffer's own report, with what the other side's sender
  chose. tunnel-browser is the web client's call through the tunnel (its "tunnel" setting, both sides in headless
  Chromium): Opus from WebCodecs at the bitrate its sender chooses, over the browser's own WebTransport or WebSocket.
  Its figures are its jitter buffer's (frames played of the slots up to the last frame that came; playout delay: the
  buffer's delay above the earliest arrivals plus half of each side's round trip to the server, without the audio
  output's own buffer), and STOI is of what its playout worklet played, scored as the browser tier's. "Playout
  underruns" counts the times that worklet ran dry: frames the tunnel delivered that reached the audio clock late. Under
  tcp-freeze-16k both tunnel tiers are kept to the WebSocket (` + "`--carrier websocket`" + `; the web client's
  ` + "`parley-tunnel-carrier`" + ` setting): with UDP open they would take WebTransport and never meet the freeze.
- **registering**: a new user registering under the profile (the two who call and write registered before it was
  turned on), within the run's time limit (90 s by default).
- **messages**: from typing a line into ` + "`parley chat`" + ` to the recipient's ` + "`parley recv`" + ` printing it, between CLI
  clients; the same figures are shown on every tier's rows. "Lost" is not shown within the window (the time to type
  them all plus 30 s): still queued, not necessarily gone.
`)
	return b.Bytes()
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 80 {
		s = s[:77] + "…"
	}
	return s
}

// chart is a bar chart of MOS (on its 1–4.5 scale) and STOI per profile,
// with the profiles where the call did not connect marked.
func chart(results []Result) []byte {
	const (
		left, top, rowH, barW = 150, 50, 44, 420
		width                 = left + barW + 90
	)
	height := top + rowH*len(results) + 40
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">Call quality per censor profile and tier</text>`+"\n", left)
	fmt.Fprintf(&b, `<rect x="%d" y="30" width="12" height="10" fill="#3461e0"/><text x="%d" y="39">MOS (E-model, 1 to 4.5)</text>`+"\n", left, left+16)
	fmt.Fprintf(&b, `<rect x="%d" y="30" width="12" height="10" fill="#1d8a4e"/><text x="%d" y="39">STOI (of 1)</text>`+"\n", left+190, left+206)
	for i, r := range results {
		y := top + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-10, y+16, html.EscapeString(r.Profile))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#666" font-size="11">%s</text>`+"\n", left-10, y+31, html.EscapeString(r.Tier))
		if r.ConnectedRuns == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#c4312b" font-weight="bold">did not connect</text>`+"\n", left+4, y+22)
			continue
		}
		mos := max(0, min(1, (r.MOS-1)/3.5))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="#3461e0"/><text x="%.1f" y="%d">%.2f</text>`+"\n",
			left, y+4, mos*barW, float64(left)+mos*barW+5, y+17, r.MOS)
		stoi := max(0, min(1, r.STOI))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="#1d8a4e"/><text x="%.1f" y="%d">%.2f</text>`+"\n",
			left, y+22, stoi*barW, float64(left)+stoi*barW+5, y+35, r.STOI)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`+"\n", left, top, left, top+rowH*len(results))
	b.WriteString("</svg>\n")
	return b.Bytes()
}
