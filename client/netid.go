package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// NetworkID names the network this device is on, as seen on the way to
// server (the server's base URL): the same on every run on one network,
// another on another network or for another server. It hashes the
// server's host with the prefix of the local address that the system
// would send from to reach it (localNetwork), so that what is stored
// holds no address. It sends nothing. In a browser, which cannot know,
// every network is "browser".
//
// Two networks that use the same private prefix (two homes on
// 192.168.1.0/24) look the same: what worked on one is tried first on
// the other, which costs a slower start at worst.
func NetworkID(ctx context.Context, server string) (string, error) {
	base, err := NormalizeServer(server)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	where, err := localNetwork(ctx, u.Hostname(), port)
	if err != nil {
		return "", fmt.Errorf("which network this device is on: %w", err)
	}
	return networkID(u.Hostname(), where), nil
}

// networkID hashes the server's host and where this device is (a
// prefix, or "browser").
func networkID(host, where string) string {
	h := sha256.Sum256([]byte("parley network v1\x00" + strings.ToLower(host) + "\x00" + where))
	return hex.EncodeToString(h[:12])
}

// prefixOf returns the prefix of the interface address in addrs that is
// ip, as "192.168.1.0/24"; if none is, the /24 (IPv4) or /64 (IPv6)
// around ip, which is what most networks hand out.
func prefixOf(ip netip.Addr, addrs []net.Addr) string {
	ip = ip.Unmap()
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == ip {
			ones, _ := n.Mask.Size()
			if p, err := ip.Prefix(ones); err == nil {
				return p.String()
			}
		}
	}
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}
