// Package storetest is the conformance suite of server.Store: every backend
// runs Run from its own tests, so that all of them keep one contract.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/directory"
)

// Run runs the suite. open returns a new, empty store; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) server.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s server.Store)
	}{
		{"Accounts", testAccounts},
		{"Keys", testKeys},
		{"Bundles", testBundles},
		{"Devices", testDevices},
		{"BundlesConcurrent", testBundlesConcurrent},
		{"Mailbox", testMailbox},
		{"Replay", testReplay},
		{"Expire", testExpire},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
		{"PipelinedEnqueue", testPipelinedEnqueue},
		{"PipelinedReplay", testPipelinedReplay},
		{"AckBeforeDurable", testAckBeforeDurable},
		{"ConcurrentMixed", testConcurrentMixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var t0 = time.UnixMilli(1_800_000_000_000).UTC()

func key(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func account(user parley.UserID) (directory.Account, directory.Device) {
	return directory.Account{User: user, IdentityKey: key(5, 33), Created: t0},
		directory.Device{User: user, ID: parley.PrimaryDevice, AuthKey: key(6, 33), RegistrationID: 42, Created: t0}
}

func keys(first uint32, n int) directory.Keys {
	k := directory.Keys{
		Signed:     &directory.PreKey{ID: 1, Key: key(1, 33), Signature: key(2, 64)},
		LastResort: &directory.PreKey{ID: 1000, Key: key(8, 1569), Signature: key(3, 64)},
	}
	for i := 0; i < n; i++ {
		k.OneTime = append(k.OneTime, directory.PreKey{ID: first + uint32(i), Key: key(byte(i), 33)})
		k.KyberOneTime = append(k.KyberOneTime, directory.PreKey{ID: first + uint32(i), Key: key(byte(i), 1569), Signature: key(4, 64)})
	}
	return k
}

func mustCreate(t *testing.T, s server.Store, user parley.UserID, k directory.Keys) {
	t.Helper()
	a, d := account(user)
	if err := s.CreateAccount(context.Background(), a, d, k); err != nil {
		t.Fatalf("CreateAccount(%s): %v", user, err)
	}
}

func wantKind(t *testing.T, what string, err error, k parley.Kind) {
	t.Helper()
	if err == nil || parley.ErrorKind(err) != k {
		t.Errorf("%s: err = %v, want kind %s", what, err, k)
	}
}

func testAccounts(t *testing.T, s server.Store) {
	ctx := context.Background()
	a, d := account("alice")
	if err := s.CreateAccount(ctx, a, d, keys(1, 2)); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "second CreateAccount", s.CreateAccount(ctx, a, d, directory.Keys{}), parley.KindConflict)

	gotA, gotD, err := s.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, gotA, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Account (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]directory.Device{d}, gotD, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	got, err := s.Device(ctx, d.Addr())
	if err != nil || !cmp.Equal(got, d) {
		t.Errorf("Device = %+v, %v; want %+v", got, err, d)
	}
	_, _, err = s.Account(ctx, "nobody")
	wantKind(t, "Account(nobody)", err, parley.KindNotFound)
	_, err = s.Device(ctx, parley.Address{User: "alice", Device: 2})
	wantKind(t, "Device(alice.2)", err, parley.KindNotFound)
	_, err = s.Device(ctx, parley.Address{User: "bob", Device: 1})
	wantKind(t, "Device(bob.1)", err, parley.KindNotFound)
}

func testKeys(t *testing.T, s server.Store) {
	ctx := context.Background()
	mustCreate(t, s, "alice", keys(1, 3))
	addr := parley.Address{User: "alice", Device: 1}
	c, err := s.KeyCounts(ctx, addr)
	if err != nil || c != (directory.KeyCounts{PreKeys: 3, KyberPreKeys: 3}) {
		t.Errorf("KeyCounts = %+v, %v; want 3, 3", c, err)
	}
	// IDs 3..5: 3 replaces the existing key, 4 and 5 are new.
	c, err = s.AddKeys(ctx, addr, directory.Keys{OneTime: keys(3, 3).OneTime})
	if err != nil || c != (directory.KeyCounts{PreKeys: 5, KyberPreKeys: 3}) {
		t.Errorf("AddKeys = %+v, %v; want 5, 3", c, err)
	}
	newSigned := &directory.PreKey{ID: 2, Key: key(9, 33), Signature: key(9, 64)}
	if _, err := s.AddKeys(ctx, addr, directory.Keys{Signed: newSigned}); err != nil {
		t.Fatal(err)
	}
	_, bs, err := s.TakeBundles(ctx, "alice", 1)
	if err != nil || len(bs) != 1 {
		t.Fatalf("TakeBundles = %v, %v", bs, err)
	}
	if !cmp.Equal(bs[0].Signed, *newSigned) {
		t.Errorf("signed prekey not replaced: got %d", bs[0].Signed.ID)
	}
	_, err = s.AddKeys(ctx, parley.Address{User: "alice", Device: 9}, directory.Keys{OneTime: keys(1, 1).OneTime})
	wantKind(t, "AddKeys(unknown device)", err, parley.KindNotFound)
	_, err = s.KeyCounts(ctx, parley.Address{User: "bob", Device: 1})
	wantKind(t, "KeyCounts(unknown)", err, parley.KindNotFound)
}

func testBundles(t *testing.T, s server.Store) {
	ctx := context.Background()
	mustCreate(t, s, "bob", keys(10, 2))
	var ids []uint32
	for i := 0; i < 3; i++ {
		a, bs, err := s.TakeBundles(ctx, "bob", 0)
		if err != nil {
			t.Fatalf("TakeBundles #%d: %v", i, err)
		}
		if !bytes.Equal(a.IdentityKey, key(5, 33)) || len(bs) != 1 {
			t.Fatalf("TakeBundles #%d = %+v, %d bundles", i, a, len(bs))
		}
		b := bs[0]
		if b.Device.ID != 1 || b.Device.RegistrationID != 42 || b.Signed.ID != 1 {
			t.Errorf("bundle #%d: %+v", i, b)
		}
		switch i {
		case 0, 1:
			if b.OneTime == nil || b.LastResort || b.Kyber.ID != uint32(10+i) {
				t.Errorf("bundle #%d: one-time %v, kyber %d (last resort %v)", i, b.OneTime, b.Kyber.ID, b.LastResort)
			}
			if b.OneTime != nil {
				ids = append(ids, b.OneTime.ID)
			}
			if want := (directory.KeyCounts{PreKeys: 1 - i, KyberPreKeys: 1 - i}); b.Left != want {
				t.Errorf("bundle #%d: left %+v, want %+v", i, b.Left, want)
			}
		case 2:
			if b.OneTime != nil || !b.LastResort || b.Kyber.ID != 1000 || len(b.Kyber.Key) != 1569 {
				t.Errorf("bundle #%d: want last resort only, got one-time %v kyber %d", i, b.OneTime, b.Kyber.ID)
			}
		}
	}
	if !cmp.Equal(ids, []uint32{10, 11}) {
		t.Errorf("one-time keys handed out: %v", ids)
	}
	c, _ := s.KeyCounts(ctx, parley.Address{User: "bob", Device: 1})
	if c != (directory.KeyCounts{}) {
		t.Errorf("counts after draining: %+v", c)
	}
	_, _, err := s.TakeBundles(ctx, "nobody", 0)
	wantKind(t, "TakeBundles(nobody)", err, parley.KindNotFound)
	_, _, err = s.TakeBundles(ctx, "bob", 7)
	wantKind(t, "TakeBundles(bob.7)", err, parley.KindNotFound)
}

func testBundlesConcurrent(t *testing.T, s server.Store) {
	ctx := context.Background()
	const n = 20
	mustCreate(t, s, "carol", keys(1, n))
	var (
		mu   sync.Mutex
		seen = map[uint32]bool{}
		wg   sync.WaitGroup
	)
	for i := 0; i < n+5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bs, err := s.TakeBundles(ctx, "carol", 1)
			if err != nil {
				t.Error(err)
				return
			}
			if bs[0].OneTime == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[bs[0].OneTime.ID] {
				t.Errorf("one-time key %d handed out twice", bs[0].OneTime.ID)
			}
			seen[bs[0].OneTime.ID] = true
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct one-time keys handed out, want %d", len(seen), n)
	}
}

func envelopes(from parley.Address, id parley.MessageID, to parley.UserID, devices ...parley.DeviceID) []parley.Envelope {
	var envs []parley.Envelope
	for _, d := range devices {
		envs = append(envs, parley.Envelope{
			ID: id, From: from, To: parley.Address{User: to, Device: d},
			Type: parley.EnvelopeSignal, Content: []byte(fmt.Sprintf("ciphertext %x for %d", id[:4], d)),
			SentAt: t0, ServerAt: t0.Add(time.Second),
		})
	}
	return envs
}

// testPipelinedEnqueue starts many enqueues before waiting for any: they
// are stored in the order started, and a replay among them is reported.
func testPipelinedEnqueue(t *testing.T, s server.Store) {
	ctx := context.Background()
	alice := parley.Address{User: "alice", Device: 1}
	bob := parley.Address{User: "bob", Device: 1}
	const n = 50
	waits := make([]func() (bool, error), n+1)
	batches := make([][]parley.Envelope, n)
	for i := range n {
		batches[i] = envelopes(alice, parley.MessageID{byte(i), 2}, "bob", 1)
		waits[i] = s.StartEnqueue(ctx, batches[i], nil)
	}
	waits[n] = s.StartEnqueue(ctx, envelopes(alice, parley.MessageID{7, 2}, "bob", 1), nil) // replays #7
	for i, wait := range waits {
		dup, err := wait()
		if err != nil {
			t.Fatalf("wait #%d: %v", i, err)
		}
		if want := i == n; dup != want {
			t.Fatalf("wait #%d: dup %v, want %v", i, dup, want)
		}
	}
	got, err := s.Mailbox(ctx, bob, 0, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("mailbox holds %d, want %d", len(got), n)
	}
	for i, e := range got {
		if e.ID != batches[i][0].ID || e.ServerSeq != batches[i][0].ServerSeq {
			t.Fatalf("mailbox[%d] = %v seq %d, want %v seq %d: not in the order started", i, e.ID, e.ServerSeq, batches[i][0].ID, batches[i][0].ServerSeq)
		}
	}
}

// testPipelinedReplay starts the same message twice, and once from another
// device, before waiting: a backend that applies many enqueues together
// still stores the message once per sending device.
func testPipelinedReplay(t *testing.T, s server.Store) {
	ctx := context.Background()
	id := parley.MessageID{9, 9, 9}
	alice1 := parley.Address{User: "alice", Device: 1}
	alice2 := parley.Address{User: "alice", Device: 2}
	waits := []func() (bool, error){
		s.StartEnqueue(ctx, envelopes(alice1, id, "bob", 1, 2), nil),
		s.StartEnqueue(ctx, envelopes(alice1, id, "bob", 1, 2), nil),
		s.StartEnqueue(ctx, envelopes(alice2, id, "bob", 1, 2), nil),
	}
	for i, want := range []bool{false, true, false} {
		if dup, err := waits[i](); err != nil || dup != want {
			t.Fatalf("wait #%d: dup %v, %v; want dup %v", i, dup, err, want)
		}
	}
	for _, d := range []parley.DeviceID{1, 2} {
		got, err := s.Mailbox(ctx, parley.Address{User: "bob", Device: d}, 0, 10)
		if err != nil || len(got) != 2 || got[0].From != alice1 || got[1].From != alice2 {
			t.Fatalf("bob.%d mailbox: %v, %v; want one copy from each sending device", d, got, err)
		}
	}
}

// testAckBeforeDurable: the server delivers a message as soon as the store
// accepts it (the accepted callback), and the device may acknowledge it
// before the sender's wait returns; the sender is still answered, and
// neither the message nor its seq comes back.
func testAckBeforeDurable(t *testing.T, s server.Store) {
	ctx := context.Background()
	alice := parley.Address{User: "alice", Device: 1}
	bob1 := parley.Address{User: "bob", Device: 1}
	bob2 := parley.Address{User: "bob", Device: 2}
	id := parley.MessageID{4, 4}
	offered := make(chan parley.Envelope, 2)
	wait := s.StartEnqueue(ctx, envelopes(alice, id, "bob", 1, 2), func(e *parley.Envelope) bool { offered <- *e; return true })
	var got [2]parley.Envelope
	for i := range got {
		select {
		case got[i] = <-offered:
		case <-time.After(10 * time.Second):
			t.Fatal("no copy offered")
		}
	}
	if got[0].To != bob1 || got[1].To != bob2 || got[0].ServerSeq == 0 || got[1].ServerSeq <= got[0].ServerSeq {
		t.Fatalf("offered %v", got)
	}
	// Offered, it is in the mailbox too (a device that connects now finds
	// it there).
	if m, err := s.Mailbox(ctx, bob1, 0, 10); err != nil || len(m) != 1 || m[0].ServerSeq != got[0].ServerSeq {
		t.Fatalf("bob.1's mailbox once offered: %v, %v", m, err)
	}
	if err := s.Ack(ctx, bob1, []uint64{got[0].ServerSeq}); err != nil {
		t.Fatal(err)
	}
	if dup, err := wait(); dup || err != nil {
		t.Fatalf("wait: dup %v, %v", dup, err)
	}
	if m, err := s.Mailbox(ctx, bob1, 0, 10); err != nil || len(m) != 0 {
		t.Errorf("bob.1's mailbox after its ack: %v, %v; want empty", m, err)
	}
	if m, err := s.Mailbox(ctx, bob2, 0, 10); err != nil || len(m) != 1 || m[0].ServerSeq != got[1].ServerSeq {
		t.Errorf("bob.2's mailbox: %v, %v; want its copy", m, err)
	}
	if n, err := s.CountMessages(ctx); err != nil || n != 1 {
		t.Errorf("CountMessages = %d, %v; want 1", n, err)
	}
	if dup, err := s.Enqueue(ctx, envelopes(alice, id, "bob", 1, 2)); !dup || err != nil {
		t.Errorf("replay: dup %v, %v; want dup", dup, err)
	}
	// Acknowledged by both before it was durable: gone, seqs not reused.
	id2 := parley.MessageID{4, 5}
	wait = s.StartEnqueue(ctx, envelopes(alice, id2, "bob", 1, 2), func(e *parley.Envelope) bool { offered <- *e; return true })
	for i := range got {
		got[i] = <-offered
		if err := s.Ack(ctx, got[i].To, []uint64{got[i].ServerSeq}); err != nil {
			t.Fatal(err)
		}
	}
	if dup, err := wait(); dup || err != nil {
		t.Fatalf("wait: dup %v, %v", dup, err)
	}
	next := envelopes(alice, parley.MessageID{4, 6}, "bob", 1)
	if _, err := s.Enqueue(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ServerSeq <= got[1].ServerSeq {
		t.Errorf("seq %d reused (%d was given before)", next[0].ServerSeq, got[1].ServerSeq)
	}
	if m, _ := s.Mailbox(ctx, bob1, 0, 10); len(m) != 1 || m[0].ID != next[0].ID {
		t.Errorf("bob.1's mailbox: %v; want only the last message", m)
	}
}

func testMailbox(t *testing.T, s server.Store) {
	ctx := context.Background()
	alice := parley.Address{User: "alice", Device: 1}
	bob1 := parley.Address{User: "bob", Device: 1}
	bob2 := parley.Address{User: "bob", Device: 2}
	var sent []parley.Envelope
	for i := 0; i < 5; i++ {
		envs := envelopes(alice, parley.MessageID{byte(i), 1}, "bob", 1, 2)
		dup, err := s.Enqueue(ctx, envs)
		if err != nil || dup {
			t.Fatalf("Enqueue #%d: dup %v, %v", i, dup, err)
		}
		if envs[0].ServerSeq == 0 || envs[1].ServerSeq == envs[0].ServerSeq {
			t.Fatalf("Enqueue #%d: seqs %d, %d", i, envs[0].ServerSeq, envs[1].ServerSeq)
		}
		if len(sent) > 0 && envs[0].ServerSeq <= sent[len(sent)-1].ServerSeq {
			t.Fatalf("seqs do not grow: %d after %d", envs[0].ServerSeq, sent[len(sent)-1].ServerSeq)
		}
		sent = append(sent, envs[0])
	}
	got, err := s.Mailbox(ctx, bob1, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sent, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Mailbox (-want +got):\n%s", diff)
	}
	page, err := s.Mailbox(ctx, bob1, sent[1].ServerSeq, 2)
	if err != nil || len(page) != 2 || page[0].ServerSeq != sent[2].ServerSeq || page[1].ServerSeq != sent[3].ServerSeq {
		t.Errorf("Mailbox page = %v, %v", page, err)
	}
	// Acks are per device, and acking another device's message does nothing.
	if err := s.Ack(ctx, bob2, []uint64{sent[0].ServerSeq}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, bob1, []uint64{sent[0].ServerSeq, sent[1].ServerSeq, 999999}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Mailbox(ctx, bob1, 0, 100)
	if len(got) != 3 || got[0].ServerSeq != sent[2].ServerSeq {
		t.Errorf("after ack: %d messages, first %v", len(got), got)
	}
	got2, _ := s.Mailbox(ctx, bob2, 0, 100)
	if len(got2) != 5 {
		t.Errorf("bob.2 has %d messages, want 5", len(got2))
	}
	if n, err := s.CountMessages(ctx); err != nil || n != 8 {
		t.Errorf("CountMessages = %d, %v; want 8", n, err)
	}
	// Seqs are never reused, even once the newest message is gone.
	last := sent[4].ServerSeq
	s.Ack(ctx, bob1, []uint64{sent[2].ServerSeq, sent[3].ServerSeq, sent[4].ServerSeq})
	all, _ := s.Mailbox(ctx, bob2, 0, 100)
	var seqs []uint64
	for _, e := range all {
		seqs = append(seqs, e.ServerSeq)
	}
	s.Ack(ctx, bob2, seqs)
	envs := envelopes(alice, parley.MessageID{9}, "bob", 1)
	if _, err := s.Enqueue(ctx, envs); err != nil {
		t.Fatal(err)
	}
	if envs[0].ServerSeq <= last+1 {
		t.Errorf("seq %d reused (newest was %d)", envs[0].ServerSeq, last+1)
	}
}

func testReplay(t *testing.T, s server.Store) {
	ctx := context.Background()
	alice := parley.Address{User: "alice", Device: 1}
	id := parley.MessageID{7, 7, 7}
	if dup, err := s.Enqueue(ctx, envelopes(alice, id, "bob", 1)); dup || err != nil {
		t.Fatalf("first Enqueue: dup %v, %v", dup, err)
	}
	if dup, err := s.Enqueue(ctx, envelopes(alice, id, "bob", 1)); !dup || err != nil {
		t.Errorf("replay: dup %v, %v; want dup", dup, err)
	}
	got, _ := s.Mailbox(ctx, parley.Address{User: "bob", Device: 1}, 0, 10)
	if len(got) != 1 {
		t.Fatalf("%d copies stored, want 1", len(got))
	}
	// Still a replay after delivery.
	s.Ack(ctx, got[0].To, []uint64{got[0].ServerSeq})
	if dup, err := s.Enqueue(ctx, envelopes(alice, id, "bob", 1)); !dup || err != nil {
		t.Errorf("replay after ack: dup %v, %v; want dup", dup, err)
	}
	// Another sending device may use the same id.
	if dup, err := s.Enqueue(ctx, envelopes(parley.Address{User: "alice", Device: 2}, id, "bob", 1)); dup || err != nil {
		t.Errorf("other device: dup %v, %v", dup, err)
	}
}

func testExpire(t *testing.T, s server.Store) {
	ctx := context.Background()
	alice := parley.Address{User: "alice", Device: 1}
	old := envelopes(alice, parley.MessageID{1}, "bob", 1, 2)
	for i := range old {
		old[i].ServerAt = t0
	}
	young := envelopes(alice, parley.MessageID{2}, "bob", 1)
	for i := range young {
		young[i].ServerAt = t0.Add(time.Hour)
	}
	s.Enqueue(ctx, old)
	s.Enqueue(ctx, young)
	n, err := s.Expire(ctx, t0.Add(time.Minute))
	if err != nil || n != 2 {
		t.Errorf("Expire = %d, %v; want 2", n, err)
	}
	got, _ := s.Mailbox(ctx, parley.Address{User: "bob", Device: 1}, 0, 10)
	if len(got) != 1 || got[0].ID != young[0].ID {
		t.Errorf("after expiry: %v", got)
	}
	// The replay record expires with the message.
	if dup, err := s.Enqueue(ctx, envelopes(alice, parley.MessageID{1}, "bob", 1)); dup || err != nil {
		t.Errorf("re-send after expiry: dup %v, %v", dup, err)
	}
}

func testConcurrentEnqueue(t *testing.T, s server.Store) {
	ctx := context.Background()
	const senders, each = 8, 25
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := parley.Address{User: "sender", Device: parley.DeviceID(i + 1)}
			for j := 0; j < each; j++ {
				if _, err := s.Enqueue(ctx, envelopes(from, parley.MessageID{byte(j)}, "dave", 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Mailbox(ctx, parley.Address{User: "dave", Device: 1}, 0, 1000)
	if err != nil || len(got) != senders*each {
		t.Fatalf("Mailbox: %d messages, %v; want %d", len(got), err, senders*each)
	}
	// Per sending device, the mailbox keeps send order.
	next := map[parley.DeviceID]byte{}
	for _, e := range got {
		if e.ID[0] != next[e.From.Device] {
			t.Fatalf("from device %d: message %d before %d", e.From.Device, e.ID[0], next[e.From.Device])
		}
		next[e.From.Device]++
	}
}

func testDevices(t *testing.T, s server.Store) {
	ctx := context.Background()
	mustCreate(t, s, "erin", keys(1, 1))
	_, d := account("erin")
	d.RegistrationID = 77
	for want := parley.DeviceID(2); want <= parley.MaxDevicesPerUser; want++ {
		id, err := s.AddDevice(ctx, d, keys(1, 1))
		if err != nil || id != want {
			t.Fatalf("AddDevice = %d, %v; want %d", id, err, want)
		}
	}
	_, err := s.AddDevice(ctx, d, keys(1, 1))
	wantKind(t, "AddDevice beyond the limit", err, parley.KindConflict)
	d.User = "nobody"
	_, err = s.AddDevice(ctx, d, keys(1, 1))
	wantKind(t, "AddDevice(nobody)", err, parley.KindNotFound)

	_, devs, err := s.Account(ctx, "erin")
	if err != nil || len(devs) != parley.MaxDevicesPerUser || devs[1].ID != 2 || devs[1].RegistrationID != 77 {
		t.Fatalf("Account: %d devices, %v", len(devs), err)
	}
	// Bundles of every device at once, each with its own one-time key.
	_, bs, err := s.TakeBundles(ctx, "erin", 0)
	if err != nil || len(bs) != parley.MaxDevicesPerUser {
		t.Fatalf("TakeBundles(all) = %d bundles, %v", len(bs), err)
	}
	for i, b := range bs {
		if b.Device.ID != parley.DeviceID(i+1) || b.OneTime == nil || b.LastResort {
			t.Errorf("bundle %d: device %d, one-time %v, last resort %v", i, b.Device.ID, b.OneTime, b.LastResort)
		}
	}
	_, bs, _ = s.TakeBundles(ctx, "erin", 3)
	if len(bs) != 1 || bs[0].Device.ID != 3 || bs[0].OneTime != nil || !bs[0].LastResort {
		t.Errorf("TakeBundles(erin.3) after draining: %+v", bs)
	}
}

// testConcurrentMixed runs failing and succeeding changes at once: in a
// backend that commits them together, one failure must not undo the others.
func testConcurrentMixed(t *testing.T, s server.Store) {
	ctx := context.Background()
	const n = 16
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		created   int
		conflicts int
	)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			a, d := account("frank")
			err := s.CreateAccount(ctx, a, d, keys(1, 1))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case parley.ErrorKind(err) == parley.KindConflict:
				conflicts++
			default:
				t.Errorf("CreateAccount: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			from := parley.Address{User: "grace", Device: 1}
			if _, err := s.Enqueue(ctx, envelopes(from, parley.MessageID{byte(i), 9}, "heidi", 1)); err != nil {
				t.Errorf("Enqueue: %v", err)
			}
		}()
	}
	wg.Wait()
	if created != 1 || conflicts != n-1 {
		t.Errorf("%d accounts created, %d conflicts; want 1 and %d", created, conflicts, n-1)
	}
	got, err := s.Mailbox(ctx, parley.Address{User: "heidi", Device: 1}, 0, 100)
	if err != nil || len(got) != n {
		t.Errorf("Mailbox: %d messages, %v; want %d", len(got), err, n)
	}
	if c, err := s.KeyCounts(ctx, parley.Address{User: "frank", Device: 1}); err != nil || c != (directory.KeyCounts{PreKeys: 1, KyberPreKeys: 1}) {
		t.Errorf("KeyCounts(frank) = %+v, %v", c, err)
	}
}
