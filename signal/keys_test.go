package signal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from libsignal's rust/core/src/curve/curve25519.rs tests.
func TestAgreementVector(t *testing.T) {
	t.Parallel()
	alicePriv, _ := DecodePrivateKey(mustHex(t, "c806439dc9d2c476ffed8f2580c0888d58ab406bf7ae3698879021b96bb4bf59"))
	bobPriv, _ := DecodePrivateKey(mustHex(t, "b03b34c33a1c44f225b662d2bf4859b8135411fa7b0386d45fb75dc5b91b4466"))
	alicePub := mustHex(t, "1bb75966f2e93a3691dfff942bb2a466a1c08b8d78ca3f4d6df8b8bfa2e4ee28")
	bobPub := mustHex(t, "653614993d2b15ee9e5fd3d86ce719ef4ec1daae1886a87b3f5fa9565a27a22f")
	shared := mustHex(t, "325f239328941ced6e673b86ba41017448e99b649a9c3806c1dd7ca4c477e629")
	if got := alicePriv.Public().Bytes()[1:]; !bytes.Equal(got, alicePub) {
		t.Fatalf("alice public = %x", got)
	}
	if got := bobPriv.Public().Bytes()[1:]; !bytes.Equal(got, bobPub) {
		t.Fatalf("bob public = %x", got)
	}
	s1, err := alicePriv.Agree(bobPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s2, err := bobPriv.Agree(alicePriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1, shared) || !bytes.Equal(s2, shared) {
		t.Fatalf("agreement %x %x", s1, s2)
	}
}

func TestAgreementRejectsSmallOrder(t *testing.T) {
	t.Parallel()
	kp, _ := GenerateKeyPair()
	var zero PublicKey
	if _, err := kp.Private.Agree(zero); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("agree with zero key: %v", err)
	}
}

func TestXEdDSAVector(t *testing.T) {
	t.Parallel()
	priv, _ := DecodePrivateKey(mustHex(t, "c097248412e58bf05df487968205132794178e367637f5818f81e0e6ce73e865"))
	pubBytes := mustHex(t, "ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64")
	msg := mustHex(t, "05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a")
	sig := mustHex(t, "5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfbede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88")
	pub := priv.Public()
	if !bytes.Equal(pub.Bytes()[1:], pubBytes) {
		t.Fatalf("public = %x", pub.Bytes())
	}
	if !pub.VerifySignature(msg, sig) {
		t.Fatal("libsignal's signature does not verify")
	}
	for i := range sig {
		bad := bytes.Clone(sig)
		bad[i] ^= 1
		if pub.VerifySignature(msg, bad) {
			t.Fatalf("flipped bit in byte %d verifies", i)
		}
	}
	// Deterministic given the random bytes; round trip with our signer.
	var z [64]byte
	own := priv.signWithRandom(msg, &z)
	if !pub.VerifySignature(msg, own) {
		t.Fatal("own signature does not verify")
	}
}

func TestSignVerifyRandom(t *testing.T) {
	t.Parallel()
	for i := 0; i < 50; i++ {
		kp, err := GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte(i), 1, 2, 3}
		sig, err := kp.Private.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !kp.Public.VerifySignature(msg, sig) {
			t.Fatalf("signature %d does not verify", i)
		}
		if kp.Public.VerifySignature(append(msg, 0), sig) {
			t.Fatal("signature verifies another message")
		}
		if kp.Public.VerifySignature(msg, sig[:63]) {
			t.Fatal("short signature verifies")
		}
	}
}

func TestKeyEncodings(t *testing.T) {
	t.Parallel()
	kp, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	b := kp.Public.Bytes()
	if len(b) != PublicKeySize || b[0] != DjbType {
		t.Fatalf("public key encoding %x", b)
	}
	pub, err := DecodePublicKey(b)
	if err != nil || !pub.Equal(kp.Public) {
		t.Fatalf("decode public key: %v", err)
	}
	for _, bad := range [][]byte{nil, {}, b[:32], append(bytes.Clone(b), 0), append([]byte{0x06}, b[1:]...)} {
		if _, err := DecodePublicKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("DecodePublicKey(%x) = %v", bad, err)
		}
	}
	priv, err := DecodePrivateKey(kp.Private.Bytes())
	if err != nil || !priv.Public().Equal(kp.Public) {
		t.Fatalf("decode private key: %v", err)
	}
	enc, _ := kp.MarshalBinary()
	kp2, err := UnmarshalKeyPair(enc)
	if err != nil || !kp2.Public.Equal(kp.Public) || !bytes.Equal(kp2.Private.Bytes(), kp.Private.Bytes()) {
		t.Fatalf("key pair round trip: %v", err)
	}
	other, _ := GenerateKeyPair()
	copy(enc[PublicKeySize:], other.Private.Bytes())
	if _, err := UnmarshalKeyPair(enc); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("mismatched key pair: %v", err)
	}
}

func TestKyber(t *testing.T) {
	t.Parallel()
	kp, err := GenerateKyberKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	b := kp.Public.Bytes()
	if len(b) != KyberPubKeySize || b[0] != KyberType {
		t.Fatalf("kyber public key: %d bytes, type %#x", len(b), b[0])
	}
	pub, err := DecodeKyberPublicKey(b)
	if err != nil || !pub.Equal(kp.Public) {
		t.Fatalf("decode: %v", err)
	}
	for _, bad := range [][]byte{nil, b[:100], append(bytes.Clone(b), 0), append([]byte{0x0A}, b[1:]...)} {
		if _, err := DecodeKyberPublicKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("DecodeKyberPublicKey(%d bytes) = %v", len(bad), err)
		}
	}
	ss, ct, err := pub.Encapsulate()
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != KyberCiphertextSize || ct[0] != KyberType {
		t.Fatalf("ciphertext %d bytes", len(ct))
	}
	priv, err := DecodeKyberPrivateKey(kp.Private.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ss2, err := priv.Decapsulate(ct)
	if err != nil || !bytes.Equal(ss, ss2) {
		t.Fatalf("decapsulate: %v", err)
	}
	if _, err := priv.Decapsulate(ct[1:]); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("short ciphertext: %v", err)
	}
}

func TestGeneratePreKeys(t *testing.T) {
	t.Parallel()
	id, _ := GenerateKeyPair()
	now := time.Unix(1700000000, 0)
	spk, err := GenerateSignedPreKey(id, 7, now)
	if err != nil {
		t.Fatal(err)
	}
	if spk.ID != 7 || !id.Public.VerifySignature(spk.Key.Public.Bytes(), spk.Signature) {
		t.Fatal("signed prekey signature does not verify")
	}
	kpk, err := GenerateKyberPreKey(id, 9, now, true)
	if err != nil {
		t.Fatal(err)
	}
	if kpk.ID != 9 || !kpk.LastResort || !id.Public.VerifySignature(kpk.Key.Public.Bytes(), kpk.Signature) {
		t.Fatal("kyber prekey signature does not verify")
	}
}
