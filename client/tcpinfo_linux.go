package client

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpBackoff returns how many retransmission timeouts in a row c's TCP
// connection has had (TCP_INFO's backoff), if it can tell.
func tcpBackoff(c net.Conn) (int, bool) {
	info, ok := tcpInfo(c)
	if !ok {
		return 0, false
	}
	return int(info.Backoff), true
}

// tcpAllAcked says whether the peer has acknowledged all that was written
// to c, with nothing left unsent, if it can tell.
func tcpAllAcked(c net.Conn) (bool, bool) {
	info, ok := tcpInfo(c)
	if !ok {
		return false, false
	}
	return info.Unacked == 0 && info.Notsent_bytes == 0, true
}

func tcpInfo(c net.Conn) (*unix.TCPInfo, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	var info *unix.TCPInfo
	cerr := rc.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	return info, cerr == nil && err == nil
}
