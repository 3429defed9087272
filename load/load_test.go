package load_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/parleychat/parley/load"
	"github.com/parleychat/parley/server"
)

// TestThroughputSmall runs two short steps against an in-process server and
// checks the tool's accounting: everything sent is delivered once.
func TestThroughputSmall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.Open(ctx, server.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	var out bytes.Buffer
	steps, err := load.Run(ctx, load.Config{
		Server: "http://" + ln.Addr().String(), Pairs: 4, Size: 256,
		StartRate: 40, StepRate: 40, MaxRate: 80, Step: time.Second, Out: &out,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	if len(steps) != 2 {
		t.Fatalf("got %d steps, want 2", len(steps))
	}
	for _, s := range steps {
		if s.Sent < int64(s.TargetRate)*8/10 || s.Delivered != s.Sent || s.Lost != 0 || s.Duplicated != 0 || s.SendErrors != 0 {
			t.Errorf("step %+v: want about %d sent, all delivered once", s, s.TargetRate)
		}
		if s.P50ms <= 0 || s.P99ms < s.P50ms {
			t.Errorf("step %+v: implausible latencies", s)
		}
	}
	cancel()
	if err := <-served; err != nil && err != context.Canceled {
		t.Errorf("Serve: %v", err)
	}
}
