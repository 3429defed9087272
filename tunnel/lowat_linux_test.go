package tunnel

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func notSent(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// wrapped stands for the server's connection wrappers, which say what
// they wrap as tls.Conn does.
type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

// TestLowLatency: the carriers' TCP connections keep at most notSentLowat
// unsent, dialled (lowLatencyControl) or accepted under wrappers
// (SetLowLatency).
func TestLowLatency(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: lowLatencyControl, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := notSent(t, c); v != notSentLowat {
		t.Errorf("dialled: TCP_NOTSENT_LOWAT %d, want %d", v, notSentLowat)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if v := notSent(t, a); v == notSentLowat {
		t.Fatalf("accepted: TCP_NOTSENT_LOWAT already %d", v)
	}
	if err := SetLowLatency(tls.Server(wrapped{a}, &tls.Config{})); err != nil {
		t.Fatal(err)
	}
	if v := notSent(t, a); v != notSentLowat {
		t.Errorf("accepted: TCP_NOTSENT_LOWAT %d, want %d", v, notSentLowat)
	}
}
