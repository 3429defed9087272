package tunnel_test

import (
	"bytes"
	"testing"

	"github.com/parleychat/parley/tunnel"
)

func TestDeriveKeys(t *testing.T) {
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	k1, err := tunnel.DeriveKeys(a, b, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := tunnel.DeriveKeys(a, b, "0123456789abcdef0123456789abcdef")
	if k1.Room != k2.Room || !bytes.Equal(k1.Caller, k2.Caller) || !bytes.Equal(k1.Callee, k2.Callee) {
		t.Error("the two sides derive different keys")
	}
	if len(k1.Caller) != 16 || len(k1.Callee) != 16 || bytes.Equal(k1.Caller, k1.Callee) || bytes.Equal(k1.Room[:16], k1.Caller) {
		t.Errorf("keys %x / %x, room %x: want distinct 16-byte keys", k1.Caller, k1.Callee, k1.Room)
	}
	for name, k := range map[string]func() (tunnel.Keys, error){
		"another call":   func() (tunnel.Keys, error) { return tunnel.DeriveKeys(a, b, "ffffffffffffffffffffffffffffffff") },
		"shares swapped": func() (tunnel.Keys, error) { return tunnel.DeriveKeys(b, a, "0123456789abcdef0123456789abcdef") },
	} {
		if other, _ := k(); other.Room == k1.Room || bytes.Equal(other.Caller, k1.Caller) {
			t.Errorf("%s: same keys", name)
		}
	}
	if _, err := tunnel.DeriveKeys(a[:31], b, "x"); err == nil {
		t.Error("a 31-byte share was taken")
	}
}
