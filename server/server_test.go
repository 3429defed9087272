package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/directory"
	"github.com/parleychat/parley/server/sqlite"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestRegisterLogin(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})

	// Nothing but Register and Login before authentication.
	c := dial(t, ts)
	wantErr(t, "ping before login", c.call(wire.OpPing, &wire.Ping{Nonce: 1}), parley.KindUnauthorized)

	alice := newIdentity(t, "Alice")
	f := c.register(alice, alice.keys(t, 3, true))
	if f.Err != nil {
		t.Fatalf("register: %v", f.Err)
	}
	want := &wire.Session{User: "alice", Device: 1, Counts: wire.KeyCounts{PreKeys: 3, KyberPreKeys: 3}}
	if diff := cmp.Diff(want, f.Body); diff != "" {
		t.Errorf("register session (-want +got):\n%s", diff)
	}
	if p := c.mustCall(wire.OpPing, &wire.Ping{Nonce: 42}).(*wire.Ping); p.Nonce != 42 {
		t.Errorf("ping nonce %d", p.Nonce)
	}
	wantErr(t, "second register on a session", c.register(alice, alice.keys(t, 0, true)), parley.KindInvalid)

	// Login by the same device, by canonical and by typed username.
	for _, name := range []string{"alice", "ALICE"} {
		c2 := dial(t, ts)
		id := *alice
		id.user = name
		if f := c2.login(&id, 1); f.Err != nil {
			t.Fatalf("login as %q: %v", name, f.Err)
		}
	}

	// A different key cannot log in as alice.
	c3 := dial(t, ts)
	mallory := newIdentity(t, "alice")
	wantErr(t, "login with the wrong key", c3.login(mallory, 1), parley.KindUnauthorized)
	// A signature over another connection's challenge does not verify.
	sig, _ := alice.device.Private.Sign(wire.AuthPayload([32]byte{1}, "alice", 1))
	wantErr(t, "replayed login", c3.call(wire.OpLogin, &wire.Login{Version: wire.ProtocolVersion, Username: "alice", Device: 1, Signature: sig}), parley.KindUnauthorized)
	// The third failure closes the connection.
	wantErr(t, "unknown device", c3.login(alice, 2), parley.KindUnauthorized)
	if code := c3.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindUnauthorized)) {
		t.Errorf("after 3 failed logins: close %d", code)
	}

	// Usernames are unique without regard to case.
	c4 := dial(t, ts)
	other := newIdentity(t, "ALICE")
	wantErr(t, "duplicate username", c4.register(other, other.keys(t, 1, true)), parley.KindConflict)
	bad := newIdentity(t, "a!")
	wantErr(t, "bad username", c4.register(bad, bad.keys(t, 1, true)), parley.KindInvalid)
	// Registration signed by another key.
	forged := newIdentity(t, "carol")
	forged.device = mallory.device
	sig, _ = alice.device.Private.Sign(wire.AuthPayload(c4.hello.Challenge, "carol", 0))
	f = c4.call(wire.OpRegister, &wire.Register{
		Version: wire.ProtocolVersion, Username: "carol", DeviceKey: forged.device.Public.Bytes(), Signature: sig,
		IdentityKey: forged.identity.Public.Bytes(), RegistrationID: 1, Keys: forged.keys(t, 1, true),
	})
	wantErr(t, "register with a forged signature", f, parley.KindUnauthorized)
	// Registration without a signed prekey.
	noKeys := newIdentity(t, "dave")
	wantErr(t, "register without keys", c4.register(noKeys, noKeys.keys(t, 1, false)), parley.KindInvalid)
}

