//go:build !linux

package tunnel

import (
	"net"
	"syscall"
)

// lowLatencyControl: TCP_NOTSENT_LOWAT is Linux's; elsewhere the kernel's
// buffers stay as they are.
func lowLatencyControl(_, _ string, _ syscall.RawConn) error { return nil }

// SetLowLatency: see lowat_linux.go.
func SetLowLatency(net.Conn) error { return nil }
