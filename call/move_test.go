package call

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/transport/v5/vnet"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
)

// testTunnel starts a tunnel hub (as parleyd runs it, over WebSockets) and
// returns the TunnelConfig of a device that reaches it.
func testTunnel(t *testing.T) func(addr parley.Address) *TunnelConfig {
	t.Helper()
	h := hub.NewHub(hub.Config{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return func(addr parley.Address) *TunnelConfig {
		return &TunnelConfig{Ticket: func(context.Context) (*tunnel.Ticket, error) {
			tk, ttl := h.Ticket(addr)
			u, err := tunnel.ResolveURL(srv.URL, tunnel.Path)
			return &tunnel.Ticket{Ticket: tk, URLs: []string{u}, Expires: time.Now().Add(ttl)}, err
		}}
	}
}

// movingCall is a call from alice to bob, both able to reach the tunnel
// (alice may move the call there if her Config has Fallback), each sending
// frames of synthetic audio and recording what comes.
type movingCall struct {
	ac, bc       *Call
	aSent, bSent [][]byte
	aRec, bRec   bytes.Buffer
}

func startMovingCall(t *testing.T, n *fakeNet, frames int, alice, bob Config) *movingCall {
	t.Helper()
	tun := testTunnel(t)
	alice.Tunnel = tun(parley.Address{User: "alice", Device: 1})
	bob.Tunnel = tun(parley.Address{User: "bob", Device: 1})
	ap, bp := n.phone(t, "alice", 1, alice), n.phone(t, "bob", 1, bob)
	mc := &movingCall{}
	var aFile, bFile []byte
	aFile, mc.aSent = synthOgg(t, frames)
	bFile, mc.bSent = synthOgg(t, frames)
	var err error
	if mc.ac, err = ap.Dial(context.Background(), "bob", oggMedia(t, aFile, &mc.aRec)); err != nil {
		t.Fatal(err)
	}
	if mc.bc, err = ring(t, bp).Accept(context.Background(), oggMedia(t, bFile, &mc.bRec)); err != nil {
		t.Fatal(err)
	}
	return mc
}

// finish waits until both files are sent and (nearly) arrived, hangs up
// and returns both sides' stats.
func (mc *movingCall) finish(t *testing.T, frames int) (as, bs Stats) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		as, bs := mc.ac.Stats(), mc.bc.Stats()
		if as.SendDone && bs.SendDone && as.Tunnel != nil && bs.Tunnel != nil &&
			as.Tunnel.Jitter.Played+as.Tunnel.Jitter.Concealed > 0 && bs.Tunnel.Jitter.Played+bs.Tunnel.Jitter.Concealed > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // the jitter buffers play out what they hold
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := mc.ac.Hangup(ctx); err != nil {
		t.Fatalf("hang-up: %v", err)
	}
	as, aErr := wait(t, mc.ac)
	bs, bErr := wait(t, mc.bc)
	t.Logf("alice: %+v", as)
	t.Logf("bob:   %+v", bs)
	if aErr != nil || bErr != nil {
		t.Fatalf("the calls ended with %v and %v", aErr, bErr)
	}
	if as.Remote || !bs.Remote {
		t.Errorf("who hung up: alice sees remote=%v, bob %v", as.Remote, bs.Remote)
	}
	return as, bs
}

// checkMoved checks that s records one move, from → to, made for a
// reason that contains one of reasons, and that the call ended on to.
func checkMoved(t *testing.T, who string, s Stats, from, to string, reasons ...string) Move {
	t.Helper()
	if len(s.Moves) != 1 {
		t.Fatalf("%s's call moved %d times, want once: %+v", who, len(s.Moves), s.Moves)
	}
	m := s.Moves[0]
	if m.From != from || m.To != to || m.Up == 0 || m.Up < m.At {
		t.Errorf("%s's move: %+v", who, m)
	}
	if tunnelled := strings.HasPrefix(s.Path, "tunnel/"); tunnelled != (to == PathTunnel) || s.Tunnel == nil {
		t.Errorf("%s's call ended on %q, not %s", who, s.Path, to)
	}
	for _, r := range reasons {
		if strings.Contains(m.Reason, r) {
			return m
		}
	}
	t.Errorf("%s's call moved because %q, want one of %q", who, m.Reason, reasons)
	return m
}

// TestRaceStartsInTunnel: a call that races the tiers, and whose ICE
// candidates are all lost, starts in the tunnel once WebRTC has had
// RaceGrace to come up, without a move, and each side hears the other's
// whole file.
func TestRaceStartsInTunnel(t *testing.T) {
	t.Parallel()
	const frames = 100
	mc := startMovingCall(t, &fakeNet{dropICE: true}, frames, Config{Fallback: true}, Config{})
	as, bs := mc.finish(t, frames)
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		if len(s.Moves) != 0 || !strings.HasPrefix(s.Path, "tunnel/") {
			t.Errorf("%s's call: moves %+v, path %q", who, s.Moves, s.Path)
		}
		if r := s.Race; r == nil || r.WebRTC != 0 || r.Tunnel == 0 || r.Tunnel > s.Connect {
			t.Errorf("%s's race: %+v, connected at %v", who, r, s.Connect)
		}
		if s.Connect < RaceGrace || s.Connect > RaceGrace+3*time.Second {
			t.Errorf("%s's call connected after %v, want soon after %v", who, s.Connect, RaceGrace)
		}
		if s.Sent != frames {
			t.Errorf("%s sent %d frames of %d", who, s.Sent, frames)
		}
	}
	checkRecording(t, "alice", mc.aRec.Bytes(), mc.bSent)
	checkRecording(t, "bob", mc.bRec.Bytes(), mc.aSent)
}

