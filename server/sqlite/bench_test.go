package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

// BenchmarkEnqueueAck measures the store's hot path as parleyd drives it
// under load: 100 senders each store a 1 KiB message for their own
// recipient, whose acknowledgement deletes it, over and over; every send
// waits until it is durable. "online": the recipient is connected, gets
// the message as soon as the store accepts it and acknowledges it at once,
// while it is held (so it is never written); "offline": the recipient is
// not connected (the message is written at the next commit) and
// acknowledges it once the send is answered. It reports messages per
// second, the process's CPU time per message (user+system, fsync waits
// excluded: the figure that bounds throughput on one core) and the bytes
// written to disk per message.
func BenchmarkEnqueueAck(b *testing.B) {
	b.Run("online", func(b *testing.B) { benchEnqueueAck(b, true) })
	b.Run("offline", func(b *testing.B) { benchEnqueueAck(b, false) })
}

func benchEnqueueAck(b *testing.B, online bool) {
	const pairs = 100
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "parley.db"))
	defer s.Close()
	content := make([]byte, 1024)
	b.ResetTimer()
	cpu0, io0 := cpuTime(), writtenBytes()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range pairs {
		n := b.N / pairs
		if i < b.N%pairs {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := parley.Address{User: parley.UserID(fmt.Sprintf("sender%d", i)), Device: 1}
			to := parley.Address{User: parley.UserID(fmt.Sprintf("recipient%d", i)), Device: 1}
			delivered := make(chan uint64, 1)
			accepted := func(e *parley.Envelope) bool {
				if online {
					delivered <- e.ServerSeq
				}
				return online
			}
			for range n {
				envs := []parley.Envelope{{ID: parley.NewMessageID(), From: from, To: to, Type: parley.EnvelopeSignal,
					Content: content, ServerAt: time.Now()}}
				wait := s.StartEnqueue(ctx, envs, accepted)
				if online {
					if err := s.Ack(ctx, to, []uint64{<-delivered}); err != nil {
						b.Error(err)
						return
					}
				}
				if _, err := wait(); err != nil {
					b.Error(err)
					return
				}
				if !online {
					if err := s.Ack(ctx, to, []uint64{envs[0].ServerSeq}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, written := cpuTime()-cpu0, writtenBytes()-io0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	if written >= 0 {
		b.ReportMetric(float64(written)/float64(b.N), "disk-B/msg")
	}
}

// writtenBytes is what the process has written to storage so far (the
// WAL, and the database by checkpoints), from /proc/self/io; -1 where that
// is not available.
func writtenBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
