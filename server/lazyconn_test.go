//go:build unix

package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"
)

// clientFrame returns a masked binary frame of n bytes, as a client sends
// it; its payload (unmasked with the zero key) is filled with b.
func clientFrame(n int, b byte) []byte {
	var h []byte
	switch {
	case n < 126:
		h = []byte{0x82, 0x80 | byte(n)}
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16([]byte{0x82, 0x80 | 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{0x82, 0x80 | 127}, uint64(n))
	}
	h = append(h, 0, 0, 0, 0) // masking key
	return append(h, bytes.Repeat([]byte{b}, n)...)
}

// TestLazyConn reads a stream of frames of every size, small and large,
// written in pieces of every size, through lazyConn and a 16-byte
// bufio.Reader, as a WebSocket does. No read may go past the frame being
// read, and no buffer may be held once all is read.
func TestLazyConn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var frames [][]byte
	var want []byte
	for i := range 400 {
		n := rand.N(200)
		if i%10 == 0 {
			n = rand.N(3 * readBufSize)
		}
		if i%100 == 0 {
			n = 70000 + rand.N(1000) // an 8-byte length
		}
		f := clientFrame(n, byte(i))
		frames = append(frames, f)
		want = append(want, f...)
	}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+rand.N(3*readBufSize))
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			if rand.N(8) == 0 {
				time.Sleep(time.Millisecond) // let the reader wait for data
			}
		}
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	lc, ok := lazyReads(nc)
	if !ok {
		t.Fatal("lazyReads refused a TCP connection")
	}
	r := bufio.NewReaderSize(lc, 16)
	for i, f := range frames {
		lc.nonblock.Store(i%2 == 0)
		got := make([]byte, len(f))
		for n := 0; n < len(f); {
			k, err := r.Read(got[n:min(len(f), n+1+rand.N(2*readBufSize))])
			if err == errWouldBlock && n == 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("frame %d, byte %d: %v", i, n, err)
			}
			n += k
		}
		if !bytes.Equal(got, f) {
			t.Fatalf("frame %d: read other bytes than were written", i)
		}
		if r.Buffered() != 0 {
			t.Fatalf("frame %d: %d bytes of the next frame read ahead", i, r.Buffered())
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after the last frame: %v, not EOF", err)
	}
	if lc.buf != nil {
		t.Error("read buffer held after the last read")
	}
}

// TestLazyConnNonblock: in non-blocking mode, a read between messages
// answers errWouldBlock, and one within a message waits for the rest.
func TestLazyConnNonblock(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	lc, _ := lazyReads(nc)
	lc.nonblock.Store(true)
	p := make([]byte, 100)
	if _, err := lc.Read(p); err != errWouldBlock {
		t.Fatalf("read with nothing sent: %v, want errWouldBlock", err)
	}
	// A message in two fragments, a ping between them, all sent in pieces.
	first := clientFrame(10, 1)
	first[0] &^= 0x80 // not FIN
	ping := clientFrame(3, 2)
	ping[0] = 0x89
	last := clientFrame(20, 3)
	last[0] = 0x80 // FIN, continuation
	stream := slices.Concat(first, ping, last)
	go func() {
		for _, b := range stream {
			c.Write([]byte{b})
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var got []byte
	for len(got) < len(stream) {
		n, err := lc.Read(p)
		if err == errWouldBlock && len(got) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("read other bytes than were written")
	}
	if _, err := lc.Read(p); err != errWouldBlock {
		t.Fatalf("read after the message: %v, want errWouldBlock", err)
	}
}

// TestFrameWriter writes frames of every size through a 16-byte
// bufio.Writer over a frameWriter, as a WebSocket does: every frame must
// reach the socket whole once flushed, with nothing held between frames.
// (That a long frame goes out in one writev holds for a *net.TCPConn; the
// log here sees its two buffers as two writes.)
func TestFrameWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	bw := newFrameWriter(&out)
	var want []byte
	for i := range 200 {
		n := rand.N(300)
		if i%10 == 0 {
			n = rand.N(70000)
		}
		f := clientFrame(n, byte(i))
		f[1] &^= 0x80 // server frames are not masked
		h := len(f) - n - 4
		f = append(f[:h], f[h+4:]...)
		want = append(want, f...)
		// As coder/websocket's writeFrame: the header, the payload, a flush.
		for _, b := range f[:h] {
			bw.WriteByte(b)
		}
		bw.Write(f[h:])
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("frame %d: not written whole once flushed", i)
		}
	}
}