// TestMoveUp: a call whose WebRTC comes up late (its ICE candidates held
// back 2 s) starts in the tunnel and moves up to WebRTC when it comes,
// without hanging up; each side records the other's whole file, keeping
// time through the move.
func TestMoveUp(t *testing.T) {
	t.Parallel()
	const frames = 250 // 5 s
	const iceDelay = 2 * time.Second
	mc := startMovingCall(t, &fakeNet{iceDelay: iceDelay}, frames, Config{Fallback: true}, Config{})
	as, bs := mc.finish(t, frames)
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		m := checkMoved(t, who, s, PathTunnel, PathWebRTC, "came up over UDP")
		if m.FromConnect < RaceGrace || m.FromConnect >= m.At || !strings.HasPrefix(m.FromPath, "tunnel/") || m.At < iceDelay {
			t.Errorf("%s's move does not say that the call started in the tunnel, then moved: %+v (connected at %v)", who, m, s.Connect)
		}
		if r := s.Race; r == nil || r.WebRTC != m.Up || r.Tunnel == 0 || !strings.HasPrefix(r.WebRTCPath, "host/") {
			t.Errorf("%s's race: %+v, move %+v", who, r, m)
		}
	}
	checkTimed(t, "alice", mc.aRec.Bytes(), mc.bSent, frames*95/100)
	checkTimed(t, "bob", mc.bRec.Bytes(), mc.aSent, frames*95/100)
}

// checkTimed checks that rec holds at least want frames of sent, in
// order, once each, each where it was in time (the recording runs in real
// time through a move), and nothing else but concealment.
func checkTimed(t *testing.T, who string, rec []byte, sent [][]byte, want int) {
	t.Helper()
	audio, samples, i := 0, 0, 0
	for _, p := range readAll(t, rec) {
		n, _ := packetSamples(p)
		at := time.Duration(samples) * time.Second / opusRate
		samples += n
		if len(p) <= 1 {
			continue
		}
		audio++
		for i < len(sent) && !bytes.Equal(sent[i], p) {
			i++
		}
		if i == len(sent) {
			t.Errorf("%s recorded a frame out of order, twice or never sent", who)
			return
		}
		if late := at - time.Duration(i)*frameDuration; late < -100*time.Millisecond || late > 500*time.Millisecond {
			t.Errorf("%s recorded frame %d at %v, %v after it was sent", who, i, at, late)
			return
		}
		i++
	}
	if audio < want {
		t.Errorf("%s recorded %d frames of audio of %d sent, want %d", who, audio, len(sent), want)
	}
}

// TestMoveWhenWebRTCBreaks: WebRTC runs over a virtual network that the
// test cuts a second into the call; both sides move to the tunnel within
// a few seconds without hanging up, what they record goes on from there
// and keeps time.
func TestMoveWhenWebRTCBreaks(t *testing.T) {
	t.Parallel()
	nets, cut := cuttableNet(t)
	const frames = 300 // 6 s
	mc := startMovingCall(t, &fakeNet{}, frames, Config{Fallback: true, net: nets[0]}, Config{net: nets[1]})
	deadline := time.Now().Add(10 * time.Second)
	for mc.bc.Stats().Received < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := mc.bc.Stats().Received; got < 50 {
		t.Fatalf("bob received %d frames over WebRTC in 10 s", got)
	}
	cut.Store(true)
	cutAt := mc.bc.Stats().Duration
	as, bs := mc.finish(t, frames)
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		m := checkMoved(t, who, s, PathWebRTC, PathTunnel, "nothing came over WebRTC", "moved the call")
		if m.FromConnect == 0 || !strings.HasPrefix(m.FromPath, "host/") {
			t.Errorf("%s's move does not say that WebRTC had connected: %+v", who, m)
		}
		// The cut is noticed after movableDisconnected, at the next check
		// (every movableKeepalive); a busy machine may add a little.
		if since := m.At - s.Connect; since > cutAt+movableDisconnected+movableKeepalive+1500*time.Millisecond {
			t.Errorf("%s moved %v into the call, %v after the cut", who, since, since-cutAt)
		}
		// The race left the tunnel open and the other device in it.
		if m.Up != m.At {
			t.Errorf("%s's tunnel came up %v after the move, want at once", who, m.Up-m.At)
		}
	}
	// At most some 3 s lost around the cut.
	checkTimed(t, "alice", mc.aRec.Bytes(), mc.bSent, frames/2)
	checkTimed(t, "bob", mc.bRec.Bytes(), mc.aSent, frames/2)
}

