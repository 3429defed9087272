package tlsmux

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzPeek checks the first-bytes test on any input: it calls STUN only
// a STUN header, and the connection it returns gives back every byte.
func FuzzPeek(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0x01, 0x01, 0x00})
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			b.Write(in)
			b.Close()
		}()
		c, isSTUN, err := peek(a, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		want := len(in) >= 8 && in[0] <= 0x01 && bytes.Equal(in[4:8], stunCookie[:])
		if isSTUN != want {
			t.Errorf("peek(%x) says STUN %v, want %v", in, isSTUN, want)
		}
		got, _ := io.ReadAll(c)
		if !bytes.Equal(got, in) {
			t.Errorf("read back %x, want %x", got, in)
		}
	})
}
