//go:build !linux && !js

package client

import "net"

// tcpBackoff cannot tell on this system.
func tcpBackoff(net.Conn) (int, bool) { return 0, false }

// tcpAllAcked cannot tell on this system.
func tcpAllAcked(net.Conn) (bool, bool) { return false, false }
