package tunnel

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// notSentLowat bounds the bytes a carrier's TCP connection keeps unsent in
// the kernel (TCP_NOTSENT_LOWAT, Linux since 3.12): past it, writes wait,
// and the media queued behind them is dropped when it grows stale
// (Queued.Stale) rather than sitting behind seconds of kernel buffer on a
// slow link. 2 KiB is half a second at 32 kbit/s; media is far below the
// rates at which it would limit throughput.
const notSentLowat = 2048

// lowLatencyControl sets notSentLowat on a socket as it is dialled
// (net.Dialer.Control).
func lowLatencyControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat)
	})
	if err != nil {
		return err
	}
	return serr
}

// SetLowLatency sets notSentLowat on an accepted TCP connection, or the
// one under c's wrappers (a TLS connection, or any with a NetConn method,
// as tls.Conn has); other connections are left as they are.
func SetLowLatency(c net.Conn) error {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return lowLatencyControl("", "", rc)
}
