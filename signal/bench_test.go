package signal

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

// BenchmarkPQXDHSetup measures a whole session set-up, Go to Go: processing
// the bundle, encrypting the first message and DecryptPreKey. Bundle
// generation (key generation on the recipient's side) is not timed.
func BenchmarkPQXDHSetup(b *testing.B) {
	ctx := context.Background()
	alice, bob := newPeers(b)
	msg := []byte("hello, this is the first message of a new session")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := uint32(i + 1)
		bundle := bob.store.bundle(b, id, id, id)
		b.StartTimer()
		if err := ProcessPreKeyBundle(ctx, alice.store, bobAddr, bundle, time.Now()); err != nil {
			b.Fatal(err)
		}
		ct, err := Encrypt(ctx, alice.store, bobAddr, msg, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecryptPreKey(ctx, bob.store, aliceAddr, ct.Serialized); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatchetEncryptDecrypt measures one message encrypted and
// decrypted in an established session; every eighth message goes the other
// way, so DH ratchet steps are included. The in-memory store re-encodes the
// session record on every call, as a real store would.
func BenchmarkRatchetEncryptDecrypt(b *testing.B) {
	ctx := context.Background()
	alice, bob := newPeers(b)
	startSession(b, alice, bob, 1, 2, 3)
	bob.mustDecrypt(alice, alice.encrypt(bob, "start"), "start")
	alice.mustDecrypt(bob, bob.encrypt(alice, "ok"), "ok")
	msg := make([]byte, 160)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for i := 0; b.Loop(); i++ {
		from, to := alice, bob
		if i%8 == 7 {
			from, to = bob, alice
		}
		ct, err := Encrypt(ctx, from.store, to.addr, msg, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if ct.Type != parley.EnvelopeSignal {
			b.Fatal("prekey message in an established session")
		}
		if _, err := Decrypt(ctx, to.store, from.addr, ct.Serialized); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	kp, _ := GenerateKeyPair()
	msg := kp.Public.Bytes()
	for b.Loop() {
		kp.Private.Sign(msg)
	}
}

func BenchmarkVerify(b *testing.B) {
	kp, _ := GenerateKeyPair()
	msg := kp.Public.Bytes()
	sig, _ := kp.Private.Sign(msg)
	for b.Loop() {
		if !kp.Public.VerifySignature(msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
