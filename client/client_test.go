package client_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientmem"
)

const testServer = "http://fake.invalid"

type testClient struct {
	*client.Client
	store *clientmem.Store
	stop  func()
}

func newClient(t testing.TB, srv *fakeServer, st *clientmem.Store) *testClient {
	return newClientAt(t, srv, st, time.Now)
}

func newClientAt(t testing.TB, srv *fakeServer, st *clientmem.Store, now func() time.Time) *testClient {
	t.Helper()
	if st == nil {
		st = clientmem.New()
	}
	c, err := client.New(context.Background(), client.Config{Store: st, Dialer: srv, Now: now, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return &testClient{Client: c, store: st, stop: func() {}}
}

func register(t testing.TB, srv *fakeServer, name string) *testClient {
	t.Helper()
	c := newClient(t, srv, nil)
	if err := c.Register(context.Background(), testServer, name); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return c
}

// run starts c.Run until the test ends or stop is called.
func (c *testClient) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	c.stop = func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run: %v", err)
		}
		c.stop = func() {}
	}
	t.Cleanup(func() { c.stop() })
}

// online runs each client and waits until each has connected.
func online(t *testing.T, cs ...*testClient) {
	for _, c := range cs {
		c.run(t)
	}
	for _, c := range cs {
		c.wait(t, "connected", func(ev client.Event) bool { return ev.Type == client.EventConnected })
	}
}

// wait reads c's events until ok returns true.
func (c *testClient) wait(t *testing.T, what string, ok func(client.Event) bool) client.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *testClient) waitText(t *testing.T, text string) {
	t.Helper()
	c.wait(t, "message "+text, func(ev client.Event) bool {
		return ev.Type == client.EventMessage && ev.Message.Text == text
	})
}

func (c *testClient) texts(t *testing.T, peer parley.UserID) []string {
	t.Helper()
	msgs, err := c.Messages(context.Background(), client.Query{Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		dir := "<"
		if m.Outgoing {
			dir = ">"
		}
		if m.Notice {
			dir = "!"
		}
		out = append(out, dir+" "+m.Text)
	}
	return out
}

func TestConversation(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "Bob")
	if u, d, _, _ := bob.Whoami(); u != "bob" || d != 1 {
		t.Fatalf("bob is %s.%d", u, d)
	}
	alice.run(t)
	bob.run(t)
	var want []string
	for i := 0; i < 3; i++ {
		a, b := fmt.Sprintf("hello %d", i), fmt.Sprintf("hi %d", i)
		if _, err := alice.Send(ctx, "bob", a); err != nil {
			t.Fatal(err)
		}
		bob.waitText(t, a)
		if _, err := bob.Send(ctx, "alice", b); err != nil {
			t.Fatal(err)
		}
		alice.waitText(t, b)
		want = append(want, "< "+a, "> "+b)
	}
	// Two in a row from one side, crossing one from the other.
	alice.Send(ctx, "bob", "x")
	alice.Send(ctx, "bob", "y")
	bob.Send(ctx, "alice", "z")
	bob.waitText(t, "y")
	alice.waitText(t, "z")
	want = append(want, "< x", "< y", "> z")
	got := bob.texts(t, "alice")
	slices.Sort(got[len(got)-3:]) // the crossing messages may be in either order
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bob's history (-want +got):\n%s", diff)
	}
	if out, _ := alice.Outbox(ctx); len(out) != 0 {
		t.Errorf("alice's outbox: %d left", len(out))
	}
	// Bob's receipts come back: everything alice sent ends up delivered.
	waitFor(t, "alice's messages delivered", func() bool {
		msgs, _ := alice.Messages(ctx, client.Query{Peer: "bob"})
		for _, m := range msgs {
			if m.Outgoing && m.State != client.StateDelivered {
				return false
			}
		}
		return len(msgs) > 0
	})
	// Both sides compute the same safety number.
	da, _, err := alice.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := bob.SafetyNumber(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if da != db || len(strings.Join(strings.Fields(da), "")) != 60 {
		t.Errorf("safety numbers %q and %q", da, db)
	}
}

