package signal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

var (
	aliceAddr = parley.Address{User: "alice", Device: 1}
	bobAddr   = parley.Address{User: "bob", Device: 1}
)

// peer is one side of a conversation.
type peer struct {
	t     testing.TB
	store *memStore
	addr  parley.Address
}

func newPeers(t testing.TB) (alice, bob *peer) {
	return &peer{t, newMemStore(t, 1111), aliceAddr}, &peer{t, newMemStore(t, 2222), bobAddr}
}

// startSession has from process a bundle of to's.
func startSession(t testing.TB, from, to *peer, preKeyID, signedID, kyberID uint32) {
	t.Helper()
	b := to.store.bundle(t, preKeyID, signedID, kyberID)
	if err := ProcessPreKeyBundle(context.Background(), from.store, to.addr, b, time.Now()); err != nil {
		t.Fatalf("ProcessPreKeyBundle: %v", err)
	}
}

func (p *peer) encrypt(to *peer, msg string) CiphertextMessage {
	p.t.Helper()
	ct, err := Encrypt(context.Background(), p.store, to.addr, []byte(msg), time.Now())
	if err != nil {
		p.t.Fatalf("%s encrypt: %v", p.addr, err)
	}
	return ct
}

func (p *peer) decrypt(from *peer, ct CiphertextMessage) ([]byte, error) {
	if ct.Type == parley.EnvelopePreKey {
		return DecryptPreKey(context.Background(), p.store, from.addr, ct.Serialized)
	}
	return Decrypt(context.Background(), p.store, from.addr, ct.Serialized)
}

func (p *peer) mustDecrypt(from *peer, ct CiphertextMessage, want string) {
	p.t.Helper()
	got, err := p.decrypt(from, ct)
	if err != nil {
		p.t.Fatalf("%s decrypt: %v", p.addr, err)
	}
	if string(got) != want {
		p.t.Fatalf("%s decrypted %q, want %q", p.addr, got, want)
	}
}

func TestSessionBothDirections(t *testing.T) {
	t.Parallel()
	for _, withPreKey := range []bool{true, false} {
		t.Run(fmt.Sprint("onetime=", withPreKey), func(t *testing.T) {
			t.Parallel()
			alice, bob := newPeers(t)
			var pk uint32
			if withPreKey {
				pk = 7
			}
			startSession(t, alice, bob, pk, 8, 9)
			ct := alice.encrypt(bob, "hello bob")
			if ct.Type != parley.EnvelopePreKey || ct.Serialized[0] != 0x44 {
				t.Fatalf("first message: type %d, version byte %#x", ct.Type, ct.Serialized[0])
			}
			ct2 := alice.encrypt(bob, "second, still prekey")
			bob.mustDecrypt(alice, ct, "hello bob")
			if _, ok := bob.store.preKeys[7]; ok {
				t.Fatal("one-time prekey not removed")
			}
			if _, ok := bob.store.kyber[9]; ok {
				t.Fatal("kyber prekey not marked used")
			}
			bob.mustDecrypt(alice, ct2, "second, still prekey")
			// A copy of the PreKeySignalMessage is a duplicate.
			if _, err := bob.decrypt(alice, ct); !errors.Is(err, ErrDuplicateMessage) {
				t.Fatalf("replayed prekey message: %v", err)
			}
			r := bob.encrypt(alice, "hi alice")
			if r.Type != parley.EnvelopeSignal || r.Serialized[0] != 0x44 {
				t.Fatalf("reply: type %d", r.Type)
			}
			alice.mustDecrypt(bob, r, "hi alice")
			// Alice's session is acknowledged now.
			if ct := alice.encrypt(bob, "after reply"); ct.Type != parley.EnvelopeSignal {
				t.Fatal("still sending prekey messages after a reply")
			} else {
				bob.mustDecrypt(alice, ct, "after reply")
			}
			for i := 0; i < 20; i++ {
				from, to := alice, bob
				if i%3 == 0 {
					from, to = bob, alice
				}
				msg := fmt.Sprintf("ping %d", i)
				to.mustDecrypt(from, from.encrypt(to, msg), msg)
			}
		})
	}
}

