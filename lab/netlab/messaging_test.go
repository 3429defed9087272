package netlab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/lab/netlab"
)

// TestMessaging is the lab's first end-to-end use: parleyd in the server
// namespace, alice and bob (the CLI) in two client namespaces, and the time
// from "parley send" starting to bob's "parley recv" printing the message,
// per profile, with nothing lost or duplicated.
func TestMessaging(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Clients: 2})
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/parleychat/parley/cmd/parleyd", "github.com/parleychat/parley/cmd/parley")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	parley := filepath.Join(bin, "parley")

	// parleyd prints its URL on the first line.
	srv := lab.Command(lab.Server(), filepath.Join(bin, "parleyd"), "--listen", lab.ServerAddr().String()+":0",
		"--data", t.TempDir(), "--turn-listen", "off", "--log-level", "warn")
	srvOut, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srvErr := new(strings.Builder)
	srv.Stderr = srvErr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	line, err := bufio.NewReader(srvOut).ReadString('\n')
	if err != nil {
		t.Fatalf("parleyd: %v; stderr: %s", err, srvErr)
	}
	url := strings.TrimSpace(line)

	alice, bob := t.TempDir(), t.TempDir()
	cli := func(node netlab.Node, home string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := lab.CommandContext(ctx, node, parley, append([]string{"--home", home}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("parley %v: %v: %s", args, err, out)
		}
		return nil
	}
	for _, u := range []struct {
		node netlab.Node
		home string
		name string
	}{{lab.Client(0), alice, "alice"}, {lab.Client(1), bob, "bob"}} {
		if err := cli(u.node, u.home, "register", "--server", url, u.name); err != nil {
			t.Fatal(err)
		}
	}

	// Bob listens for the whole test; each printed message is timed.
	type got struct {
		text string
		at   time.Time
	}
	recv := lab.Command(lab.Client(1), parley, "--home", bob, "recv", "--wait", "120s", "--json")
	recvOut, err := recv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = recv.Process.Kill(); _ = recv.Wait() })
	arrivals := make(chan got, 100)
	go func() {
		sc := bufio.NewScanner(recvOut)
		for sc.Scan() {
			var m struct {
				Text   string `json:"text"`
				Notice bool   `json:"notice"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && !m.Notice {
				arrivals <- got{m.Text, time.Now()}
			}
		}
		close(arrivals)
	}()
	seen := map[string]int{}
	await := func(text string, within time.Duration) (time.Time, bool) {
		timeout := time.After(within)
		for {
			select {
			case g, ok := <-arrivals:
				if !ok {
					return time.Time{}, false
				}
				seen[g.text]++
				if g.text == text {
					return g.at, true
				}
			case <-timeout:
				return time.Time{}, false
			}
		}
	}

	// A first message opens the session (PQXDH) and proves recv is live.
	if err := cli(lab.Client(0), alice, "send", "bob", "warm-up"); err != nil {
		t.Fatal(err)
	}
	if _, ok := await("warm-up", 20*time.Second); !ok {
		t.Fatal("the warm-up message never arrived")
	}

	const perProfile = 5
	for _, profile := range []string{"clean", "loss-10"} {
		if err := lab.SetProfile(context.Background(), profile); err != nil {
			t.Fatal(err)
		}
		var times []time.Duration
		for i := range perProfile {
			text := fmt.Sprintf("%s #%d", profile, i)
			start := time.Now()
			if err := cli(lab.Client(0), alice, "send", "bob", text); err != nil {
				t.Errorf("%s: %v", profile, err)
				continue
			}
			at, ok := await(text, 20*time.Second)
			if !ok {
				t.Errorf("%s: %q not delivered within 20 s", profile, text)
				continue
			}
			times = append(times, at.Sub(start))
		}
		slices.Sort(times)
		t.Logf("%s: delivery (send start → printed by recv) %v", profile, times)
		if len(times) == perProfile && profile == "clean" && times[len(times)/2] > 3*time.Second {
			t.Errorf("clean: median delivery %v, want < 3 s", times[len(times)/2])
		}
	}
	// Late duplicates would show up here.
	await("", 500*time.Millisecond)
	for text, n := range seen {
		if n != 1 {
			t.Errorf("%q printed %d times, want once", text, n)
		}
	}
	if len(seen) != 1+2*perProfile {
		t.Errorf("bob saw %d distinct messages, want %d", len(seen), 1+2*perProfile)
	}
	if lab.QueueStats(netlab.Up).Seen == 0 {
		t.Error("loss-10: no packet went through the censor's queue")
	}
}
