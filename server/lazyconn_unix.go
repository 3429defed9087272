//go:build unix

package server

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// readBufSize is the size of the pooled read buffers: what net/http's
// bufio.Reader would hold for each connection's whole life.
const readBufSize = 4096

var readBufs = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// lazyConn is a TCP connection carrying a WebSocket from its client, whose
// reads go through a buffer taken from a pool only once data has arrived,
// and put back once it has been read: a connection waiting for its
// client's next frame holds no read buffer.
//
// It also lets the session's reader stop between messages instead of
// waiting for the next one (see poller). For that, Read never returns
// bytes past the end of the frame being read (it follows the frames, RFC
// 6455 section 5.2): when the WebSocket has read a whole message, its
// bufio.Reader holds nothing more, and whatever the client sent next
// waits here or in the socket. In non-blocking mode, Read then answers
// errWouldBlock rather than wait for a next message; the WebSocket passes
// the error on, its state unchanged, and can read again later.
type lazyConn struct {
	net.Conn
	raw syscall.RawConn

	// mu serializes reads: the session's reader, and the WebSocket's
	// closing handshake in another goroutine. It guards the fields below.
	mu   sync.Mutex
	buf  *[readBufSize]byte // nil unless buf[r:w] waits to be read
	r, w int
	rest int64 // bytes of the current frame not yet returned; 0 between frames
	// inMessage is set between the frames of a fragmented message.
	inMessage bool

	nonblock atomic.Bool // between messages, answer errWouldBlock rather than wait
}

// lazyReads returns c with lazily buffered reads, or false when c is not a
// plain TCP connection.
func lazyReads(c net.Conn) (*lazyConn, bool) {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rest == 0 {
		// Between frames: buffer the next frame's whole header to learn
		// its length.
		for {
			if c.buf != nil {
				if n, ok := frameLen(c.buf[c.r:c.w]); ok {
					c.rest = n
					if b := c.buf[c.r]; b&0x08 == 0 { // a data frame, not a control one
						c.inMessage = b&0x80 == 0 // FIN not set
					}
					break
				}
			}
			wait := c.buf != nil || c.inMessage || !c.nonblock.Load()
			if _, err := c.fill(nil, wait); err != nil {
				if err == errWouldBlock {
					return 0, err
				}
				if c.buf != nil { // a header cut short: let the WebSocket see it
					c.rest = int64(c.w - c.r)
					break
				}
				return 0, err
			}
		}
	}
	if int64(len(p)) > c.rest {
		p = p[:c.rest]
	}
	if c.buf == nil {
		if len(p) >= readBufSize {
			n, err := c.fill(p, true)
			c.rest -= int64(n)
			return n, err
		}
		if _, err := c.fill(nil, true); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	c.rest -= int64(n)
	if c.r == c.w {
		c.release()
	}
	return n, nil
}

// fill reads once from the socket, waiting until there is something to
// read unless wait is false (then it answers errWouldBlock): into p when it
// is not nil, else into the read buffer after what it holds, taking one
// from the pool only once the socket is readable.
func (c *lazyConn) fill(p []byte, wait bool) (int, error) {
	if p == nil && c.buf != nil && c.r > 0 {
		c.w = copy(c.buf[:], c.buf[c.r:c.w])
		c.r = 0
	}
	var (
		n    int
		rerr error
	)
	err := c.raw.Read(func(fd uintptr) bool {
		dst := p
		if dst == nil {
			if c.buf == nil {
				c.buf = readBufs.Get().(*[readBufSize]byte)
				c.r, c.w = 0, 0
			}
			dst = c.buf[c.w:]
		}
		for {
			n, rerr = syscall.Read(int(fd), dst)
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			if c.r == c.w {
				c.release()
			}
			return !wait // false: wait until readable
		}
		return true
	})
	if err == nil && rerr == syscall.EAGAIN {
		return 0, errWouldBlock
	}
	if err == nil && rerr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	}
	if err == nil && n <= 0 {
		err = io.EOF
	}
	if err != nil {
		if c.buf != nil && c.r == c.w {
			c.release()
		}
		return 0, err
	}
	if p == nil {
		c.w += n
	}
	return n, nil
}

// release puts the read buffer back in the pool.
func (c *lazyConn) release() {
	if c.buf != nil {
		readBufs.Put(c.buf)
		c.buf = nil
		c.r, c.w = 0, 0
	}
}

// wait waits up to d, in blocking mode, for the client to send something,
// and reports whether it did, or the connection failed: then a read finds
// out which, at once.
func (c *lazyConn) wait(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf != nil {
		return true
	}
	c.Conn.SetReadDeadline(time.Now().Add(d))
	_, err := c.fill(nil, true)
	c.Conn.SetReadDeadline(time.Time{})
	return !errors.Is(err, os.ErrDeadlineExceeded)
}
