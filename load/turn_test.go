package load_test

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/parleychat/parley/load"
	"github.com/parleychat/parley/server/relay"
)

// checkTURNSteps checks a short relay-mode run: both directions of every
// call relayed about what was sent, with latencies measured.
func checkTURNSteps(t *testing.T, steps []load.TURNStep, calls int, d time.Duration) {
	t.Helper()
	if len(steps) != 1 {
		t.Fatalf("got %d steps, want 1", len(steps))
	}
	s := steps[0]
	t.Logf("%+v", s)
	// 50 packets/s each way per call; the sender may start a slot late.
	want := int64(float64(2*calls*50) * d.Seconds() * 0.8)
	if s.Calls != calls || s.Sent < want || s.Received < want {
		t.Errorf("sent %d, received %d over %d calls: want at least %d each", s.Sent, s.Received, s.Calls, want)
	}
	if s.Each[0] < want/3 || s.Each[1] < want/3 {
		t.Errorf("received %d a→b and %d b→a: want both ways", s.Each[0], s.Each[1])
	}
	if s.Received > s.Sent || s.LossPct > 5 {
		t.Errorf("received %d of %d sent (loss %.1f%%)", s.Received, s.Sent, s.LossPct)
	}
	if s.P50ms <= 0 || s.P99ms < s.P50ms || s.Maxms <= 0 || s.Rate <= 0 {
		t.Errorf("implausible latencies or rate: %+v", s)
	}
}

// TestTURNInProcess runs the relay mode briefly against parleyd's relay
// (package server/relay) in this process.
func TestTURNInProcess(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef")
	r, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: secret, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, nil, 0) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var out bytes.Buffer
	const calls, step = 2, 1500 * time.Millisecond
	steps, err := load.RunTURN(ctx, load.TURNConfig{
		Addr: r.UDPAddr().String(), Secret: secret, PID: os.Getpid(),
		Steps: []int{calls}, Step: step, Warmup: 200 * time.Millisecond, Out: &out,
	})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("RunTURN: %v", err)
	}
	checkTURNSteps(t, steps, calls, step)
	if steps[0].ServerCPU <= 0 || steps[0].LoadCPU <= 0 {
		t.Errorf("CPU not measured: server %.1f%%, load %.1f%%", steps[0].ServerCPU, steps[0].LoadCPU)
	}
}

// TestTURNRefusedCredential checks that a wrong secret fails the set-up
// with an error instead of reporting a step.
func TestTURNRefusedCredential(t *testing.T) {
	t.Parallel()
	r, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: []byte("the relay's secret, 32 bytes....")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, nil, 0) }()
	defer func() { cancel(); <-served }()
	var out bytes.Buffer
	steps, err := load.RunTURN(ctx, load.TURNConfig{
		Addr: r.UDPAddr().String(), Secret: []byte("not the relay's secret at all..."),
		Steps: []int{1}, Step: 200 * time.Millisecond, Out: &out,
	})
	if err == nil || len(steps) != 0 {
		t.Fatalf("RunTURN with a wrong secret: %d steps, err %v", len(steps), err)
	}
	t.Logf("refused: %v", err)
}

// TestTURNStarted starts each relay the comparison uses (parleyd built
// from this tree; coturn when its turnserver is installed) and runs the
// relay mode briefly against it.
func TestTURNStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts parleyd and coturn: skipped in -short mode")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "parleyd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parleychat/parley/cmd/parleyd").CombinedOutput(); err != nil {
		t.Fatalf("go build parleyd: %v\n%s", err, out)
	}
	for _, name := range []string{load.Parleyd, load.Coturn} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := bin
			if name == load.Coturn {
				p, err := exec.LookPath("turnserver")
				if err != nil {
					t.Skip("coturn's turnserver is not installed (apt-get install coturn)")
				}
				b = p
			}
			var logs bytes.Buffer
			s, err := load.StartTURN(context.Background(), name, b, t.TempDir(), -1, &logs)
			if err != nil {
				t.Fatalf("StartTURN: %v\n%s", err, logs.String())
			}
			defer s.Stop()
			var out bytes.Buffer
			const calls, step = 2, time.Second
			steps, err := load.RunTURN(context.Background(), load.TURNConfig{
				Addr: s.Addr, Secret: s.Secret, PID: s.PID, Name: name,
				Steps: []int{calls}, Step: step, Warmup: 200 * time.Millisecond, Out: &out,
			})
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatalf("RunTURN: %v", err)
			}
			checkTURNSteps(t, steps, calls, step)
			if steps[0].ServerCPU < 0 {
				t.Errorf("the server's CPU was not measured")
			}
		})
	}
}
