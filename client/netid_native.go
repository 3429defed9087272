//go:build !js

package client

import (
	"context"
	"net"
)

// localNetwork returns the prefix of the local address the system would
// send from to reach host: a UDP "connect" chooses the route and the
// source address without sending a packet.
func localNetwork(ctx context.Context, host, port string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", net.JoinHostPort(host, port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	ip := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		addrs = nil // prefixOf falls back to the usual prefix length
	}
	return prefixOf(ip, addrs), nil
}
