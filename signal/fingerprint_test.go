package signal_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/signal"
)

func mustKey(t testing.TB, h string) signal.PublicKey {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signal.DecodePublicKey(b)
	if err != nil {
		t.Fatalf("DecodePublicKey(%s): %v", h, err)
	}
	return k
}

// Known answers. The first case is libsignal's own test vector
// (rust/protocol/src/fingerprint.rs, fingerprint_test_v2, also
// testVectorsVersion2 in libsignal's Java tests). The second uses usernames as
// Parley does; its answer was computed by @signalapp/libsignal-client 0.103.0
// (Fingerprint.new(5200, 2, ...)) through the harness in signal/signaltest/node,
// and TestSafetyNumberMatchesLibsignal there checks random inputs live.
var safetyNumberVectors = []struct {
	name                         string
	aliceID, bobID               string
	aliceKey, bobKey             string
	digits                       string
	aliceScannable, bobScannable string
}{
	{
		name:           "libsignal fingerprint_test_v2",
		aliceID:        "+14152222222",
		bobID:          "+14153333333",
		aliceKey:       "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868",
		bobKey:         "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b",
		digits:         "300354477692869396892869876765458257569162576843440918079131",
		aliceScannable: "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
		bobScannable:   "080212220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df",
	},
	{
		name:           "usernames, libsignal 0.103.0",
		aliceID:        "alice",
		bobID:          "bob",
		aliceKey:       "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868",
		bobKey:         "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b",
		digits:         "319736465555016549121206049427741876420329594173494269207377",
		aliceScannable: "080212220a2009813f8f450b51c153cf1e6b6d778827a51b4f20b839ee77fc55bf93b873da671a220a202088c08e4b89c018b4ebaa3d02bb9ac7edf793e590c94e4d84665ca565110b69",
		bobScannable:   "080212220a202088c08e4b89c018b4ebaa3d02bb9ac7edf793e590c94e4d84665ca565110b691a220a2009813f8f450b51c153cf1e6b6d778827a51b4f20b839ee77fc55bf93b873da67",
	},
}

func TestSafetyNumberKnownAnswers(t *testing.T) {
	for _, v := range safetyNumberVectors {
		t.Run(v.name, func(t *testing.T) {
			ak, bk := mustKey(t, v.aliceKey), mustKey(t, v.bobKey)
			ad, as, err := signal.SafetyNumber([]byte(v.aliceID), ak, []byte(v.bobID), bk)
			if err != nil {
				t.Fatal(err)
			}
			bd, bs, err := signal.SafetyNumber([]byte(v.bobID), bk, []byte(v.aliceID), ak)
			if err != nil {
				t.Fatal(err)
			}
			if ad != v.digits {
				t.Errorf("Alice's digits\n got %s\nwant %s", ad, v.digits)
			}
			if bd != ad {
				t.Errorf("not symmetric: Alice sees %s, Bob sees %s", ad, bd)
			}
			if got := hex.EncodeToString(as); got != v.aliceScannable {
				t.Errorf("Alice's scannable\n got %s\nwant %s", got, v.aliceScannable)
			}
			if got := hex.EncodeToString(bs); got != v.bobScannable {
				t.Errorf("Bob's scannable\n got %s\nwant %s", got, v.bobScannable)
			}
			for _, c := range []struct {
				name         string
				ours, theirs []byte
				want         bool
			}{
				{"Alice scans Bob", as, bs, true},
				{"Bob scans Alice", bs, as, true},
				{"Alice scans herself", as, as, false},
			} {
				got, err := signal.CompareScannable(c.ours, c.theirs)
				if err != nil || got != c.want {
					t.Errorf("%s: CompareScannable = %v, %v; want %v", c.name, got, err, c.want)
				}
			}
		})
	}
}

func TestSafetyNumberSymmetricRandom(t *testing.T) {
	for i := 0; i < 5; i++ {
		a, err := signal.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		b, err := signal.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		ad, as, err := signal.SafetyNumber([]byte("alice"), a.Public, []byte("bob"), b.Public)
		if err != nil {
			t.Fatal(err)
		}
		bd, bs, err := signal.SafetyNumber([]byte("bob"), b.Public, []byte("alice"), a.Public)
		if err != nil {
			t.Fatal(err)
		}
		if ad != bd || len(ad) != 60 || strings.Trim(ad, "0123456789") != "" {
			t.Fatalf("Alice %q, Bob %q: want the same 60 digits", ad, bd)
		}
		if ok, err := signal.CompareScannable(as, bs); !ok || err != nil {
			t.Fatalf("CompareScannable(Alice's, Bob's) = %v, %v", ok, err)
		}
		// A different key changes the number.
		cd, _, err := signal.SafetyNumber([]byte("alice"), a.Public, []byte("bob"), a.Public)
		if err != nil {
			t.Fatal(err)
		}
		if cd == ad {
			t.Fatal("safety number did not change with the remote key")
		}
	}
}

func TestCompareScannableErrors(t *testing.T) {
	v := safetyNumberVectors[0]
	as, _ := hex.DecodeString(v.aliceScannable)
	bs, _ := hex.DecodeString(v.bobScannable)
	v1 := bytes.Clone(bs)
	v1[1] = 1 // version 1
	if _, err := signal.CompareScannable(as, v1); !errors.Is(err, signal.ErrFingerprintVersion) {
		t.Errorf("version 1 code: err = %v, want ErrFingerprintVersion", err)
	}
	for _, bad := range [][]byte{nil, {0x08}, {0x08, 0x02}, bs[:len(bs)-1], {0x08, 0x02, 0x12, 0x02, 0x08, 0x01, 0x1a, 0x00}} {
		if _, err := signal.CompareScannable(as, bad); !errors.Is(err, signal.ErrFingerprintFormat) {
			t.Errorf("CompareScannable(%x): err = %v, want ErrFingerprintFormat", bad, err)
		}
	}
}

func FuzzCompareScannable(f *testing.F) {
	for _, v := range safetyNumberVectors {
		b, _ := hex.DecodeString(v.bobScannable)
		f.Add(b)
	}
	f.Add([]byte{0x08, 0x02, 0x12, 0x00, 0x1a, 0x00})
	as, _ := hex.DecodeString(safetyNumberVectors[0].aliceScannable)
	f.Fuzz(func(t *testing.T, theirs []byte) {
		ok, err := signal.CompareScannable(as, theirs)
		if ok && err != nil {
			t.Fatal("match with an error")
		}
		if ok && !bytes.Equal(theirs, mustHex(safetyNumberVectors[0].bobScannable)) {
			// Another encoding of the same fields (order, unknown fields) may
			// match; it must then carry Bob's hashes.
			if !bytes.Contains(theirs, mustHex(safetyNumberVectors[0].bobScannable)[6:38]) {
				t.Fatalf("matched %x without Bob's hash", theirs)
			}
		}
	})
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
