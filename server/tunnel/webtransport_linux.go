package tunnel

import (
	"net"
	"syscall"
)

// wtUDPBuffer is the size of the socket buffers quic-go asks for.
const wtUDPBuffer = 7 << 20

// checkUDPBuffers raises pc's socket buffers to what quic-go wants, and
// logs how to allow it when the system caps them lower. (quic-go then
// also prints a line of its own through the log package, once per
// process, unless the environment has
// QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true.)
func (h *Hub) checkUDPBuffers(pc net.PacketConn) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return
	}
	uc.SetReadBuffer(wtUDPBuffer)
	uc.SetWriteBuffer(wtUDPBuffer)
	raw, err := uc.SyscallConn()
	if err != nil {
		return
	}
	var rcv int
	cerr := raw.Control(func(fd uintptr) {
		rcv, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	if cerr == nil && err == nil && rcv < wtUDPBuffer {
		h.log.Warn("tunnel WebTransport: small UDP receive buffer; raise the cap with sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000",
			"bytes", rcv, "want", wtUDPBuffer)
	}
}
