package tunnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley"
	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
)

// freezable wraps a carrier so that a test can freeze it as the
// tcp-freeze-16k censor does: nothing more arrives, sends vanish.
type freezable struct {
	tunnel.Carrier
	owner  parley.Address
	kind   string // if set, what Kind says
	frozen atomic.Bool
	lossy  atomic.Bool // every other message from the server is lost
	// keepOneIn, when above 1, loses all but one in that many media
	// messages from the server, as a censor throttling the flow does.
	keepOneIn atomic.Int32
	slow      atomic.Bool // nothing is read until it is cleared
	n         int
	media     int
	net       *testNet
	pings     atomic.Int32 // pings sent
	closed    atomic.Bool
}

func (f *freezable) Close() error {
	f.closed.Store(true)
	return f.Carrier.Close()
}

func (f *freezable) Recv(ctx context.Context) ([]byte, error) {
	for f.slow.Load() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	for {
		m, err := f.Carrier.Recv(ctx)
		if err != nil {
			return m, err
		}
		f.n++
		if k := int(f.keepOneIn.Load()); k > 1 && len(m) > 0 && tunnel.MsgType(m[0]) == tunnel.MsgMedia {
			if f.media++; f.media%k != 0 {
				continue
			}
		}
		if !f.frozen.Load() && !(f.lossy.Load() && f.n%2 == 0) {
			return m, err
		}
	}
}

func (f *freezable) Kind() string {
	if f.kind != "" {
		return f.kind
	}
	return f.Carrier.Kind()
}

// delay is how long what the device sends takes to leave (testNet.delay).
func (f *freezable) delay() time.Duration {
	if f.net == nil { // a carrier made by the test itself
		return 0
	}
	return time.Duration(f.net.delay.Load())
}

func (f *freezable) Send(ctx context.Context, m []byte) error {
	if f.frozen.Load() {
		return nil
	}
	if len(m) > 0 && tunnel.MsgType(m[0]) == tunnel.MsgPing {
		f.pings.Add(1)
	}
	if d := f.delay(); d > 0 {
		m = slices.Clone(m)
		time.AfterFunc(d, func() { f.Carrier.Send(context.Background(), m) })
		return nil
	}
	return f.Carrier.Send(ctx, m)
}

type testNet struct {
	h   *hub.Hub
	url string

	mu       sync.Mutex
	carriers []*freezable
	kinds    []string     // if set, what the Kind of each device's k-th carrier says ("" leaves it)
	delay    atomic.Int64 // if set, how long what the devices send takes to leave (a slow path)
	noDial   atomic.Bool  // dials fail
	dials    atomic.Int32 // dials tried
}

func newTestNet(t *testing.T) *testNet {
	h := hub.NewHub(hub.Config{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testNet{h: h, url: srv.URL}
}

func (n *testNet) link(t *testing.T, addr parley.Address, room tunnel.RoomID) *tunnel.Link {
	t.Helper()
	return n.linkWith(t, addr, room, nil)
}

func (n *testNet) linkWith(t *testing.T, addr parley.Address, room tunnel.RoomID, log *slog.Logger) *tunnel.Link {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := tunnel.OpenLink(ctx, tunnel.LinkConfig{
		Room:   room,
		Logger: log,
		Ticket: func(context.Context) (*tunnel.Ticket, error) {
			tk, ttl := n.h.Ticket(addr)
			u, err := tunnel.ResolveURL(n.url, tunnel.Path)
			return &tunnel.Ticket{Ticket: tk, URLs: []string{u}, Expires: time.Now().Add(ttl)}, err
		},
		Dial: func(ctx context.Context, u string, tk *tunnel.Ticket, room tunnel.RoomID) (tunnel.Carrier, error) {
			n.dials.Add(1)
			if n.noDial.Load() {
				return nil, errors.New("the path is full")
			}
			c, err := tunnel.DialWebSocket(ctx, u, nil, room, tk.Ticket)
			if err != nil {
				return nil, err
			}
			f := &freezable{Carrier: c, owner: addr, net: n}
			n.mu.Lock()
			if k := n.opened(addr); k < len(n.kinds) {
				f.kind = n.kinds[k]
			}
			n.carriers = append(n.carriers, f)
			n.mu.Unlock()
			return f, nil
		},
	})
	if err != nil {
		t.Fatalf("OpenLink %v: %v", addr, err)
	}
	t.Cleanup(l.Close)
	return l
}

// waitOpened waits, saying what for, until addr has opened k carriers.
func (n *testNet) waitOpened(t *testing.T, what string, addr parley.Address, k int) {
	t.Helper()
	waitFor(t, what, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.opened(addr) >= k
	})
}

// opened counts the carriers addr has opened. Called with n.mu held.
func (n *testNet) opened(addr parley.Address) int {
	k := 0
	for _, c := range n.carriers {
		if c.owner == addr {
			k++
		}
	}
	return k
}

func recvWithin(t *testing.T, l *tunnel.Link, d time.Duration) []byte {
	t.Helper()
	select {
	case m := <-l.Media():
		return m.Payload
	case <-time.After(d):
		t.Fatalf("no media within %v", d)
		return nil
	}
}

func TestLinkForwardsMedia(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	room := tunnel.RoomID{1}
	a := n.link(t, parley.Address{User: "alice", Device: 1}, room)
	b := n.link(t, parley.Address{User: "bob", Device: 1}, room)
	select {
	case p := <-a.Peer():
		if !p {
			t.Fatal("alice heard bob leave")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alice was not told that bob joined")
	}
	a.Send([]byte("hello bob"))
	if got := recvWithin(t, b, 5*time.Second); string(got) != "hello bob" {
		t.Fatalf("bob got %q", got)
	}
	b.Send([]byte("hello alice"))
	if got := recvWithin(t, a, 5*time.Second); string(got) != "hello alice" {
		t.Fatalf("alice got %q", got)
	}
	if a.Path() != "websocket" {
		t.Errorf("path %q", a.Path())
	}
}

func TestLinkSurvivesFreeze(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	room := tunnel.RoomID{2}
	a := n.link(t, parley.Address{User: "alice", Device: 1}, room)
	b := n.link(t, parley.Address{User: "bob", Device: 1}, room)
	// Wait for both spares, so that the freeze is survived without a dial.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n.mu.Lock()
		k := len(n.carriers)
		n.mu.Unlock()
		if k >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d carriers opened, want 4 (two each)", k)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Alice sends a frame every 20 ms; bob's active carrier freezes.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			a.Send([]byte{byte(i), byte(i >> 8)})
		}
	}()
	recvWithin(t, b, 5*time.Second)
	// On the active carrier, nothing is resent.
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		if m := <-b.Media(); m.Resent || m.Aside {
			t.Fatalf("media on the active carrier came marked %+v", m)
		}
	}
	bobActive := n.carrierOf(t, "bob", 0) // the first carrier bob opened is his active one
	bobActive.frozen.Store(true)
	frozenAt := time.Now()
	// Drain what was in flight, then measure the gap.
	var last time.Time
	gap := time.Duration(0)
	resent := 0
	for time.Since(frozenAt) < 2*time.Second {
		select {
		case m := <-b.Media():
			if m.Resent {
				resent++
			}
			now := time.Now()
			if !last.IsZero() && now.Sub(last) > gap {
				gap = now.Sub(last)
			}
			last = now
		case <-time.After(3 * time.Second):
			t.Fatal("media stopped after the freeze")
		}
	}
	sw := b.Switches()
	if len(sw) == 0 || !strings.Contains(sw[0].Reason, "frozen") {
		t.Fatalf("switches %+v, want one for a frozen carrier", sw)
	}
	t.Logf("switch: %+v; longest gap in arrivals %v; %d resent", sw[0], gap, resent)
	// The server replays on the new carrier what went into the frozen one
	// lately, as Replay: late by design, which the jitter buffer must not
	// take for the path's lateness.
	if resent == 0 {
		t.Errorf("no media came marked resent after the move: the server's replay should")
	}
	if gap > 600*time.Millisecond {
		t.Errorf("longest gap %v, want under 600 ms", gap)
	}
}