// waitFor polls ok until it holds or 20 seconds pass.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeliveryReceipts(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	m, err := alice.Send(ctx, "bob", "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq == 0 {
		t.Errorf("Send returned no Seq: a user interface could not place the message")
	}
	alice.wait(t, "sent", func(ev client.Event) bool { return ev.Type == client.EventSent && ev.Message.ID == m.ID })
	// Bob is offline: sent, not delivered.
	if got := state(t, alice, "bob", m.ID); got != client.StateSent {
		t.Fatalf("before bob connects: %v, want sent", got)
	}
	bob.run(t)
	if got := bob.wait(t, "message", func(ev client.Event) bool { return ev.Type == client.EventMessage }); got.Message.Seq == 0 {
		t.Errorf("the message event has no Seq")
	}
	ev := alice.wait(t, "delivered", func(ev client.Event) bool { return ev.Type == client.EventDelivered })
	if ev.Message.ID != m.ID || ev.Peer != "bob" {
		t.Errorf("delivered event for %v from %s", ev.Message.ID, ev.Peer)
	}
	if got := state(t, alice, "bob", m.ID); got != client.StateDelivered {
		t.Errorf("after the receipt: %v, want delivered", got)
	}
	// Receipts are not history, and bob has none left to send.
	if got := alice.texts(t, "bob"); len(got) != 1 {
		t.Errorf("alice's history: %q", got)
	}
	waitFor(t, "bob's pending receipts sent", func() bool {
		r, err := bob.store.Record(ctx, client.RecordReceipts, "")
		return err == nil && r == nil
	})
}

func state(t *testing.T, c *testClient, peer parley.UserID, id parley.MessageID) client.MessageState {
	t.Helper()
	ms, err := c.Messages(context.Background(), client.Query{Peer: peer, ID: &id})
	if err != nil || len(ms) != 1 {
		t.Fatalf("message %v: %v (%d found)", id, err, len(ms))
	}
	return ms[0].State
}

