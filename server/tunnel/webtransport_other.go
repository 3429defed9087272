//go:build !linux

package tunnel

import "net"

// checkUDPBuffers leaves the socket buffers to quic-go, which says when
// it cannot raise them.
func (h *Hub) checkUDPBuffers(net.PacketConn) {}