func TestRoomHoldsTwoDevices(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	room := tunnel.RoomID{3}
	n.link(t, parley.Address{User: "alice", Device: 1}, room)
	n.link(t, parley.Address{User: "bob", Device: 1}, room)
	tk, _ := n.h.Ticket(parley.Address{User: "mallory", Device: 1})
	u, _ := tunnel.ResolveURL(n.url, tunnel.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tunnel.DialWebSocket(ctx, u, nil, room, tk)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kind, text, err := tunnel.ParseError(msg)
	if err != nil || kind != string(parley.KindConflict) {
		t.Fatalf("third device got %x (%v), want a conflict error", msg, err)
	}
	t.Logf("refused: %s", text)
}

func TestBadTicket(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	tk, _ := n.h.Ticket(parley.Address{User: "alice", Device: 1})
	other := hub.NewHub(hub.Config{}) // another server's key
	forged, _ := other.Ticket(parley.Address{User: "alice", Device: 1})
	u, _ := tunnel.ResolveURL(n.url, tunnel.Path)
	for name, ticket := range map[string]string{
		"forged":   forged,
		"tampered": strings.Replace(tk, "alice", "alicf", 1),
		"garbage":  "x",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := tunnel.DialWebSocket(ctx, u, nil, tunnel.RoomID{4}, ticket)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		msg, err := c.Recv(ctx)
		c.Close()
		cancel()
		kind, _, perr := tunnel.ParseError(msg)
		if err != nil || perr != nil || kind != string(parley.KindUnauthorized) {
			t.Errorf("%s ticket: got %x, %v; want an unauthorized error", name, msg, err)
		}
	}
}

func TestResolveURL(t *testing.T) {
	for _, c := range []struct{ server, ref, want string }{
		{"http://127.0.0.1:8080", "/v1/tunnel", "ws://127.0.0.1:8080/v1/tunnel"},
		{"https://parley.example", "/v1/tunnel", "wss://parley.example/v1/tunnel"},
		{"https://parley.example", "https://parley.example:8443/v1/tunnel", "https://parley.example:8443/v1/tunnel"},
	} {
		got, err := tunnel.ResolveURL(c.server, c.ref)
		if err != nil || got != c.want {
			t.Errorf("ResolveURL(%q, %q) = %q, %v; want %q", c.server, c.ref, got, err, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := [][]byte{
		tunnel.AppendJoin(nil, tunnel.RoomID{}, "t"),
		tunnel.AppendMedia(nil, bytes.Repeat([]byte{1}, tunnel.MaxMedia)),
		tunnel.AppendPing(nil, tunnel.MsgPing, 7),
		{byte(tunnel.MsgSelect)},
	}
	for _, m := range ok {
		if err := tunnel.Check(m, true); err != nil {
			t.Errorf("Check(%x): %v", m[:min(len(m), 8)], err)
		}
	}
	bad := [][]byte{
		nil,
		tunnel.AppendMedia(nil, make([]byte, tunnel.MaxMedia+1)),
		tunnel.AppendJoin(nil, tunnel.RoomID{}, ""),
		tunnel.AppendJoin(nil, tunnel.RoomID{}, strings.Repeat("t", tunnel.MaxTicket+1)),
		tunnel.AppendPing(nil, tunnel.MsgPong, 7), // a client does not pong
		{byte(tunnel.MsgPing), 1},
		{99},
	}
	for _, m := range bad {
		if err := tunnel.Check(m, true); err == nil {
			t.Errorf("Check(%x) accepted", m)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(tunnel.AppendJoin(nil, tunnel.RoomID{9}, "123:alice.1:mac"), true)
	f.Add(tunnel.AppendError(nil, "invalid", "no"), false)
	f.Add([]byte{byte(tunnel.MsgPeer), 1}, false)
	f.Fuzz(func(t *testing.T, m []byte, toServer bool) {
		if tunnel.Check(m, toServer) != nil || len(m) == 0 {
			return
		}
		switch tunnel.MsgType(m[0]) {
		case tunnel.MsgJoin:
			room, ticket, err := tunnel.ParseJoin(m)
			if err != nil || !bytes.Equal(tunnel.AppendJoin(nil, room, ticket), m) {
				t.Fatalf("join %x does not round-trip", m)
			}
		case tunnel.MsgError:
			kind, text, err := tunnel.ParseError(m)
			if err != nil || !bytes.Equal(tunnel.AppendError(nil, kind, text), m) {
				t.Fatalf("error %x does not round-trip", m)
			}
		}
	})
}

// TestFifthCarrierReplacesOldest: a device that keeps replacing frozen
// carriers is not locked out; its oldest carrier that is not the active
// one makes room.
func TestFifthCarrierReplacesOldest(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	tk, _ := n.h.Ticket(parley.Address{User: "alice", Device: 1})
	u, _ := tunnel.ResolveURL(n.url, tunnel.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cs []tunnel.Carrier
	for i := range 5 {
		c, err := tunnel.DialWebSocket(ctx, u, nil, tunnel.RoomID{5}, tk)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if m, err := c.Recv(ctx); err != nil || tunnel.MsgType(m[0]) != tunnel.MsgJoined {
			t.Fatalf("carrier %d: join answered %x, %v", i+1, m, err)
		}
		if i == 0 {
			// The first is the active one: it must stay.
			if err := c.Send(ctx, tunnel.AppendSelect(nil, false)); err != nil {
				t.Fatal(err)
			}
		}
		cs = append(cs, c)
	}
	m, err := cs[1].Recv(ctx)
	if kind, _, perr := tunnel.ParseError(m); err != nil || perr != nil || kind != string(parley.KindRateLimited) {
		t.Fatalf("the second carrier got %x, %v; want it replaced", m, err)
	}
	if got := n.h.Stats().Carriers; got != 4 {
		t.Errorf("%d carriers joined, want 4", got)
	}
	// The active one still works.
	if err := cs[0].Send(ctx, tunnel.AppendPing(nil, tunnel.MsgPing, 9)); err != nil {
		t.Fatal(err)
	}
	if m, err := cs[0].Recv(ctx); err != nil || tunnel.MsgType(m[0]) != tunnel.MsgPong {
		t.Errorf("the active carrier answered a ping with %x, %v", m, err)
	}
}

// TestLinkLeavesLossyCarrier: told that the media on its WebTransport
// carrier is lost after repair, the Link puts it on trial beside its
// WebSocket spare; the carrier, throttled to a third of the media, fails
// the trial, and the Link moves to the WebSocket without losing media on
// the way. Loss for a moment, or on a slow path, starts no trial.
func TestLinkLeavesLossyCarrier(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{6}, "webtransport", "")
	alice := parley.Address{User: "alice", Device: 1}
	n.waitOpened(t, "a spare", alice, 2)
	stop := talk(t, a, b)
	endOfTrial(t, a)       // the trial at the start, which it passes
	a.ReportLoss(0.05)     // repairable
	a.ReportLoss(0.2)      // one bad half second: a burst, not a lossy path
	a.SetConstrained(true) // a queue's loss: every carrier shares it
	a.ReportLoss(0.9)
	if a.InTrial() || a.Path() != "webtransport" {
		t.Fatalf("a trial or a move for a moment's loss, or a slow path's: %+v", a.Switches())
	}
	a.SetConstrained(false)
	n.carrierOf(t, "alice", 0).keepOneIn.Store(3)
	a.ReportLoss(0.5)
	if !a.InTrial() {
		t.Fatalf("no trial after 50%% loss; switches %+v", a.Switches())
	}
	waitFor(t, "the move off the lossy carrier", func() bool { return a.Path() == "websocket" })
	time.Sleep(500 * time.Millisecond)
	got := stop()
	sw := a.Switches()
	if len(sw) != 1 || sw[0].Cause != tunnel.CauseLossy || !strings.Contains(sw[0].Reason, "lossy: 50% of the media lost after repair, and it carried") ||
		!strings.Contains(sw[0].Reason, "in a trial beside websocket") {
		t.Errorf("switches %+v, want one for loss, after a trial", sw)
	}
	got.check(t, 0.99)
}

// TestLinkLeavesCongestedCarrier: on a constrained path, loss is the
// queue's and no reason to move, unless the carrier lost most of the
// media for ten seconds (a QUIC connection trading probes and
// acknowledgements with the server that keep the queue full): then it is
// left for the spare, without a trial.
func TestLinkLeavesCongestedCarrier(t *testing.T) {
	t.Parallel()
	_, a, _, stop := talkingPair(t, tunnel.RoomID{24}, func(l *tunnel.Link) { l.SetConstrained(true) })
	report := func(d time.Duration, loss ...float64) {
		for i := 0; d > 0; i, d = i+1, d-250*time.Millisecond {
			a.ReportLoss(loss[i%len(loss)])
			time.Sleep(250 * time.Millisecond)
		}
	}
	report(9*time.Second, 0.8, 0.1) // a queue's loss, under half of it
	if sw := a.Switches(); len(sw) != 0 || a.InTrial() {
		t.Fatalf("moved for the loss of a queue on a slow path: %+v", sw)
	}
	report(9*time.Second, 0.8)
	got := stop()
	sw := a.Switches()
	if len(sw) != 1 || sw[0].Cause != tunnel.CauseLossy || !strings.Contains(sw[0].Reason, "lossy on a slow path") || a.Path() != "websocket" {
		t.Errorf("path %s, switches %+v; want one to the websocket for loss on a slow path", a.Path(), sw)
	}
	got.check(t, 0.95)
	// A WebSocket is not left for the same loss: a TCP flow does not
	// fill the queue with probes, and the loss may be the other side's.
	report(9*time.Second, 0.8)
	if sw := a.Switches(); len(sw) != 1 {
		t.Errorf("the WebSocket was left too: %+v", sw)
	}
}

// TestLinkKeepsLossyCarrierThatCarries: reports of 12% loss, each under
// the severe mark, put the WebTransport carrier on trial once they have
// gone on for a second; it carries the media in the trial (the loss was
// the path's, which a WebSocket would not escape), and the Link stays.
func TestLinkKeepsLossyCarrierThatCarries(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{8}, "webtransport", "")
	n.waitOpened(t, "a spare", parley.Address{User: "alice", Device: 1}, 2)
	stop := talk(t, a, b)
	endOfTrial(t, a)
	start := time.Now()
	for !a.InTrial() && time.Since(start) < 3*time.Second {
		a.ReportLoss(0.12)
		time.Sleep(250 * time.Millisecond)
	}
	if took := time.Since(start); !a.InTrial() || took < 900*time.Millisecond {
		t.Fatalf("trial after %v of 12%% loss: %v; want one after a second's patience", took, a.InTrial())
	}
	waitFor(t, "the end of the trial", func() bool { return !a.InTrial() })
	a.ReportLoss(0.5) // kept: not on trial again at once
	got := stop()
	if sw := a.Switches(); len(sw) != 0 || a.Path() != "webtransport" || a.InTrial() {
		t.Errorf("path %s, switches %+v, in a trial %v; want webtransport kept", a.Path(), sw, a.InTrial())
	}
	got.check(t, 0.99)
}

// TestLinkMovesUp: started on a WebSocket, the Link moves up to a spare
// that is WebTransport once it has been up a second and carried the media
// in a trial.
func TestLinkMovesUp(t *testing.T) {
	t.Parallel()
	_, a, b := pair(t, tunnel.RoomID{7}, "", "webtransport")
	stop := talk(t, a, b)
	waitFor(t, "the move up", func() bool { return a.Path() == "webtransport" })
	got := stop()
	if sw := a.Switches(); len(sw) != 1 || !strings.Contains(sw[0].Reason, "up to webtransport#2: it carried") {
		t.Errorf("switches %+v", sw)
	}
	got.check(t, 0.99)
}

// TestLinkTrialKeepsWebTransport: a WebTransport carrier that carries the
// media passes the trial at the start of the call, which loses nothing and
// delivers each packet once.
func TestLinkTrialKeepsWebTransport(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{11}, "webtransport", "")
	stop := talk(t, a, b)
	waitFor(t, "a trial", a.InTrial)
	a.ReportLoss(0.9) // lost on both carriers: the trial decides, not this
	time.Sleep(3 * time.Second)
	got := stop()
	if sw := a.Switches(); a.Path() != "webtransport" || len(sw) != 0 {
		t.Errorf("path %s, switches %+v; want webtransport and none", a.Path(), sw)
	}
	got.check(t, 0.99)
	if st := n.h.Stats(); st.Duplicates == 0 {
		t.Errorf("hub stats %+v: no second copies dropped, so no trial ran", st)
	}
}

// TestLinkTrialLeavesThrottled: a WebTransport carrier that delivers a
// third of the media (a throttled UDP flow) fails the trial; the call
// moves to the WebSocket without losing media on the way.
func TestLinkTrialLeavesThrottled(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{12}, "webtransport", "")
	n.carrierOf(t, "alice", 0).keepOneIn.Store(3)
	alice := parley.Address{User: "alice", Device: 1}
	n.waitOpened(t, "a spare", alice, 2) // before it, the media has one way only
	stop := talk(t, a, b)
	waitFor(t, "the move off the throttled carrier", func() bool { return a.Path() == "websocket" })
	time.Sleep(500 * time.Millisecond)
	got := stop()
	sw := a.Switches()
	if len(sw) != 1 || sw[0].Cause != tunnel.CauseLossy || !strings.Contains(sw[0].Reason, "in a trial beside websocket") {
		t.Errorf("switches %+v, want one for a failed trial", sw)
	}
	got.check(t, 0.99)
	time.Sleep(2 * time.Second) // a new WebTransport spare: not tried again, not moved up to
	if a.Path() != "websocket" || len(a.Switches()) != 1 {
		t.Errorf("path %s, switches %+v after the failed trial", a.Path(), a.Switches())
	}
}

// endOfTrial waits for the trial that a WebTransport carrier with a
// WebSocket spare starts, which without media ends with no verdict:
// loss reports count only after it.
func endOfTrial(t *testing.T, l *tunnel.Link) {
	t.Helper()
	waitFor(t, "a trial", l.InTrial)
	waitFor(t, "the end of the trial", func() bool { return !l.InTrial() })
}

// pair opens alice's and bob's Links in room; each one's carriers say they
// are of the given kinds, in the order it opens them ("" leaves one be).
func pair(t *testing.T, room tunnel.RoomID, kinds ...string) (n *testNet, alice, bob *tunnel.Link) {
	n = newTestNet(t)
	n.kinds = kinds
	alice = n.link(t, parley.Address{User: "alice", Device: 1}, room)
	bob = n.link(t, parley.Address{User: "bob", Device: 1}, room)
	return n, alice, bob
}

// talkingPair opens alice's and bob's Links in room (alice's first
// carrier says it is WebTransport), applies set to both, and has them talk
// once alice has a spare.
func talkingPair(t *testing.T, room tunnel.RoomID, set func(*tunnel.Link)) (n *testNet, alice, bob *tunnel.Link, stop func() *talked) {
	t.Helper()
	n, alice, bob = pair(t, room, "webtransport", "")
	set(alice)
	set(bob)
	n.waitOpened(t, "alice's spare", parley.Address{User: "alice", Device: 1}, 2)
	return n, alice, bob, talk(t, alice, bob)
}

// TestLinkNoTrialWhenConstrained: on a path with no room for the media
// twice, no trial runs; once there is room, it does.
func TestLinkNoTrialWhenConstrained(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	n.kinds = []string{"webtransport", ""}
	room := tunnel.RoomID{13}
	links := make([]*tunnel.Link, 2)
	for i, user := range []parley.UserID{"alice", "bob"} {
		links[i] = n.link(t, parley.Address{User: user, Device: 1}, room)
		links[i].SetConstrained(true)
	}
	stop := talk(t, links[0], links[1])
	time.Sleep(2500 * time.Millisecond)
	if st := n.h.Stats(); st.Duplicates != 0 || links[0].InTrial() || links[1].InTrial() {
		t.Errorf("a trial on a constrained path: hub %+v", st)
	}
	links[0].SetConstrained(false)
	waitFor(t, "a trial", links[0].InTrial)
	stop().check(t, 0.99)
}

// TestLinkHoldsTrials: a Link whose trials are held tries no better
// kind of carrier until they are released.
func TestLinkHoldsTrials(t *testing.T) {
	t.Parallel()
	n, a, b, stop := talkingPair(t, tunnel.RoomID{14}, func(l *tunnel.Link) { l.HoldTrials(true) })
	time.Sleep(1500 * time.Millisecond)
	if st := n.h.Stats(); st.Duplicates != 0 || a.InTrial() || b.InTrial() {
		t.Errorf("a trial while held: hub %+v", st)
	}
	a.HoldTrials(false)
	waitFor(t, "a trial", a.InTrial)
	stop().check(t, 0.99)
}

// talked is what two Links sent each other: packets numbered from 0.
type talked struct {
	sent        [2]int
	got         [2]map[uint64]int // by receiver: copies of each packet
	outOfWindow [2]int
}

// check fails the test unless each side got at least share of the other's
// packets, each once.
func (tk *talked) check(t *testing.T, share float64) {
	t.Helper()
	for i, name := range []string{"alice", "bob"} {
		twice := 0
		for _, n := range tk.got[i] {
			if n > 1 {
				twice++
			}
		}
		if got := float64(len(tk.got[i])) / float64(max(tk.sent[1-i], 1)); got < share || twice > 0 {
			t.Errorf("%s got %d of %d packets (%.1f%%, want %.0f%%), %d twice", name, len(tk.got[i]), tk.sent[1-i], 100*got, 100*share, twice)
		}
	}
}

// talk sends numbered, distinct media both ways every 20 ms until the
// returned stop, which waits a moment for what is in flight.
func talk(t *testing.T, a, b *tunnel.Link) (stop func() *talked) {
	tk := &talked{got: [2]map[uint64]int{{}, {}}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	links := [2]*tunnel.Link{a, b}
	for i, l := range links {
		wg.Add(2)
		go func() { // send
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				p := make([]byte, 40)
				binary.BigEndian.PutUint64(p, uint64(tk.sent[i]))
				rand.Read(p[8:]) // distinct, as SFrame's tags are
				l.Send(p)
				tk.sent[i]++
			}
		}()
		go func() { // receive
			defer wg.Done()
			for {
				select {
				case m := <-l.Media():
					tk.got[i][binary.BigEndian.Uint64(m.Payload)]++
				case <-done:
					// What is still in flight.
					for {
						select {
						case m := <-l.Media():
							tk.got[i][binary.BigEndian.Uint64(m.Payload)]++
						case <-time.After(300 * time.Millisecond):
							return
						}
					}
				}
			}
		}()
	}
	return func() *talked {
		close(done)
		wg.Wait()
		return tk
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(8 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 8 s", what)
		}
	}
}

// TestLinkSlowNotFrozen: a carrier taken for frozen that speaks again
// within two seconds was only slow: the Link says so, and forgets what
// the flow carried rather than rotating later carriers by it.
func TestLinkSlowNotFrozen(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	var logs syncLog
	addr := parley.Address{User: "alice", Device: 1}
	l := n.linkWith(t, addr, tunnel.RoomID{8}, slog.New(slog.NewTextHandler(&logs, nil)))
	n.waitOpened(t, "a spare", addr, 2)
	first := n.carrierOf(t, "alice", 0)
	first.slow.Store(true)
	waitFor(t, "the switch", func() bool { return len(l.Switches()) > 0 })
	first.slow.Store(false)
	waitFor(t, "the carrier to speak again", func() bool { return strings.Contains(logs.String(), "was slow, not frozen") })
	if sw := l.Switches(); !strings.Contains(sw[0].Reason, "frozen") {
		t.Errorf("switches %+v", sw)
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTwoCallsAtMost: a device is in at most two rooms at once, whoever
// made them.
func TestTwoCallsAtMost(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	alice := parley.Address{User: "alice", Device: 1}
	for i := range 3 { // bob makes three rooms
		n.link(t, parley.Address{User: "bob", Device: parley.DeviceID(i + 1)}, tunnel.RoomID{9, byte(i)})
	}
	tk, _ := n.h.Ticket(alice)
	u, _ := tunnel.ResolveURL(n.url, tunnel.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		c, err := tunnel.DialWebSocket(ctx, u, nil, tunnel.RoomID{9, byte(i)}, tk)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kind, _, perr := tunnel.ParseError(m)
		switch {
		case i < 2 && tunnel.MsgType(m[0]) != tunnel.MsgJoined:
			t.Errorf("room %d: join answered %x", i, m)
		case i == 2 && (perr != nil || kind != string(parley.KindRateLimited)):
			t.Errorf("third room: join answered %x, want rate_limited", m)
		}
	}
}

// TestLinkPrefer: with Prefer set to "websocket", the Link takes a
// WebSocket that joins after a WebTransport carrier listed before it, and
// does not move up to WebTransport; without Prefer it takes WebTransport.
func TestLinkPrefer(t *testing.T) {
	t.Parallel()
	for _, prefer := range []string{"websocket", ""} {
		t.Run("prefer="+prefer, func(t *testing.T) {
			t.Parallel()
			n := newTestNet(t)
			addr := parley.Address{User: "alice", Device: 1}
			u, err := tunnel.ResolveURL(n.url, tunnel.Path)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := tunnel.OpenLink(ctx, tunnel.LinkConfig{
				Room:   tunnel.RoomID{10},
				Prefer: prefer,
				Ticket: func(context.Context) (*tunnel.Ticket, error) {
					tk, ttl := n.h.Ticket(addr)
					return &tunnel.Ticket{Ticket: tk, URLs: []string{u + "?as=webtransport", u}, Expires: time.Now().Add(ttl)}, nil
				},
				Dial: func(ctx context.Context, url string, tk *tunnel.Ticket, room tunnel.RoomID) (tunnel.Carrier, error) {
					f := &freezable{owner: addr}
					if strings.HasSuffix(url, "?as=webtransport") {
						f.kind = "webtransport"
					} else {
						time.Sleep(100 * time.Millisecond) // the WebSocket joins second, within preferWait
					}
					c, err := tunnel.DialWebSocket(ctx, url, nil, room, tk.Ticket)
					if err != nil {
						return nil, err
					}
					f.Carrier = c
					return f, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			want := prefer
			if want == "" {
				want = "webtransport"
			}
			if l.Path() != want {
				t.Fatalf("path %q, want %q", l.Path(), want)
			}
			time.Sleep(1500 * time.Millisecond) // the spare, of the other kind, is up a second: no move up to it
			if sw := l.Switches(); l.Path() != want || len(sw) != 0 {
				t.Errorf("path %q, switches %+v; want %q and none", l.Path(), sw, want)
			}
		})
	}
}

// carrierOf returns the k-th carrier (from 0) that user's device opened.
func (n *testNet) carrierOf(t *testing.T, user parley.UserID, k int) *freezable {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.carriers {
		if c.owner.User == user {
			if k == 0 {
				return c
			}
			k--
		}
	}
	t.Fatalf("%s opened no such carrier", user)
	return nil
}

// received returns the share of the other's packets that side i got,
// and fails the test if any came twice.
func (tk *talked) received(t *testing.T, i int) float64 {
	t.Helper()
	for p, n := range tk.got[i] {
		if n > 1 {
			t.Errorf("packet %d came %d times", p, n)
		}
	}
	return float64(len(tk.got[i])) / float64(max(tk.sent[1-i], 1))
}

// doubted starts a call between alice and bob, each with a WebTransport
// carrier and a WebSocket spare, and once their trials have ended freezes
// alice's WebTransport carrier and waits for her Link to doubt it.
func doubted(t *testing.T, room tunnel.RoomID) (alice *tunnel.Link, wt *freezable, stop func() *talked) {
	t.Helper()
	n, a, b := pair(t, room, "webtransport", "")
	stop = talk(t, a, b)
	endOfTrial(t, a)
	waitFor(t, "the end of bob's trial", func() bool { return !b.InTrial() })
	wt = n.carrierOf(t, "alice", 0)
	wt.frozen.Store(true)
	waitFor(t, "a doubt", a.InTrial)
	return a, wt, stop
}

// TestLinkDoubtsSilentDatagrams: a WebTransport carrier silent for half a
// second (a burst of loss) is doubted, not left: the media goes on both
// carriers until it speaks again, and the call stays on it, losing only
// what went into it before the doubt.
func TestLinkDoubtsSilentDatagrams(t *testing.T) {
	t.Parallel()
	a, wt, stop := doubted(t, tunnel.RoomID{21})
	time.Sleep(300 * time.Millisecond)
	wt.frozen.Store(false)
	waitFor(t, "the end of the doubt", func() bool { return !a.InTrial() })
	time.Sleep(time.Second)
	got := stop()
	if sw := a.Switches(); len(sw) != 0 || a.Path() != "webtransport" {
		t.Errorf("path %s, switches %+v; want webtransport and none", a.Path(), sw)
	}
	// Alice's side hears all: what the server sent into the frozen
	// carrier comes again on the spare.
	if r := got.received(t, 0); r < 0.99 {
		t.Errorf("alice got %.1f%% of bob's packets, want 99%%", 100*r)
	}
	// Bob's misses what alice sent into it before she doubted it.
	if r := got.received(t, 1); r < 0.85 {
		t.Errorf("bob got %.1f%% of alice's packets, want 85%%", 100*r)
	}
}

// TestLinkDoubtLeavesFrozen: a WebTransport carrier that stays silent
// through its doubt is left as frozen, with what the trial saw in the
// reason, and the media it would have lost comes on the spare.
func TestLinkDoubtLeavesFrozen(t *testing.T) {
	t.Parallel()
	a, _, stop := doubted(t, tunnel.RoomID{22})
	waitFor(t, "the switch", func() bool { return len(a.Switches()) > 0 })
	time.Sleep(500 * time.Millisecond)
	got := stop()
	sw := a.Switches()
	if len(sw) != 1 || sw[0].Cause != tunnel.CauseFrozen || !strings.Contains(sw[0].Reason, "then 0% of the media in") || a.Path() != "websocket" {
		t.Errorf("path %s, switches %+v; want one to the websocket for a frozen carrier", a.Path(), sw)
	}
	if r := got.received(t, 0); r < 0.99 {
		t.Errorf("alice got %.1f%% of bob's packets, want 99%%", 100*r)
	}
}

// TestLinkSlowDatagramsOnConstrainedPath: on a constrained path a silent
// WebTransport carrier is neither doubted (no room for the media twice)
// nor left after the usual wait: its silences there are queues. A second
// and a half of silence keeps the call on it; one that lasts is still
// left, as frozen, within the longer wait.
func TestLinkSlowDatagramsOnConstrainedPath(t *testing.T) {
	t.Parallel()
	n, a, _, stop := talkingPair(t, tunnel.RoomID{23}, func(l *tunnel.Link) { l.SetConstrained(true) })
	time.Sleep(300 * time.Millisecond)
	wt := n.carrierOf(t, "alice", 0)
	wt.frozen.Store(true)
	time.Sleep(1500 * time.Millisecond)
	wt.frozen.Store(false)
	time.Sleep(500 * time.Millisecond)
	if sw := a.Switches(); len(sw) != 0 || a.InTrial() || a.Path() != "webtransport" {
		t.Fatalf("after 1.5 s of silence: path %s, in trial %v, switches %+v; want webtransport, none", a.Path(), a.InTrial(), sw)
	}
	wt.frozen.Store(true)
	froze := time.Now()
	waitFor(t, "the switch", func() bool { return len(a.Switches()) > 0 })
	if d := time.Since(froze); d < 2500*time.Millisecond {
		t.Errorf("left after %v of silence, want the constrained path's wait (3 s)", d.Round(time.Millisecond))
	}
	if sw := a.Switches(); sw[0].Cause != tunnel.CauseFrozen || a.Path() != "websocket" {
		t.Errorf("path %s, switches %+v; want one to the websocket for a frozen carrier", a.Path(), sw)
	}
	stop()
}

// TestLinkPingsLessOnSlowPath: a silent carrier is pinged every 100 ms
// to tell a freeze quickly, but on a path whose round trip is 700 ms a
// quarter of the wait for a freeze (three round trips, at most 2 s) is
// soon enough, and ten pings a second would fill a 32 kbit/s link.
func TestLinkPingsLessOnSlowPath(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	addr := parley.Address{User: "alice", Device: 1}
	n.link(t, addr, tunnel.RoomID{23}) // alone: no media, only pongs
	n.waitOpened(t, "a spare", addr, 2)
	pings := func(over time.Duration) int {
		count := func() (k int) {
			n.mu.Lock()
			defer n.mu.Unlock()
			for _, c := range n.carriers {
				k += int(c.pings.Load())
			}
			return k
		}
		before := count()
		time.Sleep(over)
		return count() - before
	}
	fast := pings(3 * time.Second)
	n.delay.Store(int64(700 * time.Millisecond))
	time.Sleep(3 * time.Second) // the round trip is measured anew
	slow := pings(3 * time.Second)
	t.Logf("pings in 3 s: %d on a fast path, %d on a slow one", fast, slow)
	if fast < 20 {
		t.Errorf("%d pings in 3 s of silence on a fast path, want one every 100 ms", fast)
	}
	if slow > 12 {
		t.Errorf("%d pings in 3 s on a path with a 700 ms round trip, want at most 12", slow)
	}
}

// TestLinkRedialsLessAfterFailures: when spare dials keep failing (on a
// path the call fills, handshakes do not get through), the Link waits
// longer before each next one instead of dialling twice a second.
func TestLinkRedialsLessAfterFailures(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	addr := parley.Address{User: "alice", Device: 1}
	l := n.link(t, addr, tunnel.RoomID{24})
	n.waitOpened(t, "a spare", addr, 2)
	n.noDial.Store(true)
	before := n.dials.Load()
	n.carrierOf(t, "alice", 1).Close() // the spare fails
	time.Sleep(10 * time.Second)
	tried := n.dials.Load() - before
	t.Logf("%d dials in 10 s", tried)
	// 0.5, 1, 2, 4 and 8 s after failures: 5 or 6; a dial a second, 10.
	if tried < 3 || tried > 6 {
		t.Errorf("%d spare dials in 10 s of failures, want 3 to 6", tried)
	}
	n.noDial.Store(false)
	n.waitOpened(t, "a spare once dials work again", addr, 3)
	if l.Path() == "" {
		t.Error("no active carrier")
	}
}

// TestLinkRTTAfterClose: the round trip measured by the pings is still
// there once the Link has closed, for the call's summary (it said "RTT
// 0s" after every call).
func TestLinkRTTAfterClose(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	l := n.link(t, parley.Address{User: "alice", Device: 1}, tunnel.RoomID{25})
	waitFor(t, "a round trip", func() bool { return l.RTT() > 0 })
	l.Close()
	if rtt := l.RTT(); rtt <= 0 {
		t.Errorf("RTT after Close = %v, want the last one measured", rtt)
	}
}

// TestLinkNoDatagramSpareWhenConstrained: on a constrained path a
// WebTransport spare is closed (an idle QUIC connection on a slow link
// trades probe PINGs and acknowledgements) and the next spare is of
// another kind, which is kept; media goes on on the active carrier.
func TestLinkNoDatagramSpareWhenConstrained(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	n.kinds = []string{"webtransport", "webtransport", ""}
	room := tunnel.RoomID{31}
	alice := parley.Address{User: "alice", Device: 1}
	a, b := n.link(t, alice, room), n.link(t, parley.Address{User: "bob", Device: 1}, room)
	stop := talk(t, a, b)
	n.waitOpened(t, "alice's spare", alice, 2)
	spare := n.carrierOf(t, "alice", 1)
	time.Sleep(300 * time.Millisecond)
	if spare.closed.Load() {
		t.Fatal("the WebTransport spare closed on an unconstrained path")
	}
	a.SetConstrained(true)
	waitFor(t, "the WebTransport spare closed", spare.closed.Load)
	n.waitOpened(t, "a spare of another kind", alice, 3)
	next := n.carrierOf(t, "alice", 2)
	time.Sleep(500 * time.Millisecond)
	if next.closed.Load() || a.Path() != "webtransport" || len(a.Switches()) != 0 {
		t.Errorf("the WebSocket spare closed (%v), or the path moved: %s, %+v", next.closed.Load(), a.Path(), a.Switches())
	}
	stop().check(t, 0.99)
}

// TestLinkKeepsOnlySpareKind: a WebTransport spare dialled on a
// constrained path, when no other kind could be, stays.
func TestLinkKeepsOnlySpareKind(t *testing.T) {
	t.Parallel()
	n := newTestNet(t)
	n.kinds = []string{"webtransport", "webtransport", "webtransport", "webtransport"}
	room := tunnel.RoomID{32}
	alice := parley.Address{User: "alice", Device: 1}
	a, b := n.link(t, alice, room), n.link(t, parley.Address{User: "bob", Device: 1}, room)
	stop := talk(t, a, b)
	n.waitOpened(t, "alice's spare", alice, 2)
	a.SetConstrained(true)
	waitFor(t, "the WebTransport spare closed", n.carrierOf(t, "alice", 1).closed.Load)
	n.waitOpened(t, "the next spare", alice, 3)
	time.Sleep(time.Second)
	n.mu.Lock()
	opened := n.opened(alice)
	n.mu.Unlock()
	if next := n.carrierOf(t, "alice", 2); next.closed.Load() || opened != 3 {
		t.Errorf("the spare dialled on the constrained path closed (%v), %d carriers opened; want it kept, 3", next.closed.Load(), opened)
	}
	stop().check(t, 0.99)
}

// TestLinkIdle: a Link with no media, standing by (SetIdle), pings its
// carriers once a second instead of every PingEvery, and takes none for
// frozen; woken, it carries the media again.
func TestLinkIdle(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{21}, "", "")
	alice := parley.Address{User: "alice", Device: 1}
	n.waitOpened(t, "a spare", alice, 2)
	pings := func() int32 { return n.carrierOf(t, "alice", 0).pings.Load() + n.carrierOf(t, "alice", 1).pings.Load() }
	p0 := pings()
	time.Sleep(2 * time.Second)
	watched := pings() - p0
	a.SetIdle(true)
	time.Sleep(100 * time.Millisecond)
	p1 := pings()
	time.Sleep(2 * time.Second)
	idle := pings() - p1
	t.Logf("pings in 2 s without media: %d watched, %d idle", watched, idle)
	if idle > 6 || idle >= watched {
		t.Errorf("%d pings in 2 s idle (%d watched), want one a second a carrier", idle, watched)
	}
	if sw := a.Switches(); len(sw) != 0 {
		t.Errorf("switches while idle: %+v", sw)
	}
	a.SetIdle(false)
	stop := talk(t, a, b)
	time.Sleep(time.Second)
	stop().check(t, 0.99)
}

// TestLinkStandsByOnOneCarrier: an idle Link closes its WebTransport
// carrier and stands by on its WebSocket spare alone, without a switch;
// woken, it opens a spare again and carries the media.
func TestLinkStandsByOnOneCarrier(t *testing.T) {
	t.Parallel()
	n, a, b := pair(t, tunnel.RoomID{22}, "webtransport", "")
	alice := parley.Address{User: "alice", Device: 1}
	n.waitOpened(t, "a spare", alice, 2)
	wt, ws := n.carrierOf(t, "alice", 0), n.carrierOf(t, "alice", 1)
	if a.Path() != "webtransport" {
		t.Fatalf("alice's link is on %q, want webtransport first", a.Path())
	}
	a.SetIdle(true)
	waitFor(t, "the WebTransport carrier closed", wt.closed.Load)
	if a.Path() != "websocket" || ws.closed.Load() {
		t.Errorf("standing by on %q (the WebSocket closed: %v), want the WebSocket", a.Path(), ws.closed.Load())
	}
	time.Sleep(time.Second)
	n.mu.Lock()
	opened := n.opened(alice)
	n.mu.Unlock()
	if opened != 2 {
		t.Errorf("alice opened %d carriers while idle, want none after the first two", opened)
	}
	if sw := a.Switches(); len(sw) != 0 {
		t.Errorf("switches while standing by: %+v", sw)
	}
	a.SetIdle(false)
	n.waitOpened(t, "a spare after waking", alice, 3)
	stop := talk(t, a, b)
	time.Sleep(time.Second)
	stop().check(t, 0.99)
}
