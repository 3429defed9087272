package server

import (
	"errors"
	"io"
	"sync"
)

// Messages are read into pooled buffers rather than a new, growing one each
// (io.ReadAll starts at 512 bytes and reallocates its way up to a 1 KiB
// message): wire.DecodeFrame copies what it keeps, so a buffer goes back to
// the pool as soon as its frame is decoded, and an idle connection holds
// none.
var readMessageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledReadBuf is the largest buffer put back in the pool: a rare big
// message should not leave every pooled buffer that big.
const maxPooledReadBuf = 64 << 10

func putReadMessageBuf(b *[]byte) {
	if cap(*b) <= maxPooledReadBuf {
		*b = (*b)[:0]
		readMessageBufs.Put(b)
	}
}

// readMessage appends the rest of a message from r to b (whose room it
// uses first), as io.ReadAll does.
func readMessage(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}
