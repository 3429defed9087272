package client

// Path memory: the client remembers, for each network it has been on (see
// NetworkID), how its last calls there went: which tier carried them,
// whether they connected, and by which way. A call made later on the same
// network starts with what worked there ("parley call --path auto").
//
// It is one record (RecordPaths, key ""), JSON, version 1:
//
//	{"v":1,"networks":[{"id":"3f0c…","outcomes":[{"at":"2026-11-28T14:02:00Z","tier":"webrtc","connected":false}]}]}
//
// Networks are in the order of their last call, the most recent last;
// each keeps its last maxOutcomes outcomes, oldest first, and only the
// last maxNetworks networks are kept. A record that does not decode, or
// of another version, is taken for empty and replaced by the next write;
// outcomes of an unknown tier are skipped. The memory is a hint: it is
// never worth failing a call for.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The call tiers of a PathOutcome. The values are stored: never change one.
const (
	TierWebRTC = "webrtc" // WebRTC, direct or through the TURN relay
	TierTunnel = "tunnel" // the server's call tunnel
)

// PathOutcome is how one call went on one network.
type PathOutcome struct {
	At        time.Time     `json:"at"`
	Tier      string        `json:"tier"` // TierWebRTC or TierTunnel
	Outgoing  bool          `json:"out,omitempty"`
	Connected bool          `json:"connected"`
	Connect   time.Duration `json:"connect_ns,omitempty"` // from dialling or answering to the media path being up
	// WebRTC: the way ICE took, "direct", "relay" (through our side's
	// TURN relay) or "peer relay"; with "relay", how the relay was
	// reached: "udp", "tcp" or "tls".
	ICE       string `json:"ice,omitempty"`
	Relay     string `json:"relay,omitempty"`
	RelayOnly bool   `json:"relay_only,omitempty"`
	// Tunnel: the carrier kind the call ended on, and the kinds it left
	// because they lost media or froze.
	Carrier string   `json:"carrier,omitempty"`
	Left    []string `json:"left,omitempty"`
}

// NetworkPaths is what is remembered of one network.
type NetworkPaths struct {
	ID       string        `json:"id"`
	Outcomes []PathOutcome `json:"outcomes"` // oldest first
}

// Bounds of the memory, and its record's version.
const (
	maxOutcomes  = 8
	maxNetworks  = 64
	pathsVersion = 1
)

type pathsJSON struct {
	V        int            `json:"v"`
	Networks []NetworkPaths `json:"networks"`
}

// PathMemory reads and writes the path memory in a Store.
type PathMemory struct {
	st Store
	mu sync.Mutex // serialises Remember's read, change and write in this process
}

// NewPathMemory returns the path memory kept in st. Use one per process:
// two processes that remember at the same moment may lose one outcome.
func NewPathMemory(st Store) *PathMemory { return &PathMemory{st: st} }

// PathMemory returns the path memory in the client's Store.
func (c *Client) PathMemory() *PathMemory { return NewPathMemory(c.st) }

// load returns the networks stored, the most recent last. Only the
// Store's errors are returned: a record that does not decode is empty.
func (m *PathMemory) load(ctx context.Context) ([]NetworkPaths, error) {
	b, err := m.st.Record(ctx, RecordPaths, "")
	if err != nil || b == nil {
		return nil, err
	}
	var j pathsJSON
	if json.Unmarshal(b, &j) != nil || j.V != pathsVersion {
		return nil, nil
	}
	var out []NetworkPaths
	for _, n := range j.Networks {
		n.Outcomes = slices.DeleteFunc(n.Outcomes, func(o PathOutcome) bool {
			return o.Tier != TierWebRTC && o.Tier != TierTunnel
		})
		if n.ID != "" && len(n.Outcomes) > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// Networks returns what is remembered, the network of the latest call
// first.
func (m *PathMemory) Networks(ctx context.Context) ([]NetworkPaths, error) {
	ns, err := m.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the path memory: %w", err)
	}
	slices.Reverse(ns)
	return ns, nil
}

// Outcomes returns the outcomes remembered on network, oldest first.
func (m *PathMemory) Outcomes(ctx context.Context, network string) ([]PathOutcome, error) {
	ns, err := m.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the path memory: %w", err)
	}
	for _, n := range ns {
		if n.ID == network {
			return n.Outcomes, nil
		}
	}
	return nil, nil
}

// Remember adds o to what is remembered of network, dropping the oldest
// outcome of the network, or the network used least lately, beyond the
// bounds.
func (m *PathMemory) Remember(ctx context.Context, network string, o PathOutcome) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ns, err := m.load(ctx)
	if err != nil {
		return fmt.Errorf("reading the path memory: %w", err)
	}
	n := NetworkPaths{ID: network}
	if i := slices.IndexFunc(ns, func(n NetworkPaths) bool { return n.ID == network }); i >= 0 {
		n = ns[i]
		ns = slices.Delete(ns, i, i+1)
	}
	n.Outcomes = append(n.Outcomes, o)
	n.Outcomes = n.Outcomes[max(0, len(n.Outcomes)-maxOutcomes):]
	ns = append(ns, n)
	ns = ns[max(0, len(ns)-maxNetworks):]
	b, err := json.Marshal(pathsJSON{V: pathsVersion, Networks: ns})
	if err != nil {
		return err
	}
	if err := m.st.Apply(ctx, &Batch{Records: []Record{{Kind: RecordPaths, Value: b}}}); err != nil {
		return fmt.Errorf("writing the path memory: %w", err)
	}
	return nil
}

