//go:build !unix

package server

import (
	"net"
	"sync/atomic"
	"time"
)

// lazyConn is not available on this system: reads stay buffered by
// net/http's bufio.Reader, and an idle reader waits in its goroutine.
type lazyConn struct {
	net.Conn
	nonblock atomic.Bool // unused
}

func lazyReads(c net.Conn) (*lazyConn, bool) { return nil, false }

func (c *lazyConn) wait(d time.Duration) bool { return true }