// TestManyMessages runs 1,200 messages through a session in bursts, each
// burst delivered out of order with some messages dropped, alternating
// direction, so that chains and skipped keys come and go.
func TestManyMessages(t *testing.T) {
	t.Parallel()
	alice, bob := newPeers(t)
	startSession(t, alice, bob, 1, 2, 3)
	bob.mustDecrypt(alice, alice.encrypt(bob, "start"), "start")
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	type held struct {
		ct  CiphertextMessage
		msg string
	}
	var dropped []held
	for burst := 0; total < 1200; burst++ {
		from, to := alice, bob
		if burst%2 == 1 {
			from, to = bob, alice
		}
		n := 1 + rng.IntN(40)
		var batch []held
		for i := 0; i < n; i++ {
			msg := fmt.Sprintf("burst %d message %d", burst, i)
			batch = append(batch, held{from.encrypt(to, msg), msg})
			total++
		}
		rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for i, h := range batch {
			if i%7 == 3 && burst%2 == 0 {
				dropped = append(dropped, h) // late delivery, below
				continue
			}
			to.mustDecrypt(from, h.ct, h.msg)
		}
	}
	// Late messages (all from alice) still decrypt from their skipped keys,
	// once, however many chains ago they were sent.
	late := 0
	for _, h := range dropped {
		got, err := bob.decrypt(alice, h.ct)
		if err != nil {
			// Only chains trimmed beyond MaxReceiverChains may fail.
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("late message: %v", err)
			}
			continue
		}
		if string(got) != h.msg {
			t.Fatalf("late message %q, want %q", got, h.msg)
		}
		late++
		if _, err := bob.decrypt(alice, h.ct); !errors.Is(err, ErrDuplicateMessage) {
			t.Fatalf("late message twice: %v", err)
		}
	}
	if late == 0 {
		t.Fatal("no late message decrypted")
	}
	t.Logf("%d messages, %d late of which %d decrypted", total, len(dropped), late)
}

func TestSkippedKeyLimits(t *testing.T) {
	t.Parallel()
	alice, bob := newPeers(t)
	startSession(t, alice, bob, 0, 2, 3)
	bob.mustDecrypt(alice, alice.encrypt(bob, "start"), "start")
	bob.mustDecrypt(alice, alice.encrypt(bob, "ack"), "ack") // (the first reply from bob below)
	alice.mustDecrypt(bob, bob.encrypt(alice, "ok"), "ok")

	// Skip MaxMessageKeys+10 messages: the oldest 10 skipped keys are gone.
	var cts []CiphertextMessage
	for i := 0; i < MaxMessageKeys+11; i++ {
		cts = append(cts, alice.encrypt(bob, fmt.Sprint(i)))
	}
	last := len(cts) - 1
	bob.mustDecrypt(alice, cts[last], fmt.Sprint(last))
	for i := 0; i < 10; i++ {
		if _, err := bob.decrypt(alice, cts[i]); !errors.Is(err, ErrDuplicateMessage) {
			t.Fatalf("message %d beyond the skipped-key limit: %v", i, err)
		}
	}
	for i := 10; i < last; i += 97 {
		bob.mustDecrypt(alice, cts[i], fmt.Sprint(i))
	}
}

func TestTooFarInFuture(t *testing.T) {
	t.Parallel()
	alice, bob := newPeers(t)
	startSession(t, alice, bob, 0, 2, 3)
	bob.mustDecrypt(alice, alice.encrypt(bob, "start"), "start")
	alice.mustDecrypt(bob, bob.encrypt(alice, "ok"), "ok")
	// Advance alice's sending chain without sending, past the limit.
	ctx := context.Background()
	rec, _ := alice.store.LoadSession(ctx, bobAddr)
	for i := 0; i < MaxForwardJumps; i++ {
		rec.current.sender.chain = rec.current.sender.chain.next()
	}
	ok := rec.Clone()
	rec.current.sender.chain = rec.current.sender.chain.next()
	if err := alice.store.StoreSession(ctx, bobAddr, rec); err != nil {
		t.Fatal(err)
	}
	ct := alice.encrypt(bob, "too far")
	if _, err := bob.decrypt(alice, ct); !errors.Is(err, ErrTooFarInFuture) {
		t.Fatalf("jump of %d: %v", MaxForwardJumps+1, err)
	}
	// Exactly MaxForwardJumps is allowed.
	if err := alice.store.StoreSession(ctx, bobAddr, ok); err != nil {
		t.Fatal(err)
	}
	bob.mustDecrypt(alice, alice.encrypt(bob, "far"), "far")
}

func TestSessionReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, bob := newPeers(t)
	startSession(t, alice, bob, 1, 2, 3)
	bob.mustDecrypt(alice, alice.encrypt(bob, "one"), "one")
	alice.mustDecrypt(bob, bob.encrypt(alice, "two"), "two")
	inflight := bob.encrypt(alice, "in flight from the old session")
	inflight2 := bob.encrypt(alice, "another")

	// Alice resets: archive, then a new bundle.
	rec, _ := alice.store.LoadSession(ctx, bobAddr)
	rec.ArchiveCurrentState()
	if rec.HasCurrentState() || rec.ArchivedStates() != 1 {
		t.Fatal("archive did not archive")
	}
	if err := alice.store.StoreSession(ctx, bobAddr, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := Encrypt(ctx, alice.store, bobAddr, []byte("x"), time.Now()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("encrypt after archive: %v", err)
	}
	startSession(t, alice, bob, 4, 5, 6)
	fresh := alice.encrypt(bob, "new session")
	if fresh.Type != parley.EnvelopePreKey {
		t.Fatal("new session does not start with a prekey message")
	}
	// The old session's messages still decrypt; the archived state that
	// decrypts becomes current.
	alice.mustDecrypt(bob, inflight, "in flight from the old session")
	bob.mustDecrypt(alice, fresh, "new session")
	alice.mustDecrypt(bob, inflight2, "another")
	rec, _ = alice.store.LoadSession(ctx, bobAddr)
	if rec.ArchivedStates() != 1 {
		t.Fatalf("%d archived states", rec.ArchivedStates())
	}
	// Bob's current state is the new one; the conversation carries on.
	r := bob.encrypt(alice, "on the new session")
	alice.mustDecrypt(bob, r, "on the new session")
	bob.mustDecrypt(alice, alice.encrypt(bob, "yes"), "yes")
}

func TestArchiveLimit(t *testing.T) {
	t.Parallel()
	r := &SessionRecord{}
	id, _ := GenerateKeyPair()
	for i := 0; i < ArchivedStatesMaxLen+5; i++ {
		r.promoteState(&sessionState{version: 4, localIdentity: id.Public, remoteIdentity: id.Public, previousCounter: uint32(i)})
	}
	if r.ArchivedStates() != ArchivedStatesMaxLen {
		t.Fatalf("%d archived states", r.ArchivedStates())
	}
	b, _ := r.MarshalBinary()
	r2, err := UnmarshalSessionRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if r2.ArchivedStates() != ArchivedStatesMaxLen || r2.current.previousCounter != ArchivedStatesMaxLen+4 || r2.previous[0].previousCounter != ArchivedStatesMaxLen+3 {
		t.Fatal("record round trip lost order")
	}
}

func flipEveryBit(t *testing.T, b []byte, try func([]byte) error) {
	t.Helper()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(b)
			bad[i] ^= 1 << bit
			if err := try(bad); err == nil {
				t.Fatalf("flipped bit %d of byte %d accepted", bit, i)
			}
		}
	}
}

func TestTamperingRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, bob := newPeers(t)
	startSession(t, alice, bob, 1, 2, 3)
	pre := alice.encrypt(bob, "prekey message")
	bobBefore, _ := bob.store.sessions[aliceAddr]
	// Every bit of the PreKeySignalMessage matters (the Kyber ciphertext
	// included: tampering yields another secret and a bad MAC). Each try
	// uses a copy of bob's store so that nothing is used up.
	flipEveryBit(t, pre.Serialized[:200], func(b []byte) error {
		_, err := DecryptPreKey(ctx, bob.store, aliceAddr, b)
		return err
	})
	for _, i := range []int{300, 900, 1500, len(pre.Serialized) - 1, len(pre.Serialized) - 20} {
		bad := bytes.Clone(pre.Serialized)
		bad[i] ^= 0x10
		if _, err := DecryptPreKey(ctx, bob.store, aliceAddr, bad); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if !bytes.Equal(bob.store.sessions[aliceAddr], bobBefore) {
		t.Fatal("a failed decryption changed the stored session")
	}
	bob.mustDecrypt(alice, pre, "prekey message")
	reply := bob.encrypt(alice, "signal message")
	flipEveryBit(t, reply.Serialized, func(b []byte) error {
		_, err := Decrypt(ctx, alice.store, bobAddr, b)
		return err
	})
	alice.mustDecrypt(bob, reply, "signal message")
	// Truncations.
	m := alice.encrypt(bob, "truncate me")
	for n := 0; n < len(m.Serialized); n++ {
		if _, err := Decrypt(ctx, bob.store, aliceAddr, m.Serialized[:n]); err == nil {
			t.Fatalf("truncation to %d accepted", n)
		}
	}
	bob.mustDecrypt(alice, m, "truncate me")
}

