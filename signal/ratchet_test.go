package signal

import (
	"bytes"
	"testing"
)

// Vector from libsignal's rust/protocol/src/ratchet/keys.rs tests.
func TestChainKeyVector(t *testing.T) {
	t.Parallel()
	var ck chainKey
	copy(ck.key[:], mustHex(t, "8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f"))
	seed := ck.messageSeed()
	mk := deriveMessageKeys(seed[:], nil)
	if want := mustHex(t, "bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217"); !bytes.Equal(mk.cipherKey[:], want) {
		t.Fatalf("cipher key %x", mk.cipherKey)
	}
	if want := mustHex(t, "c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b"); !bytes.Equal(mk.macKey[:], want) {
		t.Fatalf("mac key %x", mk.macKey)
	}
	next := ck.next()
	if want := mustHex(t, "28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d"); !bytes.Equal(next.key[:], want) || next.index != 1 {
		t.Fatalf("next chain key %x index %d", next.key, next.index)
	}
}

func TestCBC(t *testing.T) {
	t.Parallel()
	key, iv := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	for n := 0; n < 40; n++ {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		ct := cbcEncrypt(key, iv, pt)
		if len(ct)%16 != 0 || len(ct) <= n {
			t.Fatalf("%d bytes → %d", n, len(ct))
		}
		got, err := cbcDecrypt(key, iv, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip of %d bytes: %v", n, err)
		}
	}
}

// TestRecordRoundTrip: encoding a decoded record gives the same bytes.
func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	for _, b := range [][]byte{fx.record, fx.pending, fx.bob.store.sessions[aliceAddr]} {
		r, err := UnmarshalSessionRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := r.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("record changed in a round trip")
		}
	}
}