var vnetMu sync.Mutex

// cuttableNet returns a virtual network of two hosts for WebRTC, which
// carries nothing once cut is set.
func cuttableNet(t *testing.T) ([2]*vnet.Net, *atomic.Bool) {
	t.Helper()
	cut := new(atomic.Bool)
	return filteredNet(t, func(vnet.Chunk) bool { return !cut.Load() }), cut
}

// filteredNet returns a virtual network of two hosts for WebRTC, which
// carries the chunks that pass.
func filteredNet(t *testing.T, pass func(vnet.Chunk) bool) [2]*vnet.Net {
	t.Helper()
	vnetMu.Lock() // vnet makes MAC addresses from an unguarded global source
	defer vnetMu.Unlock()
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.9.0.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	var nets [2]*vnet.Net
	for i := range nets {
		if nets[i], err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{"10.9.0." + string(rune('1'+i))}}); err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(nets[i]); err != nil {
			t.Fatal(err)
		}
	}
	router.AddChunkFilter(pass)
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { router.Stop() })
	return nets
}

// TestMoveUpThenDown: a call that started in the tunnel and moved up to
// WebRTC moves back down when WebRTC breaks, and what each side records
// keeps time through both moves: the tunnel's audio after the pause plays
// as a new stream.
func TestMoveUpThenDown(t *testing.T) {
	t.Parallel()
	nets, cut := cuttableNet(t)
	const frames = 350 // 7 s
	mc := startMovingCall(t, &fakeNet{iceDelay: 1500 * time.Millisecond}, frames, Config{Fallback: true, net: nets[0]}, Config{net: nets[1]})
	deadline := time.Now().Add(10 * time.Second)
	for len(mc.bc.Stats().Moves) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // a second on WebRTC
	cut.Store(true)
	as, bs := mc.finish(t, frames)
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		if len(s.Moves) != 2 || s.Moves[0].To != PathWebRTC || s.Moves[1].To != PathTunnel || !strings.HasPrefix(s.Path, "tunnel/") {
			t.Errorf("%s's call moved %+v, ended on %q; want up, then down to the tunnel", who, s.Moves, s.Path)
		}
	}
	checkTimed(t, "alice", mc.aRec.Bytes(), mc.bSent, frames/2)
	checkTimed(t, "bob", mc.bRec.Bytes(), mc.aSent, frames/2)
}

// TestMoveSignalIgnored: a "move" signal in a call that cannot move (the
// caller offered no share of the tunnel secret) changes nothing: the call
// goes on over WebRTC and each side hears the other's whole file.
func TestMoveSignalIgnored(t *testing.T) {
	t.Parallel()
	n := &fakeNet{}
	const frames = 100
	mc := startMovingCall(t, n, frames, Config{}, Config{})
	ac, bc := mc.ac, mc.bc
	<-bc.Audio()
	n.mu.Lock()
	aliceDev := n.devices["alice"][0]
	n.mu.Unlock()
	if err := aliceDev.SendCallSignal(context.Background(), "bob", client.CallSignal{CallID: ac.ID(), Type: client.CallMove}); err != nil {
		t.Fatal(err)
	}
	waitHeard(ac, bc, frames)
	if err := ac.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	as, aErr := wait(t, ac)
	bs, bErr := wait(t, bc)
	if aErr != nil || bErr != nil {
		t.Fatalf("the calls ended with %v and %v", aErr, bErr)
	}
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		if len(s.Moves) != 0 || s.Tunnel != nil || !strings.HasPrefix(s.Path, "host/") {
			t.Errorf("%s's call: moves %+v, path %q", who, s.Moves, s.Path)
		}
	}
	if bc.Tunnel() || ac.Tunnel() {
		t.Errorf("a call that cannot move says it went through the tunnel")
	}
	checkRecording(t, "alice", mc.aRec.Bytes(), mc.bSent)
	checkRecording(t, "bob", mc.bRec.Bytes(), mc.aSent)
}