func TestConversationsAndVerification(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")
	for _, c := range []*testClient{alice, bob, carol} {
		c.run(t)
	}
	bob.Send(ctx, "alice", "from bob 1")
	alice.waitText(t, "from bob 1")
	bob.Send(ctx, "alice", "from bob 2")
	alice.waitText(t, "from bob 2")
	carol.Send(ctx, "alice", "from carol")
	alice.waitText(t, "from carol")

	convs, err := alice.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type sum struct {
		Peer      parley.UserID
		Last      string
		Unread    int
		Verified  bool
		IDChanged bool
	}
	summarize := func(cs []client.Conversation) []sum {
		var out []sum
		for _, c := range cs {
			out = append(out, sum{c.Peer, c.Last.Text, c.Unread, c.Verified, c.IdentityChanged})
		}
		return out
	}
	want := []sum{{"carol", "from carol", 1, false, false}, {"bob", "from bob 2", 2, false, false}}
	if diff := cmp.Diff(want, summarize(convs)); diff != "" {
		t.Errorf("conversations (-want +got):\n%s", diff)
	}

	// Reading bob's messages and verifying him.
	msgs, _ := alice.Messages(ctx, client.Query{Peer: "bob"})
	if err := alice.MarkRead(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetVerified(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetVerified(ctx, "dave", true); parley.ErrorKind(err) != parley.KindNotFound {
		t.Errorf("verifying a stranger: %v", err)
	}
	convs, _ = alice.Conversations(ctx)
	want[1].Unread, want[1].Verified = 0, true
	if diff := cmp.Diff(want, summarize(convs)); diff != "" {
		t.Errorf("after reading and verifying bob (-want +got):\n%s", diff)
	}

	// Bob reinstalls: the verification no longer holds and a warning shows.
	bob.stop()
	srv.resetAccount("bob")
	bob2 := register(t, srv, "bob")
	bob2.run(t)
	bob2.Send(ctx, "alice", "new phone")
	alice.waitText(t, "new phone")
	convs, _ = alice.Conversations(ctx)
	if c := convs[0]; c.Peer != "bob" || c.Verified || !c.IdentityChanged || c.Unread != 2 {
		t.Errorf("after bob's key changed: %+v", c)
	}
	// Looking at the new number and clearing the mark acknowledges the change.
	if err := alice.SetVerified(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if v, _ := alice.Verified(ctx, "bob"); v {
		t.Errorf("bob still verified")
	}
	convs, _ = alice.Conversations(ctx)
	if c := convs[0]; c.Verified || c.IdentityChanged {
		t.Errorf("after acknowledging: %+v", c)
	}
}

func TestRetryFailed(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice := register(t, srv, "alice")
	alice.run(t)
	m, _ := alice.Send(ctx, "carol", "anyone?")
	alice.wait(t, "failure", func(ev client.Event) bool { return ev.Type == client.EventSendFailed })
	if _, err := alice.Retry(ctx, "carol", parley.NewMessageID()); parley.ErrorKind(err) != parley.KindNotFound {
		t.Errorf("retrying an unknown message: %v", err)
	}
	carol := register(t, srv, "carol")
	carol.run(t)
	r, err := alice.Retry(ctx, "carol", m.ID)
	if err != nil || r.State != client.StateSending {
		t.Fatalf("Retry: %v, %+v", err, r)
	}
	carol.waitText(t, "anyone?")
	if _, err := alice.Retry(ctx, "carol", m.ID); parley.ErrorKind(err) != parley.KindConflict {
		t.Errorf("retrying a message that is not failed: %v", err)
	}
}

func TestOfflineRedeliveryIsShownOnce(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	for _, s := range []string{"one", "two"} {
		alice.Send(ctx, "bob", s)
		alice.wait(t, "sent", func(ev client.Event) bool { return ev.Type == client.EventSent })
	}
	srv.mu.Lock()
	srv.ignoreAcks = 2 // as if bob crashed after storing, before his acks arrived
	srv.mu.Unlock()
	bob.run(t)
	bob.wait(t, "queue empty", func(ev client.Event) bool { return ev.Type == client.EventQueueEmpty })
	bob.stop()
	bob.run(t) // the server delivers both again
	bob.wait(t, "queue empty", func(ev client.Event) bool { return ev.Type == client.EventQueueEmpty })
	alice.Send(ctx, "bob", "three") // the session still works
	bob.waitText(t, "three")
	if diff := cmp.Diff([]string{"< one", "< two", "< three"}, bob.texts(t, "alice")); diff != "" {
		t.Errorf("bob's history (-want +got):\n%s", diff)
	}
}

func TestOutboxSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	srv.setDown(true)
	alice.run(t)
	m, err := alice.Send(ctx, "bob", "queued")
	if err != nil {
		t.Fatal(err)
	}
	alice.wait(t, "a failed connection", func(ev client.Event) bool { return ev.Type == client.EventDisconnected })
	alice.stop()
	if out, _ := alice.Outbox(ctx); len(out) != 1 || out[0].ID != m.ID {
		t.Fatalf("outbox after a failed send: %+v", out)
	}
	// A new process over the same store.
	srv.setDown(false)
	alice2 := newClient(t, srv, alice.store)
	alice2.run(t)
	alice2.wait(t, "sent", func(ev client.Event) bool { return ev.Type == client.EventSent && ev.Message.ID == m.ID })
	bob.run(t)
	bob.waitText(t, "queued")
}

// TestOutboxPipelined: the outbox sends its messages without waiting for
// each other's answers (the server answers a send only once the recipient
// has stored it, or its own disk has), in order.
func TestOutboxPipelined(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	srv.mu.Lock()
	srv.holdSends = 3 // no answer until three sends wait
	srv.mu.Unlock()
	texts := []string{"one", "two", "three"}
	for _, s := range texts {
		if _, err := alice.Send(ctx, "bob", s); err != nil {
			t.Fatal(err)
		}
	}
	alice.run(t)
	for range texts {
		alice.wait(t, "sent", func(ev client.Event) bool { return ev.Type == client.EventSent })
	}
	bob.run(t)
	bob.waitText(t, "three")
	if got, want := bob.texts(t, "alice"), []string{"< one", "< two", "< three"}; !slices.Equal(got, want) {
		t.Errorf("bob has %q, want %q in order", got, want)
	}
}

func TestIdentityChange(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	bob.run(t)
	alice.Send(ctx, "bob", "before")
	bob.waitText(t, "before")
	before, _, _ := alice.SafetyNumber(ctx, "bob")

	bob.stop()
	srv.resetAccount("bob") // bob reinstalls: a new identity key
	bob2 := register(t, srv, "bob")
	bob2.run(t)
	alice.Send(ctx, "bob", "after")
	alice.wait(t, "identity change", func(ev client.Event) bool { return ev.Type == client.EventIdentityChanged && ev.Peer == "bob" })
	bob2.waitText(t, "after")
	after, _, _ := alice.SafetyNumber(ctx, "bob")
	if before == after {
		t.Errorf("safety number did not change")
	}
	got := alice.texts(t, "bob")
	if len(got) != 3 || !strings.HasPrefix(got[2], "! your safety number with bob changed") {
		t.Errorf("alice's history: %q", got)
	}
}

func TestSendToUnknownUser(t *testing.T) {
	srv := newFakeServer()
	alice := register(t, srv, "alice")
	alice.run(t)
	m, err := alice.Send(context.Background(), "carol", "anyone?")
	if err != nil {
		t.Fatal(err)
	}
	ev := alice.wait(t, "failure", func(ev client.Event) bool { return ev.Type == client.EventSendFailed })
	if ev.Message.ID != m.ID || parley.ErrorKind(ev.Err) != parley.KindNotFound || ev.Err.Error() != "no user named carol on this server" {
		t.Errorf("failure: %v (%v)", ev.Err, parley.ErrorKind(ev.Err))
	}
	if out, _ := alice.Outbox(context.Background()); len(out) != 0 {
		t.Errorf("a refused message stays in the outbox")
	}
}

func TestTopUp(t *testing.T) {
	srv := newFakeServer()
	bob := register(t, srv, "bob")
	srv.mu.Lock()
	d := srv.accounts["bob"].devices[1]
	d.prekeys, d.kyber = d.prekeys[:5], d.kyber[:3]
	srv.mu.Unlock()
	bob.run(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		srv.mu.Lock()
		n := d.counts()
		srv.mu.Unlock()
		if n.PreKeys == 5+client.PreKeyBatch && n.KyberPreKeys == 3+client.PreKeyBatch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts after top-up: %+v", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRegisterTwice(t *testing.T) {
	srv := newFakeServer()
	alice := register(t, srv, "alice")
	if err := alice.Register(context.Background(), testServer, "alice2"); parley.ErrorKind(err) != parley.KindConflict {
		t.Errorf("second Register: %v", err)
	}
	other := newClient(t, srv, nil)
	if err := other.Register(context.Background(), testServer, "alice"); parley.ErrorKind(err) != parley.KindConflict {
		t.Errorf("taken name: %v", err)
	}
}

func TestRegisterResumesAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice := register(t, srv, "alice")
	// As if the process died before storing the server's answer.
	a, err := alice.store.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.Device = 0
	if err := alice.store.Apply(ctx, &client.Batch{Account: a}); err != nil {
		t.Fatal(err)
	}
	again := newClient(t, srv, alice.store)
	if err := again.Register(ctx, testServer, "alice"); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	if u, d, _, err := again.Whoami(); u != "alice" || d != 1 || err != nil {
		t.Errorf("whoami: %s %d %v", u, d, err)
	}
}

// BenchmarkSendReceive measures one message from Send to the recipient's
// EventMessage through the fake server: encrypt, frame codec, decrypt and
// both stores (in memory).
func BenchmarkSendReceive(b *testing.B) {
	srv := newFakeServer()
	alice, bob := register(b, srv, "alice"), register(b, srv, "bob")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go alice.Run(ctx)
	go bob.Run(ctx)
	go func() { // alice's events are not needed; keep them flowing
		for range alice.Events() {
		}
	}()
	for b.Loop() {
		m, err := alice.Send(ctx, "bob", "benchmark message")
		if err != nil {
			b.Fatal(err)
		}
		for ev := range bob.Events() {
			if ev.Type == client.EventMessage && ev.Message.ID == m.ID {
				break
			}
		}
	}
}

// TestNoGoroutineLeak checks that Run leaves nothing behind once stopped.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	bob.run(t)
	alice.Send(context.Background(), "bob", "hi")
	bob.waitText(t, "hi")
	alice.stop()
	bob.stop()
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	alice.Send(ctx, "bob", "started with the first keys")
	alice.wait(t, "sent", func(ev client.Event) bool { return ev.Type == client.EventSent })

	// A week later bob connects again.
	later := newClientAt(t, srv, bob.store, func() time.Time { return time.Now().Add(client.KeyRotation + time.Hour) })
	later.run(t)
	later.waitText(t, "started with the first keys") // the old keys are kept for it
	deadline := time.Now().Add(20 * time.Second)
	for {
		srv.mu.Lock()
		d := srv.accounts["bob"].devices[1]
		spk, lr := d.spk.ID, d.lastResort.ID
		srv.mu.Unlock()
		if spk == 2 && lr == client.PreKeyBatch+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a week: signed prekey %d, last resort %d", spk, lr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// New sessions use the new keys.
	carol := register(t, srv, "carol")
	carol.run(t)
	carol.Send(ctx, "bob", "started with the new keys")
	later.waitText(t, "started with the new keys")
	a, _ := bob.store.Account(ctx)
	if a.SignedPreKeyID != 2 || a.LastResortKyberID != client.PreKeyBatch+2 {
		t.Errorf("account after rotation: signed %d, last resort %d", a.SignedPreKeyID, a.LastResortKyberID)
	}
}

func TestCallSignalling(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	if err := alice.SendCallSignal(ctx, "bob", client.CallSignal{CallID: client.NewCallID(), Type: client.CallOffer, SDP: "v=0"}); parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("a call signal while offline: %v, want unavailable", err)
	}
	online(t, alice, bob)

	call := client.NewCallID()
	for _, bad := range []client.CallSignal{
		{CallID: "nope", Type: client.CallOffer, SDP: "v=0"},
		{CallID: call, Type: client.CallOffer},
		{CallID: call, Type: client.CallICE},
		{CallID: call, Type: "ring"},
		{CallID: call, Type: client.CallAnswer, SDP: strings.Repeat("a", 17<<10)},
	} {
		if err := alice.SendCallSignal(ctx, "bob", bad); err == nil {
			t.Errorf("sending %+v succeeded", bad)
		}
	}
	steps := []struct {
		from, to *testClient
		peer     parley.UserID
		sig      client.CallSignal
	}{
		{alice, bob, "bob", client.CallSignal{CallID: call, Type: client.CallOffer, SDP: "v=0 offer"}},
		{bob, alice, "alice", client.CallSignal{CallID: call, Type: client.CallAnswer, SDP: "v=0 answer"}},
		{alice, bob, "bob", client.CallSignal{CallID: call, Type: client.CallICE, Candidate: `{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`}},
		{bob, alice, "alice", client.CallSignal{CallID: call, Type: client.CallHangup}},
	}
	for _, s := range steps {
		if err := s.from.SendCallSignal(ctx, s.peer, s.sig); err != nil {
			t.Fatalf("%s: %v", s.sig.Type, err)
		}
		ev := s.to.wait(t, string(s.sig.Type), func(ev client.Event) bool { return ev.Type == client.EventCall })
		got := *ev.Call
		if got.CallID != call || got.Type != s.sig.Type || got.SDP != s.sig.SDP || got.Candidate != s.sig.Candidate || got.From.User == "" || got.SentAt.IsZero() {
			t.Errorf("%s arrived as %+v", s.sig.Type, got)
		}
	}
	// A connection lost under a signal: it goes again once alice has
	// reconnected, and arrives once.
	srv.mu.Lock()
	srv.cutSends = 1
	srv.mu.Unlock()
	again := client.NewCallID()
	if err := alice.SendCallSignal(ctx, "bob", client.CallSignal{CallID: again, Type: client.CallOffer, SDP: "v=0 again"}); err != nil {
		t.Fatalf("a call signal whose connection was lost: %v", err)
	}
	if ev := bob.wait(t, "the offer sent again", func(ev client.Event) bool { return ev.Type == client.EventCall }); ev.Call.CallID != again {
		t.Errorf("got %+v", ev.Call)
	}
	for quiet := time.After(300 * time.Millisecond); ; {
		select {
		case ev := <-bob.Events():
			if ev.Type == client.EventCall {
				t.Errorf("a second copy of the signal: %+v", ev.Call)
			}
			continue
		case <-quiet:
		}
		break
	}
	// Sent while Run reconnects: it waits for the connection.
	srv.setDown(true)
	alice.wait(t, "disconnected", func(ev client.Event) bool { return ev.Type == client.EventDisconnected })
	time.AfterFunc(300*time.Millisecond, func() { srv.setDown(false) })
	third := client.NewCallID()
	if err := alice.SendCallSignal(ctx, "bob", client.CallSignal{CallID: third, Type: client.CallOffer, SDP: "v=0 third"}); err != nil {
		t.Fatalf("a call signal while reconnecting: %v", err)
	}
	if ev := bob.wait(t, "the offer sent after the reconnect", func(ev client.Event) bool { return ev.Type == client.EventCall }); ev.Call.CallID != third {
		t.Errorf("got %+v", ev.Call)
	}
	// Signals are not history.
	if got := alice.texts(t, "bob"); len(got) != 0 {
		t.Errorf("alice's history after a call: %q", got)
	}
}

// TestCallSignalsPipelined: call signals started one after another go out
// without waiting for each other's answers, and arrive in order.
func TestCallSignalsPipelined(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	online(t, alice, bob)
	srv.mu.Lock()
	srv.holdSends = 3 // no answer until three wait
	srv.mu.Unlock()
	call := client.NewCallID()
	sigs := []client.CallSignal{
		{CallID: call, Type: client.CallOffer, SDP: "v=0 offer"},
		{CallID: call, Type: client.CallICE, Candidate: `{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}`},
		{CallID: call, Type: client.CallICE, Candidate: `{"candidate":"candidate:2 1 udp 1 127.0.0.1 5001 typ host"}`},
	}
	var waits []func() error
	for _, s := range sigs {
		w, err := alice.StartCallSignal(ctx, "bob", s)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	for _, s := range sigs {
		ev := bob.wait(t, string(s.Type), func(ev client.Event) bool { return ev.Type == client.EventCall })
		if got := *ev.Call; got.Type != s.Type || got.SDP != s.SDP || got.Candidate != s.Candidate {
			t.Errorf("arrived %+v, want %+v", got, s)
		}
	}
}

func TestRecordCall(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, newFakeServer(), nil)
	id := client.NewCallID()
	records := []struct {
		r     client.CallRecord
		text  string
		state client.MessageState
	}{
		{client.CallRecord{CallID: id, Outgoing: true, Outcome: client.CallCompleted, Duration: 83 * time.Second}, "Outgoing call · 1:23", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outcome: client.CallCompleted, Duration: time.Hour + 2*time.Minute + 3*time.Second}, "Incoming call · 1:02:03", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outcome: client.CallMissed}, "Missed call from bob", client.StateUnread},
		{client.CallRecord{CallID: client.NewCallID(), Outcome: client.CallWasBusy}, "Missed call from bob while you were in another call", client.StateUnread},
		{client.CallRecord{CallID: client.NewCallID(), Outgoing: true, Outcome: client.CallRejected}, "bob declined the call", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outcome: client.CallRejected}, "You declined a call from bob", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outgoing: true, Outcome: client.CallWasBusy}, "bob was busy in another call", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outgoing: true, Outcome: client.CallNoAnswer}, "bob did not answer", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outgoing: true, Outcome: client.CallCancelled}, "Cancelled call", client.StateRead},
		{client.CallRecord{CallID: client.NewCallID(), Outgoing: true, Outcome: client.CallFailed, Reason: "no path"}, "Outgoing call failed: no path", client.StateRead},
	}
	var want []string
	for _, r := range records {
		m, err := c.RecordCall(ctx, "bob", r.r)
		if err != nil {
			t.Fatalf("%+v: %v", r.r, err)
		}
		if m.Text != r.text || m.State != r.state || !m.Notice || m.Outgoing || m.Seq == 0 {
			t.Errorf("%s: recorded %+v, want text %q, state %v", r.r.Outcome, m, r.text, r.state)
		}
		want = append(want, "! "+r.text)
	}
	// Once per call: a second record of the first call changes nothing.
	if _, err := c.RecordCall(ctx, "bob", client.CallRecord{CallID: id, Outcome: client.CallFailed}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, c.texts(t, "bob")); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	convs, err := c.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Unread != 2 {
		t.Errorf("conversations: %+v, %v; want bob with 2 unread (the missed calls)", convs, err)
	}
	for _, bad := range []client.CallRecord{
		{CallID: "x", Outcome: client.CallMissed},
		{CallID: id, Outcome: "ringing"},
	} {
		if _, err := c.RecordCall(ctx, "bob", bad); parley.ErrorKind(err) != parley.KindInvalid {
			t.Errorf("RecordCall(%+v): %v, want invalid", bad, err)
		}
	}
	if _, err := c.RecordCall(ctx, "Bad Name!", client.CallRecord{CallID: id, Outcome: client.CallMissed}); err == nil {
		t.Error("RecordCall to an invalid username succeeded")
	}
}

// TestCallSignalWaitsForRoom: a call signal that arrives while nobody
// reads a full events queue waits for room rather than being dropped, as
// other events are.
func TestCallSignalWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob := register(t, srv, "alice"), register(t, srv, "bob")
	alice.run(t)
	bob.run(t)
	alice.wait(t, "connected", func(ev client.Event) bool { return ev.Type == client.EventConnected })
	// bob's queue fills with the messages' events, unread.
	const n = 300
	for i := range n {
		if _, err := alice.Send(ctx, "bob", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		in := false
		if msgs, err := bob.Messages(ctx, client.Query{Peer: "alice", Outgoing: &in}); err == nil && len(msgs) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob did not get the messages")
		}
	}
	call := client.NewCallID()
	if err := alice.SendCallSignal(ctx, "bob", client.CallSignal{CallID: call, Type: client.CallOffer, SDP: "v=0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the signal arrives and waits
	ev := bob.wait(t, "the offer", func(ev client.Event) bool { return ev.Type == client.EventCall })
	if ev.Call.CallID != call {
		t.Errorf("got call %s, want %s", ev.Call.CallID, call)
	}
}
