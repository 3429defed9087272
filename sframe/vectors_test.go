package sframe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The shared vectors live beside the repository, at
// <repo root>/../shared/vectors/sframe/test-vectors.json.
const vectorPath = "../shared/vectors/sframe/test-vectors.json"

// hexBytes is a hex string in the vector file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type ctrHMACVector struct {
	CipherSuite Suite    `json:"cipher_suite"`
	Key         hexBytes `json:"key"`
	EncKey      hexBytes `json:"enc_key"`
	AuthKey     hexBytes `json:"auth_key"`
	Nonce       hexBytes `json:"nonce"`
	AAD         hexBytes `json:"aad"`
	PT          hexBytes `json:"pt"`
	CT          hexBytes `json:"ct"`
}

type vectors struct {
	Header []struct {
		KID     uint64   `json:"kid"`
		CTR     uint64   `json:"ctr"`
		Encoded hexBytes `json:"encoded"`
	} `json:"header"`
	AESCTRHMAC    []ctrHMACVector `json:"aes_ctr_hmac"`
	AES256CTRHMAC []ctrHMACVector `json:"aes_256_ctr_hmac"`
	SFrame        []struct {
		CipherSuite  Suite    `json:"cipher_suite"`
		KID          uint64   `json:"kid"`
		CTR          uint64   `json:"ctr"`
		BaseKey      hexBytes `json:"base_key"`
		KeyLabel     hexBytes `json:"sframe_key_label"`
		SaltLabel    hexBytes `json:"sframe_salt_label"`
		SFrameSecret hexBytes `json:"sframe_secret"`
		SFrameKey    hexBytes `json:"sframe_key"`
		SFrameSalt   hexBytes `json:"sframe_salt"`
		Metadata     hexBytes `json:"metadata"`
		Nonce        hexBytes `json:"nonce"`
		AAD          hexBytes `json:"aad"`
		PT           hexBytes `json:"pt"`
		CT           hexBytes `json:"ct"`
	} `json:"sframe"`
}

// loadVectors reads the shared vector file, found from the repository root
// (the nearest directory above this one holding go.mod). Without it the
// test skips, unless CI is set.
func loadVectors(tb testing.TB) *vectors {
	tb.Helper()
	path, err := findVectors()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("sframe test vectors: %v", err)
		}
		tb.Skipf("sframe test vectors not available (set CI to make this fatal): %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return &v
}

func findVectors() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, filepath.FromSlash(vectorPath))
			_, err := os.Stat(p)
			return p, err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

func TestVectorsHeader(t *testing.T) {
	v := loadVectors(t)
	if len(v.Header) == 0 {
		t.Fatal("no header vectors")
	}
	for _, tc := range v.Header {
		h := Header{KID: tc.KID, CTR: tc.CTR}
		if got := h.Append(nil); !bytes.Equal(got, tc.Encoded) {
			t.Errorf("Append(%+v) = %x, want %x", h, got, []byte(tc.Encoded))
		}
		if got := h.Len(); got != len(tc.Encoded) {
			t.Errorf("%+v.Len() = %d, want %d", h, got, len(tc.Encoded))
		}
		// Trailing bytes are the ciphertext: the parser must stop at the header.
		got, n, err := ParseHeader(append(bytes.Clone(tc.Encoded), 0xAA, 0xBB))
		if err != nil || got != h || n != len(tc.Encoded) {
			t.Errorf("ParseHeader(%x) = %+v, %d, %v; want %+v, %d, nil", []byte(tc.Encoded), got, n, err, h, len(tc.Encoded))
		}
	}
	t.Logf("%d header vectors", len(v.Header))
}

