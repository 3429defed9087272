//go:build unix

package server

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// TestLazyConn reads a stream through lazyConn and a 16-byte bufio.Reader,
// as a WebSocket does, in reads of every size, small and large.
func TestLazyConn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(rand.N(256))
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
	var got bytes.Buffer
	for {
		p := make([]byte, 1+rand.N(2*readBufSize))
		n, err := r.Read(p)
		got.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, not the %d written", got.Len(), len(want))
	}
	if lc.(*lazyConn).buf != nil {
		t.Error("read buffer held after the last read")
	}
}
