package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// proc is a parleyd process the tool watches: started by it, or found by pid.
type proc struct {
	pid int
	cmd *exec.Cmd // nil when the tool did not start it
	url string

	// How it was started, for restart.
	bin, dir string
	cpu      int
	extra    []string
	logs     io.Writer
}

// restart stops a server the tool started and starts it again on the same
// data folder (on a new port).
func (p *proc) restart(ctx context.Context) error {
	p.stop()
	q, err := startServer(ctx, p.bin, p.dir, p.cpu, p.extra, p.logs)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

// startServer starts parleyd on a free loopback port with its data in dir,
// pinned to cpu when cpu >= 0, and waits for the URL on its first line.
func startServer(ctx context.Context, bin, dir string, cpu int, extra []string, logs io.Writer) (*proc, error) {
	args := append([]string{"--listen", "127.0.0.1:0", "--data", dir}, extra...)
	extra = slices.Clone(extra)
	name := bin
	if cpu >= 0 {
		args = append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("load: start %s: %w", bin, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	select {
	case line, ok := <-lines:
		if !ok || !strings.HasPrefix(line, "http") {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("load: %s printed %q, not its URL", bin, line)
		}
		return &proc{pid: cmd.Process.Pid, cmd: cmd, url: strings.TrimSpace(line), bin: bin, dir: dir, cpu: cpu, extra: extra, logs: logs}, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("load: %s did not print its URL within 30s", bin)
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		return nil, ctx.Err()
	}
}

// stop ends a server the tool started, gracefully.
func (p *proc) stop() {
	if p == nil || p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// cpuTime is the user+system CPU time the process has used. With taskset
// the process runs as a child of taskset's exec, so the pid is parleyd's.
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): state is field 3; utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("load: odd /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("load: odd /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// rss is the process's resident memory in bytes.
func (p *proc) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("load: no VmRSS for pid %d", p.pid)
}

// goStats reads figures from the server's /metrics: the Go runtime's heap
// in use, goroutine stacks, goroutines and the heap size at which the next
// collection starts, and the message copies accepted and written to disk
// (-1 when the server does not count them).
func (p *proc) goStats(ctx context.Context) (goStats, error) {
	s := goStats{Written: -1}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(p.url, "/")+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	fields := map[string]*float64{
		"go_memstats_heap_inuse_bytes":   &s.HeapInuse,
		"go_memstats_heap_alloc_bytes":   &s.HeapAlloc,
		"go_memstats_stack_inuse_bytes":  &s.StackInuse,
		"go_memstats_next_gc_bytes":      &s.NextGC,
		"go_goroutines":                  &s.Goroutines,
		"parley_messages_accepted_total": &s.Accepted,
		"parley_messages_written_total":  &s.Written,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if f := fields[name]; ok && f != nil {
			*f, _ = strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	return s, sc.Err()
}

// goStats are figures of the server, from its /metrics.
type goStats struct {
	HeapInuse, HeapAlloc, StackInuse, NextGC, Goroutines float64
	Accepted, Written                                    float64
}
