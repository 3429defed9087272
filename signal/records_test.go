package signal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRecordEncodings(t *testing.T) {
	t.Parallel()
	id, _ := GenerateKeyPair()
	now := time.UnixMilli(1764300000123)

	pk, _ := GeneratePreKey(42)
	b, _ := pk.MarshalBinary()
	pk2, err := UnmarshalPreKeyRecord(b)
	if err != nil || pk2.ID != 42 || !pk2.Key.Public.Equal(pk.Key.Public) || !bytes.Equal(pk2.Key.Private.Bytes(), pk.Key.Private.Bytes()) {
		t.Fatalf("prekey round trip: %v", err)
	}

	spk, _ := GenerateSignedPreKey(id, 43, now)
	b, _ = spk.MarshalBinary()
	spk2, err := UnmarshalSignedPreKeyRecord(b)
	if err != nil || spk2.ID != 43 || !spk2.Timestamp.Equal(now) || !bytes.Equal(spk2.Signature, spk.Signature) ||
		!spk2.Key.Public.Equal(spk.Key.Public) || !bytes.Equal(spk2.Key.Private.Bytes(), spk.Key.Private.Bytes()) {
		t.Fatalf("signed prekey round trip: %v %+v", err, spk2.Timestamp)
	}

	kpk, _ := GenerateKyberPreKey(id, 44, now, true)
	b, _ = kpk.MarshalBinary()
	kpk2, err := UnmarshalKyberPreKeyRecord(b)
	if err != nil || kpk2.ID != 44 || !kpk2.LastResort || !kpk2.Timestamp.Equal(now) || !kpk2.Key.Public.Equal(kpk.Key.Public) ||
		!bytes.Equal(kpk2.Key.Private.Bytes(), kpk.Key.Private.Bytes()) || !bytes.Equal(kpk2.Signature, kpk.Signature) {
		t.Fatalf("kyber prekey round trip: %v", err)
	}
	ss, ct, _ := kpk2.Key.Public.Encapsulate()
	if ss2, err := kpk2.Key.Private.Decapsulate(ct); err != nil || !bytes.Equal(ss, ss2) {
		t.Fatal("decoded kyber key pair does not work")
	}

	for _, bad := range [][]byte{{0xFF}, {0x12, 0x05, 0x05}, b[:len(b)/2]} {
		if _, err := UnmarshalKyberPreKeyRecord(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("UnmarshalKyberPreKeyRecord(%x): %v", bad, err)
		}
		if _, err := UnmarshalPreKeyRecord(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("UnmarshalPreKeyRecord(%x): %v", bad, err)
		}
	}
}
