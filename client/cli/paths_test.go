package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/call"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/tunnel"
)

func TestTiersArePaths(t *testing.T) {
	t.Parallel()
	if client.TierWebRTC != call.PathWebRTC || client.TierTunnel != call.PathTunnel {
		t.Error("the path memory's tiers are not call's paths: applyChoice hands one for the other")
	}
}

func TestApplyChoice(t *testing.T) {
	t.Parallel()
	tunnelWorked := client.PathChoice{Tier: client.TierTunnel, Why: "remembered: on this network WebRTC did not connect on 2026-11-28 14:02, the tunnel did on 2026-11-28 14:05",
		Carrier: "websocket", CarrierWhy: "remembered: ..."}
	relayTCP := client.PathChoice{Tier: client.TierWebRTC, Why: "remembered: ...", TURN: "tcp", TURNWhy: "remembered: relay over tcp"}
	auto := callOpts{path: pathAuto, carrier: "any", transport: "all"}
	for _, tc := range []struct {
		name    string
		o       callOpts
		ch      client.PathChoice
		path    string
		prefer  string
		turn    string
		printed string
	}{
		{"auto takes the memory's tier", auto, tunnelWorked, "tunnel", "websocket", "all",
			"path: tunnel (remembered: on this network WebRTC did not connect on 2026-11-28 14:02, the tunnel did on 2026-11-28 14:05)\ncarrier: websocket first (remembered: ...)\n"},
		{"nothing remembered", auto, client.PathChoice{Tier: client.TierWebRTC, Why: "nothing remembered for this network"}, "webrtc", "", "all",
			"path: webrtc (nothing remembered for this network)\n"},
		{"--path webrtc wins", callOpts{path: "webrtc", carrier: "any", transport: "all"}, tunnelWorked, "webrtc", "", "all", ""},
		{"--carrier wins", callOpts{path: "tunnel", carrier: "webtransport", transport: "all"}, tunnelWorked, "tunnel", "", "all", ""},
		{"remembered TURN transport", auto, relayTCP, "webrtc", "", "tcp", "path: webrtc (remembered: ...)\nturn transport: tcp (remembered: relay over tcp)\n"},
		{"--turn-transport wins", callOpts{path: pathAuto, carrier: "any", transport: "udp"}, relayTCP, "webrtc", "", "udp", "path: webrtc (remembered: ...)\n"},
	} {
		var out strings.Builder
		o := applyChoice(&out, tc.o, tc.ch)
		if o.path != tc.path || o.prefer != tc.prefer || o.transport != tc.turn || out.String() != tc.printed {
			t.Errorf("%s: path %q, prefer %q, transport %q, printed %q", tc.name, o.path, o.prefer, o.transport, out.String())
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	ts := &call.TunnelStats{Switches: []tunnel.Switch{
		{From: "webtransport#1", To: "websocket#2", Cause: tunnel.CauseLossy, Reason: "webtransport#1 lossy: 50% of the media lost after repair"},
		{From: "websocket#2", To: "websocket#3", Cause: tunnel.CauseRotated, Reason: "websocket#2 rotated at 9000 bytes: the last frozen flow stopped at 14000"},
		{From: "websocket#3", To: "webtransport#4", Cause: tunnel.CauseUp, Reason: "up to webtransport#4: datagrams carry media without TCP's head-of-line blocking"},
		{From: "webtransport#4", To: "", Cause: tunnel.CauseFailed, Reason: "closed: EOF"},
	}}
	for _, tc := range []struct {
		st        call.Stats
		atConnect string
		want      client.PathOutcome
	}{
		{call.Stats{Connect: time.Second, Path: "tunnel/websocket", Tunnel: ts}, "tunnel/webtransport",
			client.PathOutcome{Connected: true, Connect: time.Second, Carrier: "websocket", Left: []string{"webtransport", "websocket"}}},
		{call.Stats{Connect: time.Second, Path: "tunnel/", Tunnel: ts}, "tunnel/webtransport",
			client.PathOutcome{Connected: true, Connect: time.Second, Carrier: "webtransport", Left: []string{"webtransport", "websocket"}}},
		{call.Stats{Connect: time.Second, Path: "tunnel/", Tunnel: &call.TunnelStats{}}, "tunnel/websocket",
			client.PathOutcome{Connected: true, Connect: time.Second, Carrier: "websocket"}},
		{call.Stats{Connect: time.Second, Path: "host/host"}, "host/host", client.PathOutcome{Connected: true, Connect: time.Second, ICE: "direct"}},
		{call.Stats{Connect: time.Second, Path: "relay/host", Relay: "tls"}, "", client.PathOutcome{Connected: true, Connect: time.Second, ICE: "relay", Relay: "tls"}},
		{call.Stats{Connect: time.Second, Path: "srflx/relay"}, "", client.PathOutcome{Connected: true, Connect: time.Second, ICE: "peer relay"}},
		{call.Stats{}, "", client.PathOutcome{}},
	} {
		if diff := cmp.Diff(tc.want, outcomeOf(tc.st, tc.atConnect)); diff != "" {
			t.Errorf("outcomeOf(%+v) (-want +got):\n%s", tc.st, diff)
		}
	}
}