func TestBadPreKeySignature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, bob := newPeers(t)
	b := bob.store.bundle(t, 1, 2, 3)
	for name, mutate := range map[string]func(*PreKeyBundle){
		"signed":   func(b *PreKeyBundle) { b.SignedPreKeySignature[5] ^= 1 },
		"kyber":    func(b *PreKeyBundle) { b.KyberPreKeySignature[40] ^= 1 },
		"swapped":  func(b *PreKeyBundle) { b.SignedPreKeySignature = b.KyberPreKeySignature },
		"identity": func(b *PreKeyBundle) { other, _ := GenerateKeyPair(); b.IdentityKey = other.Public },
	} {
		bad := *b
		bad.SignedPreKeySignature = bytes.Clone(b.SignedPreKeySignature)
		bad.KyberPreKeySignature = bytes.Clone(b.KyberPreKeySignature)
		mutate(&bad)
		if err := ProcessPreKeyBundle(ctx, alice.store, bobAddr, &bad, time.Now()); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	noKyber := *b
	noKyber.KyberPreKey = KyberPublicKey{}
	if err := ProcessPreKeyBundle(ctx, alice.store, bobAddr, &noKyber, time.Now()); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("no kyber prekey: %v", err)
	}
	if rec, _ := alice.store.LoadSession(ctx, bobAddr); rec != nil {
		t.Fatal("a rejected bundle stored a session")
	}
}

func TestUntrustedIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, bob := newPeers(t)
	// Alice knows another key for bob.
	other, _ := GenerateKeyPair()
	alice.store.identities[bobAddr] = other.Public
	b := bob.store.bundle(t, 1, 2, 3)
	if err := ProcessPreKeyBundle(ctx, alice.store, bobAddr, b, time.Now()); !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("bundle with a changed identity: %v", err)
	}
	delete(alice.store.identities, bobAddr)
	startSession(t, alice, bob, 1, 2, 3)
	ct := alice.encrypt(bob, "hi")
	// Bob knows another key for alice: the prekey message is refused.
	bob.store.identities[aliceAddr] = other.Public
	if _, err := bob.decrypt(alice, ct); !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("prekey message from a changed identity: %v", err)
	}
	delete(bob.store.identities, aliceAddr)
	bob.mustDecrypt(alice, ct, "hi")
	// Sending and receiving on an established session check trust too.
	reply := bob.encrypt(alice, "reply")
	alice.store.distrust = true
	if _, err := alice.decrypt(bob, reply); !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("decrypt from an untrusted identity: %v", err)
	}
	if _, err := Encrypt(ctx, alice.store, bobAddr, []byte("x"), time.Now()); !errors.Is(err, ErrUntrustedIdentity) {
		t.Fatalf("encrypt to an untrusted identity: %v", err)
	}
	alice.store.distrust = false
	alice.mustDecrypt(bob, reply, "reply")
}

func TestMissingPreKeysAndNoSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice, bob := newPeers(t)
	if _, err := Encrypt(ctx, alice.store, bobAddr, []byte("x"), time.Now()); !errors.Is(err, ErrNoSession) {
		t.Fatalf("encrypt without session: %v", err)
	}
	startSession(t, alice, bob, 1, 2, 3)
	ct := alice.encrypt(bob, "hi")
	if _, err := Decrypt(ctx, bob.store, aliceAddr, mustInner(t, ct.Serialized)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("signal message without session: %v", err)
	}
	delete(bob.store.preKeys, 1)
	if _, err := bob.decrypt(alice, ct); !errors.Is(err, ErrNoPreKey) {
		t.Fatalf("missing one-time prekey: %v", err)
	}
	// Stale unacknowledged session.
	if _, err := Encrypt(ctx, alice.store, bobAddr, []byte("x"), time.Now().Add(31*24*time.Hour)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("stale session: %v", err)
	}
}

func mustInner(t testing.TB, pre []byte) []byte {
	t.Helper()
	m, err := decodePreKeySignalMessage(pre)
	if err != nil {
		t.Fatal(err)
	}
	return m.message.serialized
}

func TestIsCanonical(t *testing.T) {
	t.Parallel()
	kp, _ := GenerateKeyPair()
	if !kp.Public.isCanonical() {
		t.Fatal("a generated key is not canonical")
	}
	var k PublicKey
	k.k[0] = 0xEC // p - 1 = 2^255 - 20
	for i := 1; i < 31; i++ {
		k.k[i] = 0xFF
	}
	k.k[31] = 0x7F
	if k.isCanonical() {
		t.Fatal("-1 is canonical") // u = -1 maps to no Edwards point
	}
	k.k[0] = 0xEE // p + 1
	if k.isCanonical() {
		t.Fatal("p+1 is canonical")
	}
	// A small-order point (u = 0) has torsion.
	if (PublicKey{}).isCanonical() {
		t.Fatal("u=0 is canonical")
	}
	// A key plus a small-order component: clamped scalars give torsion-free
	// points, so take u of order 8 from the well-known list instead.
	eight := mustHex(t, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	copy(k.k[:], eight)
	if k.isCanonical() {
		t.Fatal("a point of order 8 is canonical")
	}
}
