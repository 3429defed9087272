package call

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// fakeNet carries call signals between Phones in one process, like the
// server does: in order per sender, to every device of the peer.
type fakeNet struct {
	mu      sync.Mutex
	devices map[parley.UserID][]*fakeDevice
	// sdpDelay, if set, holds offers and answers back while candidates go
	// ahead, so that candidates arrive before their description.
	sdpDelay time.Duration
	// dropICE loses every candidate, so that no media path can be found.
	dropICE bool
	// iceDelay, if set, holds every candidate back that long, so that
	// WebRTC comes up late.
	iceDelay time.Duration
	// dropHangup loses every hang-up.
	dropHangup bool
}

type fakeDevice struct {
	net   *fakeNet
	addr  parley.Address
	phone *Phone
	inbox chan client.CallSignal
}

func (d *fakeDevice) SendCallSignal(ctx context.Context, peer parley.UserID, sig client.CallSignal) error {
	d.net.mu.Lock()
	to := d.net.devices[peer]
	d.net.mu.Unlock()
	if len(to) == 0 {
		return parley.Errorf(parley.KindNotFound, "no user named %s on this server", peer)
	}
	sig.From, sig.SentAt = d.addr, time.Now()
	if d.net.dropICE && sig.Type == client.CallICE || d.net.dropHangup && sig.Type == client.CallHangup {
		return nil
	}
	for _, r := range to {
		if d.net.sdpDelay > 0 && (sig.Type == client.CallOffer || sig.Type == client.CallAnswer) {
			time.AfterFunc(d.net.sdpDelay, func() { r.inbox <- sig })
			continue
		}
		if d.net.iceDelay > 0 && sig.Type == client.CallICE {
			time.AfterFunc(d.net.iceDelay, func() { r.inbox <- sig })
			continue
		}
		r.inbox <- sig
	}
	return nil
}

// phone starts a Phone for the device user.dev on n.
func (n *fakeNet) phone(t *testing.T, user parley.UserID, dev parley.DeviceID, cfg Config) *Phone {
	t.Helper()
	d := &fakeDevice{net: n, addr: parley.Address{User: user, Device: dev}, inbox: make(chan client.CallSignal, 1000)}
	cfg.Loopback = true
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("phone", d.addr.String())
	}
	p, err := NewPhone(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.phone = p
	n.mu.Lock()
	if n.devices == nil {
		n.devices = make(map[parley.UserID][]*fakeDevice)
	}
	n.devices[user] = append(n.devices[user], d)
	n.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.Run(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case sig := <-d.inbox:
				p.Handle(sig)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return p
}

// ring waits for the next incoming call on p.
func ring(t *testing.T, p *Phone) *Incoming {
	t.Helper()
	select {
	case in := <-p.Rings():
		return in
	case <-time.After(5 * time.Second):
		t.Fatal("no incoming call")
		return nil
	}
}

func wait(t *testing.T, c *Call) (Stats, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call %s did not end", c.ID())
	}
	return s, err
}

func oggMedia(t *testing.T, b []byte, rec *bytes.Buffer) Media {
	t.Helper()
	r, err := NewOggReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	m := Media{Send: r}
	if rec != nil {
		m.Record = rec
	}
	return m
}

// checkRecording checks that rec holds at least 95% of sent, in order, and
// nothing else but concealment frames.
func checkRecording(t *testing.T, who string, rec []byte, sent [][]byte) {
	t.Helper()
	got := readAll(t, rec)
	i, audio := 0, 0
	for _, p := range got {
		if len(p) == 1 { // a concealed gap
			continue
		}
		audio++
		for i < len(sent) && !bytes.Equal(sent[i], p) {
			i++
		}
		if i == len(sent) {
			t.Errorf("%s recorded a packet out of order or not sent: %x", who, p)
			return
		}
		i++
	}
	if audio*100 < len(sent)*95 {
		t.Errorf("%s recorded %d of %d packets sent", who, audio, len(sent))
	}
}

