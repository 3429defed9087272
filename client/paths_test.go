package client_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientmem"
)

func TestPathMemoryRemembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := clientmem.New()
	m := client.NewPathMemory(st)
	t0 := time.Date(2026, 11, 28, 14, 2, 0, 0, time.UTC)
	for i := range 10 {
		o := client.PathOutcome{At: t0.Add(time.Duration(i) * time.Minute), Tier: client.TierTunnel, Connected: true, Carrier: "websocket"}
		if err := m.Remember(ctx, "home", o); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remember(ctx, "cafe", client.PathOutcome{At: t0, Tier: client.TierWebRTC}); err != nil {
		t.Fatal(err)
	}
	// Another PathMemory on the same Store reads what the first wrote.
	got, err := client.NewPathMemory(st).Outcomes(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || !got[0].At.Equal(t0.Add(2*time.Minute)) || !got[7].At.Equal(t0.Add(9*time.Minute)) {
		t.Errorf("home keeps %d outcomes, %v to %v; want the last 8", len(got), got[0].At, got[len(got)-1].At)
	}
	ns, err := m.Networks(ctx)
	if err != nil || len(ns) != 2 || ns[0].ID != "cafe" || ns[1].ID != "home" {
		t.Errorf("networks %+v, %v; want cafe (the latest), then home", ns, err)
	}
	if err := m.Forget(ctx); err != nil {
		t.Fatal(err)
	}
	if ns, err := m.Networks(ctx); err != nil || len(ns) != 0 {
		t.Errorf("after Forget: %+v, %v", ns, err)
	}
}

func TestPathMemoryBoundsNetworks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := client.NewPathMemory(clientmem.New())
	for i := range 70 {
		if err := m.Remember(ctx, fmt.Sprint("net", i), client.PathOutcome{At: time.Now(), Tier: client.TierWebRTC, Connected: true}); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := m.Networks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 64 || ns[0].ID != "net69" || ns[63].ID != "net6" {
		t.Errorf("%d networks, %s to %s; want 64, net69 to net6", len(ns), ns[0].ID, ns[len(ns)-1].ID)
	}
}

func TestPathMemoryIgnoresCorrupt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, rec := range map[string]string{
		"garbage":      "\x00not json",
		"version":      `{"v":99,"networks":[{"id":"home","outcomes":[{"tier":"webrtc"}]}]}`,
		"unknown tier": `{"v":1,"networks":[{"id":"home","outcomes":[{"tier":"pigeon","connected":true}]},{"id":"","outcomes":[{"tier":"webrtc"}]}]}`,
		"wrong types":  `{"v":1,"networks":{"id":3}}`,
	} {
		st := clientmem.New()
		if err := st.Apply(ctx, &client.Batch{Records: []client.Record{{Kind: client.RecordPaths, Value: []byte(rec)}}}); err != nil {
			t.Fatal(err)
		}
		m := client.NewPathMemory(st)
		if got, err := m.Outcomes(ctx, "home"); err != nil || len(got) != 0 {
			t.Errorf("%s: outcomes %+v, %v; want none", name, got, err)
		}
		if ch := client.ChoosePath(nil, time.Now()); ch.Tier != client.TierWebRTC {
			t.Errorf("%s: chose %s", name, ch.Tier)
		}
		// The next call's outcome replaces it.
		if err := m.Remember(ctx, "home", client.PathOutcome{At: time.Now(), Tier: client.TierTunnel, Connected: true}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := m.Outcomes(ctx, "home"); err != nil || len(got) != 1 {
			t.Errorf("%s: after Remember, outcomes %+v, %v", name, got, err)
		}
	}
}

func TestChoosePath(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 15, 0, 0, 0, time.Local)
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	rtcFailed := client.PathOutcome{At: at(time.Hour), Tier: client.TierWebRTC, Outgoing: true}
	rtcDirect := client.PathOutcome{At: at(30 * time.Minute), Tier: client.TierWebRTC, Connected: true, Connect: time.Second, ICE: "direct"}
	rtcSlowRelay := client.PathOutcome{At: at(time.Hour), Tier: client.TierWebRTC, Connected: true, Connect: 8 * time.Second, ICE: "relay", Relay: "tcp"}
	rtcTCP := client.PathOutcome{At: at(time.Hour), Tier: client.TierWebRTC, Connected: true, Connect: time.Second, ICE: "relay", Relay: "tcp"}
	tunOK := client.PathOutcome{At: at(50 * time.Minute), Tier: client.TierTunnel, Connected: true, Connect: 500 * time.Millisecond, Carrier: "websocket", Left: []string{"webtransport"}}
	tunFailed := client.PathOutcome{At: at(40 * time.Minute), Tier: client.TierTunnel}
	tunLeft := client.PathOutcome{At: at(50 * time.Minute), Tier: client.TierTunnel, Connected: true, Carrier: "webtransport", Left: []string{"webtransport"}}
	old := rtcFailed
	old.At = at(40 * 24 * time.Hour)
	for _, tc := range []struct {
		name     string
		outcomes []client.PathOutcome
		tier     string
		why      string
		carrier  string
		turn     string
	}{
		{"nothing", nil, "webrtc", "nothing remembered for this network", "", ""},
		{"webrtc failed, tunnel worked", []client.PathOutcome{rtcFailed, tunOK}, "tunnel",
			"remembered: on this network WebRTC did not connect on 2026-11-28 14:00, the tunnel did on 2026-11-28 14:10", "websocket", ""},
		{"webrtc failed, tunnel not tried", []client.PathOutcome{rtcFailed}, "webrtc", "the tunnel has not been tried here", "", ""},
		{"webrtc failed, tunnel failed after working", []client.PathOutcome{rtcFailed, tunOK, tunFailed}, "webrtc", "nor the tunnel on 2026-11-28 14:20", "websocket", ""},
		{"webrtc worked since", []client.PathOutcome{rtcFailed, tunOK, rtcDirect}, "webrtc", "WebRTC connected on 2026-11-28 14:30 (direct)", "websocket", ""},
		{"slow relay, faster tunnel", []client.PathOutcome{rtcSlowRelay, tunOK}, "tunnel", "WebRTC took 8s to connect, through the relay", "websocket", ""},
		{"relay over tcp only", []client.PathOutcome{rtcTCP}, "webrtc", "(relay over tcp)", "", "tcp"},
		{"carrier left for loss", []client.PathOutcome{rtcFailed, tunLeft}, "tunnel", "did not connect", "", ""},
		{"too old", []client.PathOutcome{old, tunOK}, "webrtc", "no WebRTC call on this network yet", "websocket", ""},
	} {
		ch := client.ChoosePath(tc.outcomes, now)
		if ch.Tier != tc.tier || !strings.Contains(ch.Why, tc.why) || ch.Carrier != tc.carrier || ch.TURN != tc.turn {
			t.Errorf("%s: chose %+v; want %s (%q), carrier %q, turn %q", tc.name, ch, tc.tier, tc.why, tc.carrier, tc.turn)
		}
	}
}
