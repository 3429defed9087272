package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"
)

// ErrUnavailable wraps every reason the lab cannot run on this machine.
var ErrUnavailable = errors.New("netlab unavailable")

var checkOnce = sync.OnceValue(check)

// Check reports why the lab cannot run here, or nil: it needs Linux, root,
// the ip, tc and iptables commands and the kernel's NFQUEUE support (loaded
// with modprobe if it is a module that is not loaded yet).
func Check() error { return checkOnce() }

func check() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: network namespaces need Linux, this is %s", ErrUnavailable, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: network namespaces need root (running as uid %d)", ErrUnavailable, os.Geteuid())
	}
	for _, c := range []struct{ cmd, pkg string }{{"ip", "iproute2"}, {"tc", "iproute2"}, {"iptables", "iptables"}} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install %s)", ErrUnavailable, c.cmd, c.pkg)
		}
	}
	const nfq = "/proc/net/netfilter/nfnetlink_queue"
	if _, err := os.Stat(nfq); err != nil {
		// A modular kernel: load the queue and its iptables target.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, merr := exec.CommandContext(ctx, "modprobe", "-a", "nfnetlink_queue", "xt_NFQUEUE").CombinedOutput()
		if _, err := os.Stat(nfq); err != nil {
			return fmt.Errorf("%w: the kernel has no NFQUEUE (%s missing; modprobe: %v %s)", ErrUnavailable, nfq, merr, out)
		}
	}
	return nil
}

// Open builds a lab for a test and closes it in t.Cleanup. Where the lab
// cannot run it skips the test saying why, or fails it when CI=true (CI
// promises root and the tools).
func Open(t testing.TB, opts Options) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the lab must run)", err)
		}
		t.Skipf("skipped: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}
