package relay_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/relay/relaytest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// testWriter sends logs to t.Log while the test runs.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startRelay runs a relay on a free loopback port until the test ends.
func startRelay(t *testing.T, cfg relay.Config) *relay.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := relay.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, nil, 0) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r
}

func addrOf(r *relay.Server, network string) string {
	if network == "tcp" {
		return r.TCPAddr().String()
	}
	return r.UDPAddr().String()
}

func allocate(t *testing.T, network, addr, user, pass string) (*relaytest.Allocation, error) {
	t.Helper()
	return relaytest.Allocate(t, relaytest.Dial(t, network, addr, nil), addr, user, pass)
}

func TestRelayUDPAndTCP(t *testing.T) {
	t.Parallel()
	r := startRelay(t, relay.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if r.UDPAddr().Port != r.TCPAddr().Port {
		t.Errorf("UDP port %d, TCP port %d: want one port", r.UDPAddr().Port, r.TCPAddr().Port)
	}
	cr := r.Credentials("alice.1")
	if !strings.HasSuffix(cr.Username, ":alice.1") || cr.Password != relay.Password(secret, cr.Username) {
		t.Fatalf("credentials %+v", cr)
	}
	udp := relaytest.MustAllocate(t, "udp", r.UDPAddr().String(), nil, cr.Username, cr.Password)
	tcp := relaytest.MustAllocate(t, "tcp", r.TCPAddr().String(), nil, cr.Username, cr.Password)
	if ip := udp.Relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("relayed address %v, want 127.0.0.1", udp.Relay.LocalAddr())
	}
	relaytest.CheckRelays(t, udp, tcp)
	if n := r.Allocations(); n != 2 {
		t.Errorf("Allocations() = %d, want 2", n)
	}
}

func TestRelayRefuses(t *testing.T) {
	t.Parallel()
	now := time.Now()
	r := startRelay(t, relay.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	expired := strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + ":alice.1"
	valid := r.Credentials("alice.1")
	tests := []struct {
		name, user, pass string
	}{
		{"unauthenticated", "", ""},
		{"expired", expired, relay.Password(secret, expired)},
		{"wrong password", valid.Username, relay.Password([]byte("another secret, not the relay's"), valid.Username)},
		{"no expiry", "alice.1", relay.Password(secret, "alice.1")},
		{"expiry changed", strconv.FormatInt(now.Add(48*time.Hour).Unix(), 10) + ":alice.1", valid.Password},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				if a, err := allocate(t, network, addrOf(r, network), tt.user, tt.pass); err == nil {
					t.Fatalf("allocation %v granted", a.Relay.LocalAddr())
				} else {
					t.Logf("refused: %v", err)
				}
			})
		}
	}
	if n := r.Allocations(); n != 0 {
		t.Errorf("Allocations() = %d, want 0", n)
	}
}

func TestRelayClockDecidesExpiry(t *testing.T) {
	t.Parallel()
	clock := time.Now()
	r := startRelay(t, relay.Config{CredentialTTL: time.Hour, Now: func() time.Time { return clock }})
	cr := r.Credentials("bob.2")
	if cr.TTL != time.Hour && cr.TTL > time.Hour || cr.TTL < time.Hour-time.Second {
		t.Errorf("TTL = %v, want about an hour", cr.TTL)
	}
	if got := time.Until(cr.Expires); got < 59*time.Minute || got > time.Hour {
		t.Errorf("expires in %v, want an hour", got)
	}
	// A credential made two hours ago with a one-hour life is refused.
	clock = time.Now().Add(-2 * time.Hour)
	old := r.Credentials("bob.2")
	clock = time.Now()
	if _, err := allocate(t, "udp", r.UDPAddr().String(), old.Username, old.Password); err == nil {
		t.Fatal("an expired credential was taken")
	}
}

