package client

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpBackoff returns how many retransmission timeouts in a row c's TCP
// connection has had (TCP_INFO's backoff), if it can tell.
func tcpBackoff(c net.Conn) (int, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	cerr := rc.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || err != nil {
		return 0, false
	}
	return int(info.Backoff), true
}