func TestUploadKeys(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	c, alice := registered(t, ts, "alice", 2)

	before := c.mustCall(wire.OpKeyCounts, &wire.GetKeyCounts{}).(*wire.KeyCounts)
	if *before != (wire.KeyCounts{PreKeys: 2, KyberPreKeys: 2}) {
		t.Fatalf("counts %+v", before)
	}
	// One bad signature spoils the whole upload, and nothing changes.
	u := alice.keys(t, 5, true)
	u.KyberPreKeys[3].Signature[0] ^= 1
	wantErr(t, "bad Kyber signature", c.call(wire.OpUploadKeys, &u), parley.KindInvalid)
	u = alice.keys(t, 5, true)
	u.SignedPreKey.Signature = bytes.Clone(u.SignedPreKey.Signature)
	u.SignedPreKey.Signature[10] ^= 1
	wantErr(t, "bad signed prekey signature", c.call(wire.OpUploadKeys, &u), parley.KindInvalid)
	// Signed by a key that is not alice's identity.
	stranger := newIdentity(t, "x")
	su := stranger.keys(t, 1, true)
	wantErr(t, "prekeys signed by another identity", c.call(wire.OpUploadKeys, &su), parley.KindInvalid)
	u = alice.keys(t, 1, false)
	u.PreKeys[0].Key = u.PreKeys[0].Key[:10]
	wantErr(t, "short prekey", c.call(wire.OpUploadKeys, &u), parley.KindInvalid)

	after := c.mustCall(wire.OpKeyCounts, &wire.GetKeyCounts{}).(*wire.KeyCounts)
	if *after != *before {
		t.Errorf("counts changed by failed uploads: %+v -> %+v", before, after)
	}
	// The signed prekey is still the one from registration (ID 1).
	other, _ := registered(t, ts, "other", 0)
	bs := other.mustCall(wire.OpGetBundles, &wire.GetBundles{User: "alice"}).(*wire.Bundles)
	if id := bs.Devices[0].SignedPreKey.ID; id != 1 {
		t.Errorf("signed prekey %d after failed uploads, want 1", id)
	}
	*after = wire.KeyCounts{PreKeys: after.PreKeys - 1, KyberPreKeys: after.KyberPreKeys - 1}

	u = alice.keys(t, 4, false)
	got := c.mustCall(wire.OpUploadKeys, &u).(*wire.KeyCounts)
	if *got != (wire.KeyCounts{PreKeys: after.PreKeys + 4, KyberPreKeys: after.KyberPreKeys + 4}) {
		t.Errorf("after upload: %+v", got)
	}
}

