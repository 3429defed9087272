package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
)

// errWouldBlock is a lazyConn's answer to a read, in non-blocking mode,
// when the client has sent nothing since its last message.
var errWouldBlock = errors.New("no message waits")

// writeBufSize is the size of the bufio.Writer a WebSocket writes through:
// the smallest that holds any frame header (at most 14 bytes).
const writeBufSize = 16

// frameWriter sits under a WebSocket's bufio.Writer of writeBufSize bytes
// and writes each frame with one system call, as a 4 KiB buffer would,
// while holding no buffer between frames: an idle connection then keeps 16
// bytes instead of net/http's 4 KiB.
//
// coder/websocket writes a frame as its header followed by its payload
// into the bufio.Writer and flushes it. With a 16-byte buffer, a frame
// longer than that reaches frameWriter as one full buffer (the header and
// the payload's first bytes) and then the rest of the payload. frameWriter
// keeps that first piece and writes it together with the rest (writev).
// It holds bytes only when they start a frame that they do not complete,
// so the frame's remaining bytes are sure to follow (or the connection to
// fail). To know where frames start it follows the frame lengths of
// everything written (RFC 6455 section 5.2); should a header ever arrive
// split, it stops holding and writes every piece as it comes.
type frameWriter struct {
	w     io.Writer
	held  [writeBufSize]byte
	nheld int   // held[:nheld] waits for the rest of its frame
	rest  int64 // bytes of the current frame not yet written
	lost  bool  // a header arrived split: frame starts are unknown
}

// newFrameWriter returns the bufio.Writer for a WebSocket on w.
func newFrameWriter(w io.Writer) *bufio.Writer {
	return bufio.NewWriterSize(&frameWriter{w: w}, writeBufSize)
}

func (fw *frameWriter) Write(p []byte) (int, error) {
	if fw.nheld > 0 {
		held := fw.held[:fw.nheld]
		fw.nheld = 0
		fw.advance(p)
		bufs := net.Buffers{held, p}
		n, err := bufs.WriteTo(fw.w)
		return max(0, int(n)-len(held)), err
	}
	atStart := fw.rest == 0 && !fw.lost
	fw.advance(p)
	if atStart && fw.rest > 0 && len(p) <= len(fw.held) {
		fw.nheld = copy(fw.held[:], p)
		return len(p), nil
	}
	return fw.w.Write(p)
}

// advance follows p through the frames of the stream.
func (fw *frameWriter) advance(p []byte) {
	for len(p) > 0 && !fw.lost {
		if fw.rest > 0 {
			k := min(fw.rest, int64(len(p)))
			fw.rest -= k
			p = p[k:]
			continue
		}
		n, ok := frameLen(p)
		if !ok {
			fw.lost = true
			return
		}
		fw.rest = n
	}
}

// frameLen returns the length, header included, of the frame that p
// starts, or false when p holds only part of its header.
func frameLen(p []byte) (int64, bool) {
	if len(p) < 2 {
		return 0, false
	}
	h := int64(2)
	if p[1]&0x80 != 0 {
		h += 4 // masking key
	}
	var n int64
	switch l := p[1] & 0x7f; l {
	case 126:
		if len(p) < 4 {
			return 0, false
		}
		n, h = int64(binary.BigEndian.Uint16(p[2:])), h+2
	case 127:
		if len(p) < 10 {
			return 0, false
		}
		n, h = int64(binary.BigEndian.Uint64(p[2:])&(1<<63-1)), h+8
	default:
		n = int64(l)
	}
	if int64(len(p)) < h {
		return 0, false
	}
	return h + n, true
}