func TestVectorsCTRHMAC(t *testing.T) {
	v := loadVectors(t)
	all := append(append([]ctrHMACVector(nil), v.AESCTRHMAC...), v.AES256CTRHMAC...)
	if len(all) == 0 {
		t.Fatal("no AES-CTR+HMAC vectors")
	}
	for _, tc := range all {
		t.Run(tc.CipherSuite.String(), func(t *testing.T) {
			p, err := tc.CipherSuite.params()
			if err != nil {
				t.Fatal(err)
			}
			if !p.ctrHMAC || len(tc.Key) != p.nk {
				t.Fatalf("suite params: ctrHMAC=%v Nk=%d, vector key is %d bytes", p.ctrHMAC, p.nk, len(tc.Key))
			}
			if !bytes.Equal(tc.Key[:p.nka], tc.EncKey) || !bytes.Equal(tc.Key[p.nka:], tc.AuthKey) {
				t.Errorf("enc_key/auth_key split at Nka=%d does not match the vector", p.nka)
			}
			k, err := newKeyState(p, tc.Key, nil)
			if err != nil {
				t.Fatal(err)
			}
			ct := k.sealCTR(&k.seal, nil, tc.Nonce, tc.PT, tc.AAD)
			if !bytes.Equal(ct, tc.CT) {
				t.Errorf("seal = %x, want %x", ct, []byte(tc.CT))
			}
			pt, err := k.openCTR(&k.open, nil, tc.Nonce, tc.CT, tc.AAD)
			if err != nil || !bytes.Equal(pt, tc.PT) {
				t.Errorf("open = %x, %v; want %x", pt, err, []byte(tc.PT))
			}
		})
	}
}

func TestVectorsSFrame(t *testing.T) {
	v := loadVectors(t)
	if len(v.SFrame) == 0 {
		t.Fatal("no sframe vectors")
	}
	for _, tc := range v.SFrame {
		t.Run(tc.CipherSuite.String(), func(t *testing.T) {
			p, err := tc.CipherSuite.params()
			if err != nil {
				t.Fatal(err)
			}
			if got := keyLabel(tc.CipherSuite, tc.KID); got != string(tc.KeyLabel) {
				t.Errorf("key label = %x, want %x", got, []byte(tc.KeyLabel))
			}
			if got := saltLabel(tc.CipherSuite, tc.KID); got != string(tc.SaltLabel) {
				t.Errorf("salt label = %x, want %x", got, []byte(tc.SaltLabel))
			}
			secret, key, salt, err := deriveKeySalt(tc.CipherSuite, p, tc.KID, tc.BaseKey)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name      string
				got, want []byte
			}{
				{"sframe_secret", secret, tc.SFrameSecret},
				{"sframe_key", key, tc.SFrameKey},
				{"sframe_salt", salt, tc.SFrameSalt},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s = %x, want %x", c.name, c.got, c.want)
				}
			}
			k, err := newKeyState(p, key, salt)
			if err != nil {
				t.Fatal(err)
			}
			if n := k.nonce(tc.CTR); !bytes.Equal(n[:], tc.Nonce) {
				t.Errorf("nonce = %x, want %x", n, []byte(tc.Nonce))
			}
			hdr := Header{KID: tc.KID, CTR: tc.CTR}.Append(nil)
			if aad := append(hdr, tc.Metadata...); !bytes.Equal(aad, tc.AAD) {
				t.Errorf("aad = %x, want %x", aad, []byte(tc.AAD))
			}

			c, err := NewContext(tc.CipherSuite)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AddKey(tc.KID, tc.BaseKey); err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix")
			ct, err := c.Encrypt(bytes.Clone(prefix), tc.KID, tc.CTR, tc.Metadata, tc.PT)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(ct, prefix) || !bytes.Equal(ct[len(prefix):], tc.CT) {
				t.Errorf("Encrypt = %x, want %x after the prefix", ct, []byte(tc.CT))
			}
			pt, kid, ctr, err := c.Decrypt(bytes.Clone(prefix), tc.Metadata, tc.CT)
			if err != nil || kid != tc.KID || ctr != tc.CTR || !bytes.Equal(pt, append(prefix, tc.PT...)) {
				t.Errorf("Decrypt = %x, kid %d, ctr %d, %v; want prefix+%x, %d, %d", pt, kid, ctr, err, []byte(tc.PT), tc.KID, tc.CTR)
			}
		})
	}
}