func TestBundles(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	_, bob := registered(t, ts, "bob", 2)
	alice, _ := registered(t, ts, "alice", 1)

	idKey, err := signal.DecodePublicKey(bob.identity.Public.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var preKeys, kyberIDs []uint32
	for i := 0; i < 3; i++ {
		bs := alice.mustCall(wire.OpGetBundles, &wire.GetBundles{User: "BOB"}).(*wire.Bundles)
		if !bytes.Equal(bs.IdentityKey, bob.identity.Public.Bytes()) || len(bs.Devices) != 1 {
			t.Fatalf("bundles: %d devices", len(bs.Devices))
		}
		b := bs.Devices[0]
		if b.Device != 1 || b.RegistrationID != bob.regID {
			t.Errorf("bundle device %d reg %d", b.Device, b.RegistrationID)
		}
		if !idKey.VerifySignature(b.SignedPreKey.Key, b.SignedPreKey.Signature) || !idKey.VerifySignature(b.KyberPreKey.Key, b.KyberPreKey.Signature) {
			t.Errorf("bundle #%d: signatures do not verify", i)
		}
		if b.PreKey != nil {
			preKeys = append(preKeys, b.PreKey.ID)
		}
		kyberIDs = append(kyberIDs, b.KyberPreKey.ID)
	}
	// Two one-time keys of each kind, then the last-resort Kyber key.
	if diff := cmp.Diff([]uint32{1, 2}, preKeys); diff != "" {
		t.Errorf("one-time prekeys handed out (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint32{1, 2, 100001}, kyberIDs); diff != "" {
		t.Errorf("Kyber prekeys handed out (-want +got):\n%s", diff)
	}
	wantErr(t, "unknown user", alice.call(wire.OpGetBundles, &wire.GetBundles{User: "nobody"}), parley.KindNotFound)
	wantErr(t, "unknown device", alice.call(wire.OpGetBundles, &wire.GetBundles{User: "bob", Device: 5}), parley.KindNotFound)
	wantErr(t, "bad username", alice.call(wire.OpGetBundles, &wire.GetBundles{User: "b"}), parley.KindInvalid)
}

func TestLowKeys(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	bobConn, bob := registered(t, ts, "bob", wire.LowKeyThreshold)
	alice, _ := registered(t, ts, "alice", 1)
	// Fetching a bundle takes bob below the threshold: he is told.
	alice.mustCall(wire.OpGetBundles, &wire.GetBundles{User: "bob"})
	for {
		f := bobConn.next()
		if f.Op == wire.OpLowKeys {
			if k := f.Body.(*wire.KeyCounts); *k != (wire.KeyCounts{PreKeys: wire.LowKeyThreshold - 1, KyberPreKeys: wire.LowKeyThreshold - 1}) {
				t.Errorf("low keys push: %+v", k)
			}
			break
		}
	}
	// And again when he logs in while low.
	c := dial(t, ts)
	c.login(bob, 1)
	for {
		if f := c.next(); f.Op == wire.OpLowKeys {
			break
		}
	}
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	alice, _ := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)

	wantErr(t, "unknown user", alice.send("nobody", parley.NewMessageID(), "x", 1), parley.KindNotFound)
	wantErr(t, "no message id", alice.send("bob", parley.MessageID{}, "x", bob.regID), parley.KindInvalid)

	// Stale: the wrong registration id; extra: a device bob does not have;
	// missing: a device bob has.
	f := alice.send("bob", parley.NewMessageID(), "x", bob.regID+1)
	wantErr(t, "stale registration", f, parley.KindStaleDevices)
	if diff := cmp.Diff(&wire.StaleDevices{Stale: []parley.DeviceID{1}}, f.Body, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("stale devices (-want +got):\n%s", diff)
	}
	f = alice.call(wire.OpSend, &wire.Send{To: "bob", ID: parley.NewMessageID(), Messages: []wire.OutgoingMessage{
		{Device: 2, RegistrationID: 1, Type: parley.EnvelopeSignal, Content: []byte("x")},
	}})
	wantErr(t, "wrong devices", f, parley.KindStaleDevices)
	if diff := cmp.Diff(&wire.StaleDevices{Missing: []parley.DeviceID{1}, Extra: []parley.DeviceID{2}}, f.Body, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("stale devices (-want +got):\n%s", diff)
	}
	// Sending to oneself: no other device, so nothing to store; a copy for
	// one's own device is extra.
	if f := alice.call(wire.OpSend, &wire.Send{To: "alice", ID: parley.NewMessageID()}); f.Err != nil {
		t.Errorf("send to self without other devices: %v", f.Err)
	}
	wantErr(t, "copy to own device", alice.send("alice", parley.NewMessageID(), "x", 1234), parley.KindStaleDevices)
	f = alice.call(wire.OpSend, &wire.Send{To: "bob", ID: parley.NewMessageID(), Messages: []wire.OutgoingMessage{
		{Device: 1, RegistrationID: bob.regID, Type: 9, Content: []byte("x")},
	}})
	wantErr(t, "bad envelope type", f, parley.KindInvalid)
}

func TestFrameLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	alice, _ := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)

	// Content over MaxMessageSize, in a frame under MaxFrameSize: an error
	// response, and the connection lives on.
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.VarintType)
	out = protowire.AppendVarint(out, 1)
	out = protowire.AppendTag(out, 4, protowire.BytesType)
	out = protowire.AppendBytes(out, make([]byte, parley.MaxMessageSize+1))
	var send []byte
	send = protowire.AppendTag(send, 1, protowire.BytesType)
	send = protowire.AppendString(send, "bob")
	send = protowire.AppendTag(send, 4, protowire.BytesType)
	send = protowire.AppendBytes(send, out)
	if err := alice.writeRaw(rawFrame(wire.TypeRequest, 77, wire.OpSend, send)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "oversized content", alice.await(77), parley.KindTooLarge)

	// A malformed body with a readable ID: an error response.
	if err := alice.writeRaw(rawFrame(wire.TypeRequest, 78, wire.OpSend, []byte{0x12, 0x03, 1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "malformed body", alice.await(78), parley.KindInvalid)
	// An unknown operation.
	if err := alice.writeRaw(rawFrame(wire.TypeRequest, 79, 4000, nil)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "unknown op", alice.await(79), parley.KindUnsupported)
	if f := alice.send("bob", parley.NewMessageID(), "still here", bob.regID); f.Err != nil {
		t.Fatalf("send after bad frames: %v", f.Err)
	}

	// A frame over MaxFrameSize closes the connection with the mapped code.
	big := make([]byte, parley.MaxFrameSize+1)
	alice.writeRaw(big)
	if code := alice.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindTooLarge)) {
		t.Errorf("oversized frame: close code %d, want %d", code, wire.CloseCode(parley.KindTooLarge))
	}

	// Garbage without a readable ID closes with the code for KindInvalid.
	c := dial(t, ts)
	c.writeRaw([]byte{0xff, 0xff, 0xff})
	if code := c.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindInvalid)) {
		t.Errorf("garbage: close code %d, want %d", code, wire.CloseCode(parley.KindInvalid))
	}
	// A text message is not part of the protocol.
	c = dial(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.ws.Write(ctx, websocket.MessageText, []byte("hello"))
	if code := c.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindUnsupported)) {
		t.Errorf("text message: close code %d", code)
	}
}