// TestRelayRefusesSpecialPeers checks that without --relay-allow no
// permission to loopback or private addresses is granted, so nothing is
// relayed there. No packet is ever sent to 10.0.0.1: the permission is
// refused before anything could be.
func TestRelayRefusesSpecialPeers(t *testing.T) {
	t.Parallel()
	r := startRelay(t, relay.Config{})
	cr := r.Credentials("mallory.1")
	for _, network := range []string{"udp", "tcp"} {
		a := relaytest.MustAllocate(t, network, addrOf(r, network), nil, cr.Username, cr.Password)
		// A UDP socket on loopback that must receive nothing.
		victim, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer victim.Close()
		for _, peer := range []net.Addr{
			victim.LocalAddr(),
			&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9},
			&net.UDPAddr{IP: net.ParseIP("::ffff:192.168.1.1"), Port: 9},
			&net.UDPAddr{IP: net.IPv4(169, 254, 169, 254), Port: 80},
		} {
			err := a.Client.CreatePermission(peer)
			if err == nil || !strings.Contains(err.Error(), "403") {
				t.Errorf("%s: permission to %v: %v, want 403 Forbidden", network, peer, err)
			}
		}
		// Sending to loopback asks for a permission first, which fails.
		if _, err := a.Relay.WriteTo([]byte("probe"), victim.LocalAddr()); err == nil {
			t.Logf("%s: WriteTo to loopback reported no error", network)
		}
		victim.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, from, err := victim.ReadFrom(make([]byte, 100)); err == nil {
			t.Errorf("%s: %d bytes from %v were relayed to loopback", network, n, from)
		}
	}
}

func TestPublic(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"0.0.0.0", false},
		{"127.0.0.1", false},
		{"127.255.0.9", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"172.31.255.255", false},
		{"172.32.0.1", true},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"169.254.169.254", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"255.255.255.255", false},
		{"::", false},
		{"::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.1.2.3", false},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
		{"64:ff9b::7f00:1", false},
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
	} {
		if got := relay.Public(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("Public(%s) = %v, want %v", tt.addr, got, tt.public)
		}
	}
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	r, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: secret,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for ip, want := range map[string]bool{"127.0.0.1": true, "::ffff:127.0.0.2": true, "fd00::5": true, "10.0.0.1": false, "::1": false, "8.8.8.8": true} {
		if got := r.Allowed(net.ParseIP(ip)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestListenNeedsRelayIP(t *testing.T) {
	t.Parallel()
	if r, err := relay.Listen(relay.Config{Listen: ":0", Secret: secret}); err == nil {
		r.Close()
		t.Fatal("an unspecified listen address without a relay IP was taken")
	}
	r, err := relay.Listen(relay.Config{Listen: ":0", Secret: secret, RelayIP: net.IPv4(203, 0, 113, 7), Host: "relay.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	urls := r.URLs()
	port := strconv.Itoa(r.UDPAddr().Port)
	want := []string{"turn:relay.example:" + port + "?transport=udp", "turn:relay.example:" + port + "?transport=tcp"}
	if strings.Join(urls, " ") != strings.Join(want, " ") {
		t.Errorf("URLs() = %q, want %q", urls, want)
	}
	if _, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("a relay without a secret was made")
	}
}

func TestLoadSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1, err := relay.LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 64 {
		t.Errorf("secret of %d characters, want 64 hex digits", len(s1))
	}
	fi, err := os.Stat(filepath.Join(dir, relay.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", fi.Mode().Perm())
	}
	s2, err := relay.LoadSecret(dir)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Errorf("second load: %q, %v; want the same secret", s2, err)
	}
	if other, _ := relay.LoadSecret(t.TempDir()); bytes.Equal(other, s1) {
		t.Error("two data folders share a secret")
	}
	os.Chmod(filepath.Join(dir, relay.SecretFile), 0o644)
	if _, err := relay.LoadSecret(dir); err == nil {
		t.Error("a secret readable by others was taken")
	}
}
