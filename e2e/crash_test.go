package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientstore"
)

// buildParleyd builds cmd/parleyd into a temporary folder.
func buildParleyd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parleyd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/parleychat/parley/cmd/parleyd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build parleyd: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago,
// so that a restarted server can come back on the same address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// spawned is a parleyd process.
type spawned struct {
	cmd  *exec.Cmd
	logs *os.File
}

func spawnParleyd(t *testing.T, bin, addr, dir string, logs *os.File) *spawned {
	t.Helper()
	cmd := exec.Command(bin, "--listen", addr, "--data", dir, "--log-level", "debug", "--turn-listen", "off")
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		first <- sc.Text()
		for sc.Scan() {
		}
	}()
	select {
	case line := <-first:
		if !strings.HasPrefix(line, "http://"+addr) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("parleyd's first line is %q, want its URL", line)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("parleyd printed no URL within 20s")
	}
	return &spawned{cmd: cmd, logs: logs}
}

func (s *spawned) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// crashClient is a client on a SQLite store, run in the background.
func crashClient(t testing.TB, ctx context.Context, server, name string) (*client.Client, func()) {
	t.Helper()
	st, err := clientstore.Open(ctx, filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(ctx, client.Config{Store: st, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, server, name); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	return c, func() { cancel(); <-done; st.Close() }
}

// TestCrashRecovery sends continuously while parleyd is killed with SIGKILL
// and restarted several times. Every message the server acknowledged must
// be delivered, none shown twice, and the sender's order kept.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := buildParleyd(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	logs, err := os.Create(filepath.Join(t.TempDir(), "parleyd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	srv := spawnParleyd(t, bin, addr, dir, logs)
	defer func() { srv.kill() }()
	url := "http://" + addr

	alice, stopAlice := crashClient(t, ctx, url, "alice")
	defer stopAlice()
	bob, stopBob := crashClient(t, ctx, url, "bob")
	defer stopBob()

	// Bob records every message shown to him, in order.
	var (
		mu    sync.Mutex
		shown []string
	)
	go func() {
		for e := range bob.Events() {
			if e.Type == client.EventMessage && e.Message != nil {
				mu.Lock()
				shown = append(shown, e.Message.Text)
				mu.Unlock()
			}
		}
	}()

	// Alice sends a numbered message every 10 ms while the server dies.
	const total = 600
	sendDone := make(chan error, 1)
	go func() {
		for i := range total {
			if _, err := alice.Send(ctx, "bob", fmt.Sprintf("m%05d", i)); err != nil {
				sendDone <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		sendDone <- nil
	}()
	const kills = 5
	for k := range kills {
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		srv.kill()
		t.Logf("kill %d: SIGKILL sent", k+1)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		srv = spawnParleyd(t, bin, addr, dir, logs)
	}
	if err := <-sendDone; err != nil {
		t.Fatal(err)
	}

	// Wait until Alice's outbox is empty and Bob has everything acknowledged.
	out := true
	var sent []client.Message
	deadline := time.Now().Add(90 * time.Second)
	for {
		pending, err := alice.Outbox(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := alice.Messages(ctx, client.Query{Peer: "bob", Outgoing: &out})
		if err != nil {
			t.Fatal(err)
		}
		// Acknowledged by the server: sent, or delivered already.
		sent = slices.DeleteFunc(all, func(m client.Message) bool {
			return m.State != client.StateSent && m.State != client.StateDelivered
		})
		mu.Lock()
		n := len(shown)
		mu.Unlock()
		if len(pending) == 0 && n >= len(sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after 90s: %d messages still in Alice's outbox, %d acknowledged, %d shown to Bob", len(pending), len(sent), n)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a duplicate, if any, has time to show

	mu.Lock()
	defer mu.Unlock()
	if len(sent) != total {
		t.Errorf("Alice has %d messages acknowledged, want all %d (after the outbox emptied)", len(sent), total)
	}
	seen := make(map[string]bool)
	last := -1
	for _, text := range shown {
		if seen[text] {
			t.Errorf("message %s shown to Bob twice", text)
		}
		seen[text] = true
		n, err := strconv.Atoi(strings.TrimPrefix(text, "m"))
		if err != nil {
			t.Fatalf("unexpected message %q", text)
		}
		if n < last {
			t.Errorf("order broken: %s shown after m%05d", text, last)
		}
		last = n
	}
	for _, m := range sent {
		if !seen[m.Text] {
			t.Errorf("acknowledged message %s never shown to Bob", m.Text)
		}
	}
	// Bob's history agrees with what he was shown.
	hist, err := bob.Messages(ctx, client.Query{Peer: parley.UserID("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(shown) {
		t.Errorf("Bob's history holds %d messages, %d were shown", len(hist), len(shown))
	}
	t.Logf("%d messages, %d kills: %d acknowledged, %d shown, none twice, in order", total, kills, len(sent), len(shown))
}