// TestTunnelPeerNeverComes: in a tunnel-only call whose callee never gets
// into the server's tunnel (its tickets never come), the caller's call
// fails when the connect timeout ends, saying so rather than blaming ICE.
func TestTunnelPeerNeverComes(t *testing.T) {
	t.Parallel()
	tun := testTunnel(t)
	n := &fakeNet{}
	acfg := Config{Path: PathTunnel, ConnectTimeout: time.Second, Tunnel: tun(parley.Address{User: "alice", Device: 1})}
	bcfg := Config{ConnectTimeout: 5 * time.Second, Tunnel: &TunnelConfig{Ticket: func(ctx context.Context) (*tunnel.Ticket, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}}
	alice, bob := n.phone(t, "alice", 1, acfg), n.phone(t, "bob", 1, bcfg)
	ac, err := alice.Dial(context.Background(), "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring(t, bob).Accept(context.Background(), Media{}); err != nil {
		t.Fatal(err)
	}
	_, err = wait(t, ac)
	if !errors.Is(err, ErrConnectionFailed) || !strings.Contains(err.Error(), "bob did not come into the server's tunnel") {
		t.Errorf("alice's call: %v", err)
	}
}

// TestMoveBackUp: WebRTC's network is cut for 3 s mid-call, then comes
// back; the call moves down to the tunnel, and back up to WebRTC once
// ICE is up again and has stayed up for moveBackAfter; what each side
// records keeps time through both moves.
func TestMoveBackUp(t *testing.T) {
	t.Parallel()
	testMoveBackUp(t, 3*time.Second, 0, "WebRTC came back over UDP", "moved the call back up")
}

// TestMoveBackUpAfterRestart: the cut lasts until ICE has failed (its
// failure timeout shortened to 1 s), which no connectivity check brings
// back: the caller restarts ICE, and the call moves back up on the new
// session.
func TestMoveBackUpAfterRestart(t *testing.T) {
	t.Parallel()
	testMoveBackUp(t, 5*time.Second, time.Second, "after an ICE restart", "moved the call back up")
}

func testMoveBackUp(t *testing.T, cutFor, iceFailed time.Duration, reasons ...string) {
	nets, cut := cuttableNet(t)
	const frames = 700 // 14 s
	mc := startMovingCall(t, &fakeNet{}, frames,
		Config{Fallback: true, net: nets[0], iceFailed: iceFailed}, Config{net: nets[1], iceFailed: iceFailed})
	deadline := time.Now().Add(10 * time.Second)
	for mc.bc.Stats().Received < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cut.Store(true)
	time.Sleep(cutFor)
	cut.Store(false)
	as, bs := mc.finish(t, frames)
	for who, s := range map[string]Stats{"alice": as, "bob": bs} {
		if len(s.Moves) != 2 || s.Moves[0].To != PathTunnel || s.Moves[1].To != PathWebRTC || !strings.HasPrefix(s.Path, "host/") {
			t.Fatalf("%s's call moved %+v, ended on %q; want down to the tunnel, then back up", who, s.Moves, s.Path)
		}
		up := s.Moves[1]
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(up.Reason, r) }) || up.FromPath == "" || up.FromConnect == 0 {
			t.Errorf("%s's move up: %+v; want a reason with one of %q", who, up, reasons)
		}
	}
	if r := as.Moves[1].Reason; !strings.Contains(r, reasons[0]) && !strings.Contains(bs.Moves[1].Reason, reasons[0]) {
		t.Errorf("neither side moved up because %s: %q, %q", reasons[0], r, bs.Moves[1].Reason)
	}
	checkTimed(t, "alice", mc.aRec.Bytes(), mc.bSent, frames*3/4)
	checkTimed(t, "bob", mc.bRec.Bytes(), mc.aSent, frames*3/4)
}

// TestDTLSRepeatsSoon: the first two DTLS packets of a call are lost (as
// bursty loss loses a handshake flight and its first repeat); the
// handshake repeats them after dtlsRetransmit and twice that, not after
// pion's 1 s and 2 s, and the call connects within 2 s rather than 3.
func TestDTLSRepeatsSoon(t *testing.T) {
	t.Parallel()
	var dtls atomic.Int32
	nets := filteredNet(t, func(c vnet.Chunk) bool {
		b := c.UserData()
		// RFC 7983 section 7: a first byte of 20 to 63 is DTLS.
		return len(b) == 0 || b[0] < 20 || b[0] > 63 || dtls.Add(1) > 2
	})
	const frames = 100
	mc := startMovingCall(t, &fakeNet{}, frames, Config{net: nets[0]}, Config{net: nets[1]})
	select {
	case <-mc.ac.Connected():
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not connect within 10 s")
	}
	if got := dtls.Load(); got < 3 {
		t.Fatalf("%d DTLS packets seen, want the two lost and more", got)
	}
	if c := mc.ac.Stats().Connect; c > 2*time.Second {
		t.Errorf("the call connected after %v with two DTLS packets lost, want within 2s", c)
	}
	if err := mc.ac.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait(t, mc.ac)
	wait(t, mc.bc)
}
