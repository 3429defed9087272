package relay

import "net/netip"

// special lists the ranges the relay refuses as peers unless allowed: they
// reach the relay's own machine or network, or no single host.
// https://www.iana.org/assignments/iana-ipv4-special-registry and
// https://www.iana.org/assignments/iana-ipv6-special-registry
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network" (RFC 791)
	netip.MustParsePrefix("10.0.0.0/8"),         // private (RFC 1918)
	netip.MustParsePrefix("100.64.0.0/10"),      // shared address space, carrier-grade NAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local (RFC 3927), cloud metadata services
	netip.MustParsePrefix("172.16.0.0/12"),      // private (RFC 1918)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.168.0.0/16"),     // private (RFC 1918)
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking (RFC 2544)
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, and the broadcast address
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("::1/128"),            // loopback
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64 (RFC 8215)
	netip.MustParsePrefix("100::/64"),           // discard-only (RFC 6666)
	netip.MustParsePrefix("fc00::/7"),           // unique local (RFC 4193)
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("ff00::/8"),           // multicast
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("2002::/16"),          // 6to4: may embed any IPv4 address
	netip.MustParsePrefix("2001::/32"),          // Teredo: may embed any IPv4 address
	netip.MustParsePrefix("::ffff:0:0:0/96"),    // IPv4-translated (RFC 2765)
	netip.MustParsePrefix("::/96"),              // IPv4-compatible (deprecated)
	netip.MustParsePrefix("5f00::/16"),          // SRv6 SIDs (RFC 9602)
	netip.MustParsePrefix("3fff::/20"),          // documentation (RFC 9637)
	netip.MustParsePrefix("2001:2::/48"),        // benchmarking (RFC 5180)
	netip.MustParsePrefix("2620:4f:8000::/48"),  // AS112 (RFC 7534)
	netip.MustParsePrefix("2001:10::/28"),       // ORCHID (RFC 4843)
	netip.MustParsePrefix("2001:20::/28"),       // ORCHIDv2 (RFC 7343)
	netip.MustParsePrefix("192.88.99.0/24"),     // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast (inside 240/4; listed for the reader)
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses stand for
// the IPv4 address in their last 32 bits, which is judged instead.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Public reports whether a is a unicast address that the relay may reach
// by default: not in any special range. IPv4-mapped addresses are judged
// as IPv4.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() {
		return false
	}
	if nat64.Contains(a) {
		b := a.As16()
		return Public(netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, p := range special {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
