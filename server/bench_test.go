package server_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

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