// Forget forgets every network.
func (m *PathMemory) Forget(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.st.Apply(ctx, &Batch{Records: []Record{{Kind: RecordPaths}}}); err != nil {
		return fmt.Errorf("clearing the path memory: %w", err)
	}
	return nil
}

// PathChoice is what the memory advises for a call on one network. The
// Why fields are for the user.
type PathChoice struct {
	Tier string // TierWebRTC or TierTunnel
	Why  string
	// Carrier, if not "", is the tunnel carrier kind to try first: the
	// one the last tunnelled call here ended on, unless it left it.
	Carrier, CarrierWhy string
	// TURN, if not "", is the one transport to the TURN relay ("tcp" or
	// "tls") worth trying: the last WebRTC call here connected through
	// the relay over it.
	TURN, TURNWhy string
}

// How the memory is read. An outcome older than forgetAfter says nothing
// of the network today. A WebRTC call that only connected through the
// relay after slowRelay is as bad as one that did not connect, when the
// tunnel connected faster: a caller who hears nothing for that long hangs
// up.
const (
	forgetAfter = 30 * 24 * time.Hour
	slowRelay   = 5 * time.Second
)

// ChoosePath advises the tier of a call on a network from its outcomes
// (oldest first), at now. It takes the tunnel when the last WebRTC call
// there did not connect, or connected only through the relay after
// slowRelay, and the last call through the tunnel there connected (faster);
// WebRTC otherwise. Once the WebRTC failure falls out of the last
// maxOutcomes calls, or is older than forgetAfter, WebRTC is tried again:
// networks change.
func ChoosePath(outcomes []PathOutcome, now time.Time) PathChoice {
	var rtc, tun, tunOK *PathOutcome // the latest of each
	for i := range outcomes {
		o := &outcomes[i]
		if now.Sub(o.At) > forgetAfter {
			continue
		}
		switch o.Tier {
		case TierWebRTC:
			rtc = o
		case TierTunnel:
			tun = o
			if o.Connected {
				tunOK = o
			}
		}
	}
	ch := PathChoice{Tier: TierWebRTC}
	if tunOK != nil && tunOK.Carrier != "" && !slices.Contains(tunOK.Left, tunOK.Carrier) {
		ch.Carrier = tunOK.Carrier
		ch.CarrierWhy = fmt.Sprintf("remembered: the last call through the tunnel here went over %s, on %s", tunOK.Carrier, when(tunOK.At))
		if len(tunOK.Left) > 0 {
			ch.CarrierWhy += fmt.Sprintf(", after leaving %s", strings.Join(tunOK.Left, " and "))
		}
	}
	switch {
	case rtc == nil && tun == nil:
		ch.Why = "nothing remembered for this network"
	case rtc == nil:
		ch.Why = "remembered: no WebRTC call on this network yet"
	case !rtc.Connected && tun == tunOK && tunOK != nil:
		ch.Tier = TierTunnel
		ch.Why = fmt.Sprintf("remembered: on this network WebRTC did not connect on %s, the tunnel did on %s", when(rtc.At), when(tunOK.At))
	case rtc.Connected && rtc.ICE == "relay" && rtc.Connect > slowRelay && tun == tunOK && tunOK != nil && tunOK.Connect < rtc.Connect:
		ch.Tier = TierTunnel
		ch.Why = fmt.Sprintf("remembered: on this network WebRTC took %v to connect, through the relay, on %s; the tunnel took %v on %s",
			rtc.Connect.Round(100*time.Millisecond), when(rtc.At), tunOK.Connect.Round(100*time.Millisecond), when(tunOK.At))
	case !rtc.Connected && tun == nil:
		ch.Why = fmt.Sprintf("remembered: on this network WebRTC did not connect on %s, and the tunnel has not been tried here (the call races it beside WebRTC)", when(rtc.At))
	case !rtc.Connected:
		ch.Why = fmt.Sprintf("remembered: on this network WebRTC did not connect on %s, nor the tunnel on %s", when(rtc.At), when(tun.At))
	default:
		ch.Why = fmt.Sprintf("remembered: on this network WebRTC connected on %s (%s)", when(rtc.At), rtc.Way())
		if rtc.ICE == "relay" && (rtc.Relay == "tcp" || rtc.Relay == "tls") {
			ch.TURN = rtc.Relay
			ch.TURNWhy = fmt.Sprintf("remembered: on this network WebRTC connected only through the relay over %s, on %s", rtc.Relay, when(rtc.At))
		}
	}
	return ch
}

// Way says in words which way a call went: "direct", "relay over tcp",
// "tunnel over websocket"...
func (o PathOutcome) Way() string {
	switch {
	case o.Tier == TierTunnel && o.Carrier != "":
		return "tunnel over " + o.Carrier
	case o.Tier == TierTunnel:
		return "tunnel"
	case o.ICE == "relay" && o.Relay != "":
		return "relay over " + o.Relay
	case o.ICE != "":
		return o.ICE
	}
	return "webrtc"
}

// when formats t for the user, to the minute, in local time.
func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }
