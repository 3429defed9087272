package load_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
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
		if s.Sent < int64(s.TargetRate)*8/10 || s.Delivered != s.Sent || s.Late != 0 || s.Lost != 0 || s.Duplicated != 0 || s.SendErrors != 0 {
			t.Errorf("step %+v: want about %d sent, all delivered once", s, s.TargetRate)
		}
		if s.P50ms <= 0 || s.P99ms < s.P50ms || s.AckP50ms <= 0 || s.AckP99ms < s.AckP50ms {
			t.Errorf("step %+v: implausible latencies", s)
		}
		// The receivers acknowledge at once: the server holds each message
		// for a moment before writing it, so nearly none is written.
		if s.Written < 0 || s.Written > 50 {
			t.Errorf("step %+v: %.1f%% of the copies written to disk, want under half", s, s.Written)
		}
	}
	cancel()
	if err := <-served; err != nil && err != context.Canceled {
		t.Errorf("Serve: %v", err)
	}
}

// TestStandbySmall runs the standby mode with a few calls against a
// parleyd it starts itself: every side's tunnel opens (on WebTransport,
// which the server offers on loopback) and stands by on a WebSocket
// alone (tunnel.Link.SetIdle), and the report has both readings.
func TestStandbySmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts parleyd: skipped in -short mode")
	}
	var out bytes.Buffer
	_, err := load.Run(context.Background(), load.Config{Parleyd: buildParleyd(t), ServerCPU: -1, Standby: 3, Step: time.Second, JSON: true, Out: &out})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	var r load.StandbyResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	t.Logf("%+v", r)
	if r.Calls != 3 || r.Carriers["websocket"] != 6 || r.RSSBefore <= 0 || r.RSSAfter <= 0 || r.GoroutinesPerCall <= 0 {
		t.Errorf("standby report %+v: want 3 calls, 6 sides standing by on a WebSocket, both RSS readings, goroutines per call", r)
	}
}

func buildParleyd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parleyd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parleychat/parley/cmd/parleyd").CombinedOutput(); err != nil {
		t.Fatalf("go build parleyd: %v\n%s", err, out)
	}
	return bin
}

// TestIdleSmall runs the idle mode with a handful of devices against a
// parleyd it starts (and restarts) itself.
func TestIdleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts parleyd: skipped in -short mode")
	}
	var out bytes.Buffer
	_, err := load.Run(context.Background(), load.Config{Parleyd: buildParleyd(t), ServerCPU: -1, Idle: 20, JSON: true, Out: &out})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	var r load.IdleResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	if r.Devices != 20 || r.RSSBefore <= 0 || r.RSSAfter <= 0 {
		t.Errorf("idle report %+v: want 20 devices and both RSS readings", r)
	}
}