// waitHeard waits (8 s at most) until both sides have sent their files of
// frames and (nearly) all of them have arrived.
func waitHeard(ac, bc *Call, frames int) {
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		as, bs := ac.Stats(), bc.Stats()
		if as.SendDone && bs.SendDone && as.Received >= frames-1 && bs.Received >= frames-1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCall makes a 2 s call each way over loopback and checks what each
// side recorded; the caller hangs up, which ends the call on both sides.
func TestCall(t *testing.T) {
	t.Parallel()
	for _, reorder := range []bool{false, true} {
		t.Run(fmt.Sprintf("candidates-first=%v", reorder), func(t *testing.T) {
			t.Parallel()
			n := &fakeNet{}
			if reorder {
				n.sdpDelay = 150 * time.Millisecond
			}
			alice := n.phone(t, "alice", 1, Config{})
			bob := n.phone(t, "bob", 1, Config{})
			const frames = 100 // 2 s
			aFile, aSent := synthOgg(t, frames)
			bFile, bSent := synthOgg(t, frames)
			var aRec, bRec bytes.Buffer

			ac, err := alice.Dial(context.Background(), "bob", oggMedia(t, aFile, &aRec))
			if err != nil {
				t.Fatal(err)
			}
			in := ring(t, bob)
			if in.From() != (parley.Address{User: "alice", Device: 1}) {
				t.Errorf("call from %v", in.From())
			}
			bc, err := in.Accept(context.Background(), oggMedia(t, bFile, &bRec))
			if err != nil {
				t.Fatal(err)
			}
			waitHeard(ac, bc, frames)
			time.Sleep(50 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := ac.Hangup(ctx); err != nil {
				t.Fatalf("hang-up: %v", err)
			}
			as, aErr := wait(t, ac)
			bs, bErr := wait(t, bc)
			if aErr != nil || bErr != nil {
				t.Fatalf("calls ended with %v and %v", aErr, bErr)
			}
			if as.Remote || !bs.Remote {
				t.Errorf("who hung up: alice sees remote=%v, bob %v", as.Remote, bs.Remote)
			}
			t.Logf("alice: %+v", as)
			t.Logf("bob:   %+v", bs)
			for _, s := range []Stats{as, bs} {
				if s.Sent != frames || !s.SendDone || s.Setup <= 0 || s.Connect <= 0 || s.Setup < s.Connect || !strings.HasPrefix(s.Path, "host/") {
					t.Errorf("stats %+v", s)
				}
			}
			// Candidates queued before their description are used: without
			// them ICE still connects, through a peer-reflexive candidate
			// learnt from the other side's checks, which pion accepts only
			// after a second.
			if reorder && as.Setup > time.Second {
				t.Errorf("set-up took %v: were the early candidates used?", as.Setup)
			}
			checkRecording(t, "alice", aRec.Bytes(), bSent)
			checkRecording(t, "bob", bRec.Bytes(), aSent)
		})
	}
}

func TestCalleeHangsUp(t *testing.T) {
	t.Parallel()
	n := &fakeNet{}
	alice := n.phone(t, "alice", 1, Config{})
	bob := n.phone(t, "bob", 1, Config{})
	file, _ := synthOgg(t, 50)
	ac, err := alice.Dial(context.Background(), "bob", oggMedia(t, file, nil))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ring(t, bob).Accept(context.Background(), Media{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-bc.Audio():
	case <-time.After(5 * time.Second):
		t.Fatal("bob heard nothing")
	}
	if err := bc.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	as, err := wait(t, ac)
	if err != nil || !as.Remote {
		t.Errorf("alice's call: %v, remote %v", err, as.Remote)
	}
	// Both phones are free again.
	if _, err := wait(t, bc); err != nil {
		t.Error(err)
	}
	c2, err := bob.Dial(context.Background(), "alice", Media{})
	if err != nil {
		t.Fatalf("calling again: %v", err)
	}
	ring(t, alice).Decline(context.Background())
	if _, err := wait(t, c2); !errors.Is(err, ErrDeclined) {
		t.Errorf("second call: %v", err)
	}
}

func TestBusyDeclineNoAnswer(t *testing.T) {
	t.Parallel()
	n := &fakeNet{}
	alice := n.phone(t, "alice", 1, Config{})
	bob := n.phone(t, "bob", 1, Config{})
	carol := n.phone(t, "carol", 1, Config{RingTimeout: 300 * time.Millisecond})
	ctx := context.Background()

	// Declined.
	c, err := alice.Dial(ctx, "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring(t, bob).Decline(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, c); !errors.Is(err, ErrDeclined) || err.Error() != "bob declined the call" {
		t.Errorf("declined call: %v", err)
	}

	// Busy: bob is ringing for alice when carol calls, then talking.
	ac, err := alice.Dial(ctx, "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	in := ring(t, bob)
	cc, err := carol.Dial(ctx, "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, cc); !errors.Is(err, ErrBusy) || err.Error() != "bob is busy" {
		t.Errorf("carol's call while bob's phone rings: %v", err)
	}
	bc, err := in.Accept(ctx, Media{})
	if err != nil {
		t.Fatal(err)
	}
	<-bc.Connected()
	cc, err = carol.Dial(ctx, "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wait(t, cc); !errors.Is(err, ErrBusy) {
		t.Errorf("carol's call while bob talks: %v", err)
	}
	if _, err := bob.Dial(ctx, "carol", Media{}); !errors.Is(err, ErrInCall) {
		t.Errorf("dialling during a call: %v", err)
	}
	ac.Hangup(ctx)
	wait(t, bc)

	// No answer: carol's call rings out, and stops ringing at alice's.
	cc, err = carol.Dial(ctx, "alice", Media{})
	if err != nil {
		t.Fatal(err)
	}
	in = ring(t, alice)
	if _, err := wait(t, cc); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("unanswered call: %v", err)
	}
	select {
	case <-in.Gone():
	case <-time.After(5 * time.Second):
		t.Error("alice's phone still rings")
	}
	if _, err := in.Accept(ctx, Media{}); !errors.Is(err, ErrCallerGone) {
		t.Errorf("accepting a call the caller gave up: %v", err)
	}

	// Nobody there.
	if _, err := alice.Dial(ctx, "dave", Media{}); parley.ErrorKind(err) != parley.KindNotFound {
		t.Errorf("calling nobody: %v", err)
	}
}

func TestRelayOnlyNeedsTURN(t *testing.T) {
	if _, err := NewPhone(&fakeDevice{}, Config{RelayOnly: true}); !errors.Is(err, ErrNoRelay) {
		t.Errorf("relay only without TURN: %v", err)
	}
}

func TestConnectionFails(t *testing.T) {
	t.Parallel()
	n := &fakeNet{dropICE: true}
	cfg := Config{ConnectTimeout: 500 * time.Millisecond}
	alice := n.phone(t, "alice", 1, cfg)
	bob := n.phone(t, "bob", 1, cfg)
	ac, err := alice.Dial(context.Background(), "bob", Media{})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ring(t, bob).Accept(context.Background(), Media{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Call{ac, bc} {
		s, err := wait(t, c)
		if !errors.Is(err, ErrConnectionFailed) || !strings.Contains(err.Error(), "no TURN relay is configured") && !strings.Contains(err.Error(), "gave up") {
			t.Errorf("%s's call: %v", c.Peer(), err)
		}
		if s.Connect != 0 || s.Sent != 0 {
			t.Errorf("stats of a call that never connected: %+v", s)
		}
	}
}

// TestHangupLost: when the hang-up signal is lost, the end of the DTLS
// session still ends the call on the other side, at once.
func TestHangupLost(t *testing.T) {
	t.Parallel()
	n := &fakeNet{dropHangup: true}
	alice := n.phone(t, "alice", 1, Config{})
	bob := n.phone(t, "bob", 1, Config{})
	file, _ := synthOgg(t, 500)
	ac, err := alice.Dial(context.Background(), "bob", oggMedia(t, file, nil))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ring(t, bob).Accept(context.Background(), Media{})
	if err != nil {
		t.Fatal(err)
	}
	<-bc.Audio()
	ac.Hangup(context.Background())
	start := time.Now()
	s, err := wait(t, bc)
	if err != nil || !s.Remote || time.Since(start) > 2*time.Second {
		t.Errorf("bob's call ended after %v with %v (remote %v)", time.Since(start), err, s.Remote)
	}
}

// TestRingsOnEveryDevice: a call rings on each device of the callee; the one
// that answers takes it, and the others stop ringing when the caller hangs
// up.
func TestRingsOnEveryDevice(t *testing.T) {
	t.Parallel()
	n := &fakeNet{}
	alice := n.phone(t, "alice", 1, Config{})
	bob1 := n.phone(t, "bob", 1, Config{})
	bob2 := n.phone(t, "bob", 2, Config{})
	file, _ := synthOgg(t, 500)
	ac, err := alice.Dial(context.Background(), "bob", oggMedia(t, file, nil))
	if err != nil {
		t.Fatal(err)
	}
	in1, in2 := ring(t, bob1), ring(t, bob2)
	var rec bytes.Buffer
	bc, err := in2.Accept(context.Background(), Media{Record: &rec})
	if err != nil {
		t.Fatal(err)
	}
	<-bc.Audio()
	select {
	case <-in1.Gone():
		t.Error("bob's first device stopped ringing while the call goes on")
	default:
	}
	if err := ac.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, err := wait(t, bc); err != nil || !s.Remote {
		t.Errorf("bob's second device: %v", err)
	}
	select {
	case <-in1.Gone():
	case <-time.After(5 * time.Second):
		t.Error("bob's first device still rings")
	}
}

// TestTrace: the packets one side traces as sent are those the other
// traces as received, by sequence number, in time order, and as many as
// the call's counts.
func TestTrace(t *testing.T) {
	t.Parallel()
	n := &fakeNet{}
	var mu sync.Mutex
	var aliceOut, bobIn []TracePacket
	alice := n.phone(t, "alice", 1, Config{})
	bob := n.phone(t, "bob", 1, Config{})
	const frames = 50
	aFile, _ := synthOgg(t, frames)
	am := oggMedia(t, aFile, nil)
	am.Trace = func(p TracePacket) {
		mu.Lock()
		defer mu.Unlock()
		if p.Out {
			aliceOut = append(aliceOut, p)
		}
	}
	ac, err := alice.Dial(context.Background(), "bob", am)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := ring(t, bob).Accept(context.Background(), Media{Trace: func(p TracePacket) {
		mu.Lock()
		defer mu.Unlock()
		if !p.Out {
			bobIn = append(bobIn, p)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ac.Stats().SendDone && bc.Stats().Received >= frames {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ac.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	as, _ := wait(t, ac)
	bs, _ := wait(t, bc)
	mu.Lock()
	defer mu.Unlock()
	if len(aliceOut) != as.Sent || len(bobIn) != bs.Received || len(bobIn) < frames-1 {
		t.Fatalf("traced %d sent (stats %d), %d received (stats %d)", len(aliceOut), as.Sent, len(bobIn), bs.Received)
	}
	sent := map[uint16]TracePacket{}
	for i, p := range aliceOut {
		if i > 0 && (p.Seq != aliceOut[i-1].Seq+1 || p.At.Before(aliceOut[i-1].At) || p.Timestamp-aliceOut[i-1].Timestamp != 960) {
			t.Errorf("sent packet %d: %+v after %+v", i, p, aliceOut[i-1])
		}
		if p.Size == 0 {
			t.Errorf("sent packet %d has no size", i)
		}
		sent[p.Seq] = p
	}
	for _, p := range bobIn {
		s, ok := sent[p.Seq]
		if !ok || s.Timestamp != p.Timestamp || s.Size != p.Size {
			t.Errorf("received %+v, sent %+v", p, s)
			continue
		}
		if d := p.At.Sub(s.At); d < 0 || d > time.Second {
			t.Errorf("packet %d took %v", p.Seq, d)
		}
	}
}

// pipeSignaller is a starter whose signals are answered only once two
// are in flight: a Phone that waited for each answer in turn would never
// get one.
type pipeSignaller struct {
	mu      sync.Mutex
	started []client.CallSignal
	both    chan struct{} // closed at the second start
}

func (s *pipeSignaller) SendCallSignal(ctx context.Context, peer parley.UserID, sig client.CallSignal) error {
	return errors.New("sent one at a time")
}

func (s *pipeSignaller) StartCallSignal(ctx context.Context, peer parley.UserID, sig client.CallSignal) (func() error, error) {
	s.mu.Lock()
	s.started = append(s.started, sig)
	if len(s.started) == 2 {
		close(s.both)
	}
	s.mu.Unlock()
	return func() error {
		select {
		case <-s.both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

// TestSignalsPipelined: the Phone sends a signal without waiting for the
// answer to the one before, in order.
func TestSignalsPipelined(t *testing.T) {
	t.Parallel()
	sig := &pipeSignaller{both: make(chan struct{})}
	p, err := NewPhone(sig, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx)
	done := make(chan error, 2)
	for _, typ := range []client.CallSignalType{client.CallOffer, client.CallICE} {
		p.send("bob", client.CallSignal{CallID: "c", Type: typ}, func(err error) { done <- err })
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a signal was not answered: the Phone waited for each answer before the next")
		}
	}
	sig.mu.Lock()
	defer sig.mu.Unlock()
	if sig.started[0].Type != client.CallOffer || sig.started[1].Type != client.CallICE {
		t.Errorf("started %v, want the offer, then the candidate", sig.started)
	}
}
