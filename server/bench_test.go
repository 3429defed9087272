package server_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/wire"
)

// BenchmarkSendDeliver measures durable messages per second through the
// server: 64 sender connections, each sending one 1 KiB message at a time
// (each answered only once it is on disk) to one online recipient that
// acknowledges every delivery. It reports send-to-deliver latency.
func BenchmarkSendDeliver(b *testing.B) {
	ts := startServer(b, server.Config{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		RegisterRate: server.Rate{Every: time.Millisecond, Burst: 1000},
	})
	const senders = 64
	_, bob := registered(b, ts, "bob", 0)
	rc, _ := online(b, ts, bob)
	var conns []*client
	for i := 0; i < senders; i++ {
		c, _ := registered(b, ts, fmt.Sprintf("sender%d", i), 0)
		conns = append(conns, c)
	}
	latencies := make([]time.Duration, 0, b.N)
	received := make(chan struct{})
	go func() {
		defer close(received)
		for n := 0; n < b.N; {
			f, err := rc.tryRead(30 * time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if f.Op != wire.OpDeliver || f.Type != wire.TypeRequest {
				continue
			}
			sent := int64(binary.BigEndian.Uint64(f.Body.(*wire.Deliver).Envelope.Content))
			latencies = append(latencies, time.Duration(time.Now().UnixNano()-sent))
			ack, _ := (&wire.Frame{Type: wire.TypeResponse, ID: f.ID, Op: wire.OpDeliver}).MarshalBinary()
			if err := rc.writeRaw(ack); err != nil {
				b.Error(err)
				return
			}
			n++
		}
	}()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		count := b.N / senders
		if i < b.N%senders {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := make([]byte, 1024)
			for j := 0; j < count; j++ {
				binary.BigEndian.PutUint64(content, uint64(time.Now().UnixNano()))
				b, err := (&wire.Frame{Type: wire.TypeRequest, ID: uint64(j + 1), Op: wire.OpSend, Body: &wire.Send{
					To: "bob", ID: parley.NewMessageID(), Messages: []wire.OutgoingMessage{
						{Device: 1, RegistrationID: bob.regID, Type: parley.EnvelopeSignal, Content: content},
					}}}).MarshalBinary()
				if err != nil {
					panic(err)
				}
				if err := c.writeRaw(b); err != nil {
					return
				}
				for {
					f, err := c.tryRead(30 * time.Second)
					if err != nil {
						return
					}
					if f.Type == wire.TypeResponse && f.ID == uint64(j+1) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	<-received
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkIdleConns measures what an idle connected device costs the
// server: idleConns devices log in and stay idle, and it reports the live
// heap, goroutine stacks and goroutines they add, per connection, after a
// garbage collection. The clients are raw sockets with no goroutine and no
// buffer (see rawLogin), so nearly all of the figure is the server's; it
// includes the clients' own net.TCPConns. A rise in heap-B/conn or
// stack-B/conn is a regression of the idle-memory target (docs/benchmarks.md).
func BenchmarkIdleConns(b *testing.B) {
	const idleConns = 300
	ts := startServer(b, server.Config{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		RegisterRate: server.Rate{Every: time.Millisecond, Burst: 1000},
	})
	ids := make([]*identity, idleConns)
	for i := range ids {
		c, id := registered(b, ts, fmt.Sprintf("idle%d", i), 0)
		c.ws.Close(websocket.StatusNormalClosure, "")
		ids[i] = id
	}
	var heap, stack, goroutines float64
	for range b.N {
		before := settledMem(runtime.NumGoroutine())
		conns := make([]net.Conn, len(ids))
		for i, id := range ids {
			conns[i] = rawLogin(b, ts, id)
		}
		after := settledMem(before.goroutines)
		heap += (float64(after.heap) - float64(before.heap)) / idleConns
		stack += (float64(after.stack) - float64(before.stack)) / idleConns
		goroutines += float64(after.goroutines-before.goroutines) / idleConns
		for _, c := range conns {
			c.Close()
		}
	}
	b.ReportMetric(heap/float64(b.N), "heap-B/conn")
	b.ReportMetric(stack/float64(b.N), "stack-B/conn")
	b.ReportMetric(goroutines/float64(b.N), "goroutines/conn")
}

type memFigures struct {
	heap, stack uint64
	goroutines  int
}

// settledMem waits (up to a few seconds) until no more than max goroutines
// run, then collects garbage and returns the live heap, the goroutine stacks
// and the goroutine count.
func settledMem(max int) memFigures {
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > max && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.GC() // and what the first one's finalizers and pools let go
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{heap: m.HeapAlloc, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// rawLogin logs in as device 1 of id over a WebSocket spoken by hand, reads
// up to the answer and returns the bare socket: the client side of an idle
// connection then holds no goroutine and no buffer.
func rawLogin(t testing.TB, ts *testServer, id *identity) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(ts.url, "ws://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", wire.Path, addr)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	f := rawRead(t, br)
	hello, ok := f.Body.(*wire.Hello)
	if !ok {
		t.Fatalf("first frame %v, not hello", f.Op)
	}
	sig, err := id.device.Private.Sign(wire.AuthPayload(hello.Challenge, id.user, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&wire.Frame{Type: wire.TypeRequest, ID: 1, Op: wire.OpLogin, Body: &wire.Login{
		Version: wire.ProtocolVersion, Username: id.user, Device: 1, Signature: sig}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A masked binary frame; the zero mask leaves the payload as it is.
	hdr := []byte{0x82, 0x80 | 126, byte(len(b) >> 8), byte(len(b)), 0, 0, 0, 0}
	if _, err := c.Write(append(hdr, b...)); err != nil {
		t.Fatal(err)
	}
	for {
		f := rawRead(t, br)
		if f.Type == wire.TypeResponse && f.ID == 1 {
			if f.Err != nil {
				t.Fatalf("login %s: %v", id.user, f.Err)
			}
			break
		}
	}
	c.SetDeadline(time.Time{})
	return c
}

// rawRead reads one unmasked frame sent by the server.
func rawRead(t testing.TB, br *bufio.Reader) *wire.Frame {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126, 127:
		ext := make([]byte, 2+6*(n-126))
		if _, err := io.ReadFull(br, ext); err != nil {
			t.Fatal(err)
		}
		n = 0
		for _, x := range ext {
			n = n<<8 | uint64(x)
		}
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	if h[0]&0x0f != 2 {
		return rawRead(t, br) // not a binary frame (a ping): skip it
	}
	f, err := wire.DecodeFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