func rawFrame(typ wire.FrameType, id uint64, op wire.Op, body []byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(typ))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, id)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(op))
	if body != nil {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return b
}

// TestMailbox covers offline delivery, durability across a restart,
// acknowledgement, replays and order.
func TestMailbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := startServer(t, server.Config{DataDir: dir})
	alice, _ := registered(t, ts, "alice", 1)
	bobConn, bob := registered(t, ts, "bob", 1)
	bobConn.ws.Close(websocket.StatusNormalClosure, "")

	ids := make([]parley.MessageID, 5)
	var sentAt []time.Time
	stamp := time.Now().Truncate(time.Millisecond)
	for i := range ids {
		ids[i] = parley.NewMessageID()
		f := alice.sendAt("bob", ids[i], fmt.Sprintf("message %d", i), bob.regID, stamp)
		if f.Err != nil {
			t.Fatalf("send %d: %v", i, f.Err)
		}
		sentAt = append(sentAt, f.Body.(*wire.SendResult).ServerAt)
	}
	// A replay (a retry: the same id and send time) is answered as a
	// success and stored once.
	if f := alice.sendAt("bob", ids[2], "message 2", bob.regID, stamp); f.Err != nil {
		t.Fatalf("replay: %v", f.Err)
	}

	// Restart: what was acknowledged to alice survives.
	alice.ws.CloseNow()
	ts.stop()
	ts = startServer(t, server.Config{DataDir: dir})

	c, ds := online(t, ts, bob)
	if len(ds) != len(ids) {
		t.Fatalf("backlog of %d messages, want %d", len(ds), len(ids))
	}
	for i, f := range ds {
		e := f.Body.(*wire.Deliver).Envelope
		want := parley.Envelope{
			ID: ids[i], From: parley.Address{User: "alice", Device: 1}, To: parley.Address{User: "bob", Device: 1},
			Type: parley.EnvelopeSignal, Content: []byte(fmt.Sprintf("message %d", i)), ServerSeq: f.ID, ServerAt: sentAt[i],
		}
		if diff := cmp.Diff(want, e, cmpopts.IgnoreFields(parley.Envelope{}, "SentAt")); diff != "" {
			t.Errorf("message %d (-want +got):\n%s", i, diff)
		}
	}
	// Acknowledge the first three; the rest come again on the next login.
	for _, f := range ds[:3] {
		c.ack(f)
	}
	c.call(wire.OpPing, &wire.Ping{}) // acks are processed in order before this answer...
	waitFor(t, func() bool {          // ...and deleted by the acker soon after
		_, ds := online(t, ts, bob)
		return len(ds) == 2
	})
	_, ds = online(t, ts, bob)
	if len(ds) != 2 || ds[0].Body.(*wire.Deliver).Envelope.ID != ids[3] {
		t.Errorf("after acks: %d messages", len(ds))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveOrder sends many messages to an online device whose live queue is
// tiny, so that live copies are dropped and re-read from the mailbox: every
// message arrives once, in order.
func TestLiveOrder(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{LiveQueue: 2})
	_, bob := registered(t, ts, "bob", 1)
	bobConn, backlog := online(t, ts, bob)
	if len(backlog) != 0 {
		t.Fatalf("backlog of %d", len(backlog))
	}
	const senders, each = 3, 40
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		c, _ := registered(t, ts, fmt.Sprintf("sender%d", s), 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := parley.MessageID{byte(s), byte(i), 1}
				b, _ := (&wire.Frame{Type: wire.TypeRequest, ID: uint64(i + 1), Op: wire.OpSend, Body: &wire.Send{
					To: "bob", ID: id, Messages: []wire.OutgoingMessage{{Device: 1, RegistrationID: bob.regID, Type: parley.EnvelopeSignal, Content: []byte{byte(i)}}},
				}}).MarshalBinary()
				if err := c.writeRaw(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	seen := map[parley.MessageID]bool{}
	for n := 0; n < senders*each; n++ {
		f := bobConn.nextDeliver()
		e := f.Body.(*wire.Deliver).Envelope
		if seen[e.ID] {
			t.Fatalf("message %v delivered twice", e.ID)
		}
		seen[e.ID] = true
		s, i := int(e.ID[0]), int(e.ID[1])
		if i != next[s] {
			t.Fatalf("from sender%d: message %d (seq %d), want %d", s, i, f.ID, next[s])
		}
		next[s]++
		bobConn.ack(f)
	}
	wg.Wait()
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	var (
		mu  sync.Mutex
		now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	ts := startServer(t, server.Config{Now: clock, Retention: 24 * time.Hour})
	alice, _ := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)
	id := parley.NewMessageID()
	alice.send("bob", id, "old", bob.regID)

	if n, err := ts.Expire(context.Background()); err != nil || n != 0 {
		t.Fatalf("Expire too early = %d, %v", n, err)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	alice.send("bob", parley.NewMessageID(), "new", bob.regID)
	if n, err := ts.Expire(context.Background()); err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1", n, err)
	}
	_, ds := online(t, ts, bob)
	if len(ds) != 1 || string(ds[0].Body.(*wire.Deliver).Envelope.Content) != "new" {
		t.Errorf("after expiry: %d messages", len(ds))
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{
		RegisterRate: server.Rate{Every: time.Hour, Burst: 3},
		SendRate:     server.Rate{Every: time.Hour, Burst: 2},
		BundleRate:   server.Rate{Every: time.Hour, Burst: 1},
	})
	alice, _ := registered(t, ts, "alice", 2)
	_, bob := registered(t, ts, "bob", 2)
	c := dial(t, ts)
	carol := newIdentity(t, "carol")
	c.register(carol, carol.keys(t, 1, true))
	dave := newIdentity(t, "dave")
	wantErr(t, "fourth registration", dial(t, ts).register(dave, dave.keys(t, 1, true)), parley.KindRateLimited)

	alice.send("bob", parley.NewMessageID(), "1", bob.regID)
	alice.send("bob", parley.NewMessageID(), "2", bob.regID)
	wantErr(t, "third send", alice.send("bob", parley.NewMessageID(), "3", bob.regID), parley.KindRateLimited)
	alice.mustCall(wire.OpGetBundles, &wire.GetBundles{User: "bob"})
	wantErr(t, "second bundle fetch", alice.call(wire.OpGetBundles, &wire.GetBundles{User: "bob"}), parley.KindRateLimited)
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	_, alice := registered(t, ts, "alice", 1)
	c, _ := online(t, ts, alice)
	pre := dial(t, ts) // not yet authenticated
	done := make(chan struct{})
	go func() {
		ts.stop()
		close(done)
	}()
	for _, cl := range []*client{c, pre} {
		if code := cl.closeStatus(); code != websocket.StatusGoingAway {
			t.Errorf("close code %d, want going away", code)
		}
	}
	<-done
}

func TestReplacedConnection(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	_, alice := registered(t, ts, "alice", 1)
	first, _ := online(t, ts, alice)
	online(t, ts, alice)
	if code := first.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindConflict)) {
		t.Errorf("replaced connection closed with %d", code)
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	alice, _ := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)
	alice.send("bob", parley.NewMessageID(), "x", bob.regID)

	if code, body := httpGet(t, ts.http+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, ts.http+"/"); code != 200 || !strings.Contains(body, "Parley") {
		t.Errorf("/: %d", code)
	}
	if code, _ := httpGet(t, ts.http+"/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
	code, body := httpGet(t, ts.http+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"parley_connected_devices 2",
		"parley_messages_accepted_total 1",
		"parley_messages_queued 1",
		"parley_messages_delivered_total 0",
		`parley_store_seconds_bucket{op="enqueue"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestLogsHoldNoSecrets checks that debug logs hold no content, keys or
// signatures.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	ts := startServer(t, server.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	alice, aliceID := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)
	const secret = "attack at dawn"
	alice.send("bob", parley.NewMessageID(), secret, bob.regID)
	c, ds := online(t, ts, bob)
	c.ack(ds[0])
	alice.send("nobody", parley.NewMessageID(), secret, 1)
	alice.ws.CloseNow()
	c.ws.CloseNow()
	ts.stop()
	out := logs.String()
	if !strings.Contains(out, "registered") {
		t.Fatalf("no logs captured:\n%s", out)
	}
	for _, secret := range [][]byte{[]byte(secret), aliceID.identity.Public.Bytes()[1:9], aliceID.device.Public.Bytes()[1:9]} {
		if strings.Contains(out, string(secret)) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("logs hold %q", secret)
		}
	}
}

// TestAckThenReconnect: an acknowledgement sent just before the client closes
// its connection still counts for its next connection. After an abrupt
// close the acknowledgement may be lost with the connection (a TCP reset
// discards what the server had not read yet); then the message comes again,
// as at-least-once delivery allows, before the new one.
func TestAckThenReconnect(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	alice, _ := registered(t, ts, "alice", 1)
	_, bob := registered(t, ts, "bob", 1)
	var prev parley.MessageID
	for i := 0; i < 20; i++ {
		id := parley.NewMessageID()
		alice.send("bob", id, "x", bob.regID)
		c, ds := online(t, ts, bob)
		var got []parley.MessageID
		for _, d := range ds {
			got = append(got, d.Body.(*wire.Deliver).Envelope.ID)
		}
		want := []parley.MessageID{id}
		if i%2 == 0 && i > 0 && len(got) == 2 { // the last round closed abruptly
			want = []parley.MessageID{prev, id}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: delivered %v, want %v", i, got, want)
		}
		for _, d := range ds {
			c.ack(d)
		}
		prev = id
		if i%2 == 0 {
			c.ws.Close(websocket.StatusNormalClosure, "")
		} else {
			c.ws.CloseNow()
		}
	}
}

// TestLargeBacklog: more stored messages than the delivery window arrive in
// order, once each, as the client acknowledges them, then QueueEmpty.
func TestLargeBacklog(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{})
	_, bob := registered(t, ts, "bob", 1)
	const n = 300 // over the window of 256
	var wg sync.WaitGroup
	for s := 0; s < 4; s++ {
		c, _ := registered(t, ts, fmt.Sprintf("sender%d", s), 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				id := parley.MessageID{byte(s), byte(i), 1}
				b, _ := (&wire.Frame{Type: wire.TypeRequest, ID: uint64(i + 1), Op: wire.OpSend, Body: &wire.Send{
					To: "bob", ID: id, Messages: []wire.OutgoingMessage{{Device: 1, RegistrationID: bob.regID, Type: parley.EnvelopeSignal, Content: []byte{byte(i)}}},
				}}).MarshalBinary()
				if err := c.writeRaw(b); err != nil {
					t.Error(err)
					return
				}
			}
			c.await(uint64(n / 4)) // the last answer: all stored
		}()
	}
	wg.Wait()

	c := dial(t, ts)
	if f := c.login(bob, 1); f.Err != nil {
		t.Fatal(f.Err)
	}
	next := make([]int, 4)
	got := 0
	for {
		f := c.next()
		if f.Op == wire.OpQueueEmpty {
			break
		}
		if f.Op != wire.OpDeliver {
			continue
		}
		e := f.Body.(*wire.Deliver).Envelope
		s, i := int(e.ID[0]), int(e.ID[1])
		if i != next[s] {
			t.Fatalf("from sender%d: message %d, want %d", s, i, next[s])
		}
		next[s]++
		got++
		c.ack(f)
	}
	if got != n {
		t.Errorf("%d messages before QueueEmpty, want %d", got, n)
	}
}

func TestAuthTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{AuthTimeout: 100 * time.Millisecond})
	c := dial(t, ts)
	// Closed as unavailable, not unauthorized: the client should retry.
	if code := c.closeStatus(); code != websocket.StatusCode(wire.CloseCode(parley.KindUnavailable)) {
		t.Errorf("no login: close code %d, want %d", code, wire.CloseCode(parley.KindUnavailable))
	}
	// Once authenticated, the timeout no longer applies.
	_, alice := registered(t, ts, "alice", 1)
	c, _ = online(t, ts, alice)
	time.Sleep(300 * time.Millisecond)
	if p := c.mustCall(wire.OpPing, &wire.Ping{Nonce: 5}).(*wire.Ping); p.Nonce != 5 {
		t.Error("ping after the auth timeout")
	}
}

// TestSlowRegister: a Register that takes longer to upload than the auth
// timeout, as a hundred Kyber prekeys do on a slow link, still gets through
// while its bytes keep coming (TestAuthDeadline: unless they trickle).
func TestSlowRegister(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	ts := startServer(t, server.Config{AuthTimeout: timeout})
	id := newIdentity(t, "slow")
	keys := id.keys(t, 20, true) // before the clock starts: this takes a while
	c := dial(t, ts)
	sig, err := id.device.Private.Sign(wire.AuthPayload(c.hello.Challenge, id.user, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&wire.Frame{Type: wire.TypeRequest, ID: 1, Op: wire.OpRegister, Body: &wire.Register{
		Version: wire.ProtocolVersion, Username: id.user, DeviceKey: id.device.Public.Bytes(), Signature: sig,
		IdentityKey: id.identity.Public.Bytes(), RegistrationID: id.regID, Keys: keys,
	}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// About 36 KB in 8 parts over 4 timeouts' time: some 8 KB/s.
	start := time.Now()
	w, err := c.ws.Writer(context.Background(), websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	const parts = 8
	for i := range parts {
		part := b[i*len(b)/parts : (i+1)*len(b)/parts]
		if _, err := w.Write(part); err != nil {
			t.Fatalf("part %d, after %v: %v", i, time.Since(start), err)
		}
		time.Sleep(4 * timeout / parts)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if f := c.await(1); f.Err != nil {
		t.Fatalf("slow register, %d bytes in %v: %v", len(b), time.Since(start), f.Err)
	}

}

// TestPingTimeout: a client that does not answer pings is cut off.
func TestPingTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, server.Config{PingInterval: 50 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	_, alice := registered(t, ts, "alice", 1)
	c, _ := online(t, ts, alice)
	time.Sleep(500 * time.Millisecond) // not reading: no pongs
	start := time.Now()
	c.closeStatus()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("connection still open %v after the pings went unanswered", d)
	}
	// A client that reads answers pings and stays.
	c, _ = online(t, ts, alice)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.tryRead(500 * time.Millisecond) // answers pings while it waits
	}()
	<-done
	if p := c.mustCall(wire.OpPing, &wire.Ping{Nonce: 9}).(*wire.Ping); p.Nonce != 9 {
		t.Error("ping answer")
	}
}

// TestMultiDevice: a send goes to every device of the recipient, and to the
// sender's own other devices, never to the sending device itself.
func TestMultiDevice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, server.Config{DataDir: dir, Store: st})
	alice, _ := registered(t, ts, "alice", 1)
	bob1Conn, bob := registered(t, ts, "bob", 1)

	// Link a second device to bob directly in the store (no wire op yet).
	bob2 := newIdentity(t, "bob")
	bob2.identity = bob.identity
	k := bob2.keys(t, 1, true)
	id, err := st.AddDevice(context.Background(), directory.Device{User: "bob", AuthKey: bob2.device.Public.Bytes(), RegistrationID: 555},
		directory.Keys{
			Signed:       &directory.PreKey{ID: k.SignedPreKey.ID, Key: k.SignedPreKey.Key, Signature: k.SignedPreKey.Signature},
			LastResort:   &directory.PreKey{ID: k.LastResortKyber.ID, Key: k.LastResortKyber.Key, Signature: k.LastResortKyber.Signature},
			OneTime:      []directory.PreKey{{ID: k.PreKeys[0].ID, Key: k.PreKeys[0].Key}},
			KyberOneTime: []directory.PreKey{{ID: k.KyberPreKeys[0].ID, Key: k.KyberPreKeys[0].Key, Signature: k.KyberPreKeys[0].Signature}},
		})
	if err != nil || id != 2 {
		t.Fatalf("AddDevice = %d, %v", id, err)
	}

	bs := alice.mustCall(wire.OpGetBundles, &wire.GetBundles{User: "bob"}).(*wire.Bundles)
	if len(bs.Devices) != 2 || bs.Devices[1].Device != 2 || bs.Devices[1].RegistrationID != 555 {
		t.Fatalf("bundles of bob: %+v", bs.Devices)
	}
	f := alice.send("bob", parley.NewMessageID(), "x", bob.regID)
	wantErr(t, "send to one of two devices", f, parley.KindStaleDevices)
	if diff := cmp.Diff(&wire.StaleDevices{Missing: []parley.DeviceID{2}}, f.Body, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("stale devices (-want +got):\n%s", diff)
	}
	msgID := parley.NewMessageID()
	alice.mustCall(wire.OpSend, &wire.Send{To: "bob", ID: msgID, Messages: []wire.OutgoingMessage{
		{Device: 1, RegistrationID: bob.regID, Type: parley.EnvelopePreKey, Content: []byte("for bob.1")},
		{Device: 2, RegistrationID: 555, Type: parley.EnvelopePreKey, Content: []byte("for bob.2")},
	}})
	if e := bob1Conn.nextDeliver().Body.(*wire.Deliver).Envelope; string(e.Content) != "for bob.1" || e.ID != msgID {
		t.Errorf("bob.1 got %q", e.Content)
	}
	c2 := dial(t, ts)
	if f := c2.login(bob2, 2); f.Err != nil {
		t.Fatalf("login bob.2: %v", f.Err)
	}
	ds := c2.backlog()
	if len(ds) != 1 || string(ds[0].Body.(*wire.Deliver).Envelope.Content) != "for bob.2" {
		t.Fatalf("bob.2 backlog: %d", len(ds))
	}

	// bob.1 writes to himself: only bob.2 gets a copy.
	wantErr(t, "copy for the sending device", bob1Conn.call(wire.OpSend, &wire.Send{To: "bob", ID: parley.NewMessageID(), Messages: []wire.OutgoingMessage{
		{Device: 1, RegistrationID: bob.regID, Type: parley.EnvelopeSignal, Content: []byte("x")},
		{Device: 2, RegistrationID: 555, Type: parley.EnvelopeSignal, Content: []byte("x")},
	}}), parley.KindStaleDevices)
	bob1Conn.mustCall(wire.OpSend, &wire.Send{To: "bob", ID: parley.NewMessageID(), Messages: []wire.OutgoingMessage{
		{Device: 2, RegistrationID: 555, Type: parley.EnvelopeSignal, Content: []byte("sync")},
	}})
	if e := c2.nextDeliver().Body.(*wire.Deliver).Envelope; string(e.Content) != "sync" || e.From != (parley.Address{User: "bob", Device: 1}) {
		t.Errorf("bob.2 got %q from %s", e.Content, e.From)
	}
}

// TestIdleGoroutines: an idle connected device costs two goroutines (the
// reader and the writer); the HTTP handler and the helpers are gone.
func TestIdleGoroutines(t *testing.T) {
	ts := startServer(t, server.Config{})
	const devices = 10
	for i := range devices {
		registered(t, ts, fmt.Sprintf("idle%d", i), 1) // stays connected
	}
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		n = 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "parley/server.(*conn)") || strings.Contains(g, "parley/server.(*Server).serveWS") {
				n++
			}
		}
		if n <= 2*devices {
			return
		}
	}
	t.Errorf("%d idle connections run %d goroutines, want 2 each", devices, n)
}
