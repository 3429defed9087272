package client

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNetworkID(t *testing.T) {
	t.Parallel()
	home, cafe := "192.168.1.0/24", "10.20.0.0/16"
	if networkID("chat.example", home) != networkID("chat.example", home) {
		t.Error("the same network gave two ids")
	}
	if networkID("chat.example", home) != networkID("Chat.Example", home) {
		t.Error("the host's case changed the id")
	}
	if networkID("chat.example", home) == networkID("chat.example", cafe) {
		t.Error("another prefix gave the same id")
	}
	if networkID("chat.example", home) == networkID("other.example", home) {
		t.Error("another server gave the same id")
	}
	if id := networkID("chat.example", home); strings.Contains(id, "192.168") || len(id) != 24 {
		t.Errorf("id %q", id)
	}
}

func TestPrefixOf(t *testing.T) {
	t.Parallel()
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip // as net.InterfaceAddrs gives them: the address, with its mask
		return n
	}
	addrs := []net.Addr{cidr("127.0.0.1/8"), cidr("192.168.1.23/24"), cidr("2001:db8:1:2:a:b:c:d/64")}
	for _, tc := range []struct{ ip, want string }{
		{"192.168.1.23", "192.168.1.0/24"},
		{"::ffff:192.168.1.23", "192.168.1.0/24"},
		{"127.0.0.1", "127.0.0.0/8"},
		{"2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"},
		{"10.1.2.3", "10.1.2.0/24"},          // not on an interface: the usual length
		{"2001:db8:9::1", "2001:db8:9::/64"}, // likewise
	} {
		if got := prefixOf(netip.MustParseAddr(tc.ip), addrs); got != tc.want {
			t.Errorf("prefixOf(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

// TestNetworkIDHere: on this machine, the id is stable and differs per
// server host.
func TestNetworkIDHere(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := NetworkID(ctx, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	b, err := NetworkID(ctx, "127.0.0.1:9090")
	if err != nil {
		t.Fatal(err)
	}
	if a == "" || a != b {
		t.Errorf("ids %q and %q on one network", a, b)
	}
	if c, err := NetworkID(ctx, "http://127.0.0.2:8080"); err != nil || c == a {
		t.Errorf("another server: %q, %v", c, err)
	}
}
