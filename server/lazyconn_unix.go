//go:build unix

package server

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// readBufSize is the size of the pooled read buffers: what net/http's
// bufio.Reader would hold for each connection's whole life.
const readBufSize = 4096

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// lazyConn is a TCP connection whose reads go through a buffer taken from
// a pool only once data has arrived, and put back once it has been read: a
// connection waiting for its client's next frame holds no read buffer.
// Read is not safe for concurrent use (WebSocket reads are serialized);
// everything else is the net.Conn's.
type lazyConn struct {
	net.Conn
	raw  syscall.RawConn
	buf  *[readBufSize]byte // nil unless buf[r:w] waits to be read
	r, w int
}

// lazyReads returns c with lazily buffered reads, or false when c is not a
// plain TCP connection.
func lazyReads(c net.Conn) (net.Conn, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, false
	}
	return &lazyConn{Conn: c, raw: raw}, true
}

func (c *lazyConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.buf == nil {
		var (
			n    int
			rerr error
		)
		// The function runs when the socket may be readable; it takes a
		// buffer only for the read itself, and reads a large p directly.
		err := c.raw.Read(func(fd uintptr) bool {
			dst := p
			if len(p) < readBufSize {
				c.buf = readBufs.Get().(*[readBufSize]byte)
				dst = c.buf[:]
			}
			for {
				n, rerr = syscall.Read(int(fd), dst)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				c.release()
				return false // wait until readable
			}
			return true
		})
		if err == nil && rerr != nil {
			err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
		}
		if err == nil && n <= 0 {
			err = io.EOF
		}
		if err != nil {
			c.release()
			return 0, err
		}
		if c.buf == nil {
			return n, nil
		}
		c.r, c.w = 0, n
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

// release puts the read buffer back in the pool.
func (c *lazyConn) release() {
	if c.buf != nil {
		readBufs.Put(c.buf)
		c.buf = nil
	}
}
