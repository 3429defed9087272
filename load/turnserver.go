package load

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/server/relay"
)

// Relays the tool can start for the relay mode.
const (
	Parleyd = "parleyd" // parleyd's own relay (package server/relay, pion/turn)
	Coturn  = "coturn"  // Debian's coturn, its turnserver run directly
)

// TURNServer is a relay the tool started, on a free loopback port.
type TURNServer struct {
	Name   string // Parleyd or Coturn
	Addr   string // its UDP address
	Secret []byte // the shared secret of its TURN REST credentials
	PID    int
	p      *proc
}

// StartTURN starts the relay name (Parleyd or Coturn) from the binary bin,
// pinned to core cpu when cpu >= 0, with its files in dir. Both take their
// shared secret from dir/turn-secret (made when missing), as parleyd does
// with its data folder, and relay to loopback.
//
// coturn runs with --relay-threads=1 besides the pinning: pinned to one
// core, more relay threads only take turns on it, and parleyd's Go
// runtime has one P there too (GOMAXPROCS follows the CPU affinity).
func StartTURN(ctx context.Context, name, bin, dir string, cpu int, logs io.Writer) (*TURNServer, error) {
	if logs == nil {
		logs = io.Discard
	}
	secret, err := relay.LoadSecret(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &TURNServer{Name: name, Addr: addr, Secret: secret}
	switch name {
	case Parleyd:
		args := []string{"--turn-listen", addr, "--relay-allow", "127.0.0.0/8", "--log-level", "warn"}
		p, err := startServer(ctx, bin, dir, cpu, args, logs)
		if err != nil {
			return nil, err
		}
		s.p = p
	case Coturn:
		args := []string{bin, "-n",
			"--listening-ip=127.0.0.1", "--listening-port=" + strconv.Itoa(port), "--relay-ip=127.0.0.1",
			"--use-auth-secret", "--static-auth-secret=" + string(secret), "--realm=" + relay.DefaultRealm,
			"--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--relay-threads=1",
			"--userdb=" + filepath.Join(dir, "turndb"), "--pidfile=" + filepath.Join(dir, "turnserver.pid"),
			"--log-file=stdout", "--simple-log",
		}
		if cpu >= 0 {
			args = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		if logs != io.Discard {
			cmd.Stdout, cmd.Stderr = logs, logs
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("load: start %s: %w", bin, err)
		}
		s.p = &proc{pid: cmd.Process.Pid, cmd: cmd}
	default:
		return nil, fmt.Errorf("load: no relay called %q (want %s or %s)", name, Parleyd, Coturn)
	}
	s.PID = s.p.pid
	if err := waitSTUN(ctx, addr, 15*time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("load: %s: %w", name, err)
	}
	return s, nil
}

// Stop ends the relay and waits for it.
func (s *TURNServer) Stop() { s.p.stop() }

// freePort is a port number free for both UDP and TCP on 127.0.0.1 a
// moment ago (parleyd takes both).
func freePort() (int, error) {
	for range 20 {
		u, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			t.Close()
			return port, nil
		}
	}
	return 0, errors.New("load: no free port for UDP and TCP")
}

// waitSTUN sends STUN Binding requests (RFC 8489 §6) to addr until one is
// answered.
func waitSTUN(ctx context.Context, addr string, wait time.Duration) error {
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := make([]byte, 20)
	req[1] = 0x01                                  // type: Binding request
	copy(req[4:8], []byte{0x21, 0x12, 0xA4, 0x42}) // magic cookie; length 0
	rand.Read(req[8:])                             // transaction ID
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		conn.Write(req)
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && n >= 20 && string(buf[8:20]) == string(req[8:]) {
			return nil
		}
	}
	return fmt.Errorf("no answer to STUN at %s within %s", addr, wait)
}

// coreTimes reads each core's busy and total time, in USER_HZ ticks, from
// /proc/stat: busy is everything but idle and iowait.
func coreTimes() (map[int][2]int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	m := map[int][2]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var busy, total int64
		for i, v := range f[1:] {
			x, _ := strconv.ParseInt(v, 10, 64)
			if i >= 8 { // guest time is counted in user time already
				break
			}
			total += x
			if i != 3 && i != 4 { // idle, iowait
				busy += x
			}
		}
		m[n] = [2]int64{busy, total}
	}
	return m, nil
}

// coreBusy is how busy core was between two readings of coreTimes, in %;
// -1 when unknown.
func coreBusy(a, b map[int][2]int64, core int) float64 {
	x, ok1 := a[core]
	y, ok2 := b[core]
	if core < 0 || !ok1 || !ok2 || y[1] <= x[1] {
		return -1
	}
	return 100 * float64(y[0]-x[0]) / float64(y[1]-x[1])
}

// renice sets the nice value of every thread of process pid; threads made
// later inherit it from the thread that makes them.
func renice(pid, nice int) error {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("load: renice %d: no threads", pid)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("load: renice %d to %d: %w", pid, nice, err)
		}
	}
	return nil
}

// udpRcvbufErrors is the kernel's count of UDP datagrams dropped because a
// socket's receive buffer was full (RcvbufErrors in /proc/net/snmp).
func udpRcvbufErrors() (int64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, errors.New("load: no RcvbufErrors in /proc/net/snmp")
}

// TURNCompare runs the relay mode against relays the tool starts, in
// turn, so that a shared, noisy machine affects each alike.
type TURNCompare struct {
	Servers    []string // [Parleyd, Coturn]
	Rounds     int      // times each server runs, alternating [1]
	Parleyd    string   // parleyd binary ["parleyd"]
	Turnserver string   // coturn's binary ["turnserver"]
	ServerCPU  int      // core the relays are pinned to; -1: none
	// Nice, when not 0, is the scheduling priority (nice value) given to
	// every relay started and to this process alike: below 0 (root only),
	// it keeps other programs on a shared machine from taking the cores
	// from the measurement.
	Nice int
	Logs io.Writer
	Load TURNConfig // the load; its Addr, Secret, PID and Name are set per run
}

// RunTURNCompare runs every server of c.Servers, c.Rounds times,
// alternating, then prints a summary with the ratios of the first two.
func RunTURNCompare(ctx context.Context, c TURNCompare) (map[string][][]TURNStep, error) {
	if len(c.Servers) == 0 {
		c.Servers = []string{Parleyd, Coturn}
	}
	c.Rounds = max(c.Rounds, 1)
	if c.Parleyd == "" {
		c.Parleyd = "parleyd"
	}
	if c.Turnserver == "" {
		c.Turnserver = "turnserver"
	}
	c.Load.defaults()
	out := c.Load.Out
	if c.Nice != 0 {
		if err := renice(os.Getpid(), c.Nice); err != nil {
			return nil, err
		}
	}
	runs := map[string][][]TURNStep{}
	for round := 1; round <= c.Rounds; round++ {
		for _, name := range c.Servers {
			bin := c.Parleyd
			if name == Coturn {
				bin = c.Turnserver
			}
			dir, err := os.MkdirTemp("", "parley-load-turn-")
			if err != nil {
				return runs, err
			}
			s, err := StartTURN(ctx, name, bin, dir, c.ServerCPU, c.Logs)
			if err != nil {
				os.RemoveAll(dir)
				return runs, err
			}
			if c.Nice != 0 {
				if err := renice(s.PID, c.Nice); err != nil {
					s.Stop()
					os.RemoveAll(dir)
					return runs, err
				}
			}
			cfg := c.Load
			cfg.Addr, cfg.Secret, cfg.PID, cfg.Name = s.Addr, s.Secret, s.PID, name
			cfg.ServerCore = c.ServerCPU
			if !cfg.JSON {
				fmt.Fprintf(out, "\n== round %d/%d: %s (pid %d)\n", round, c.Rounds, name, s.PID)
			}
			steps, err := RunTURN(ctx, cfg)
			s.Stop()
			os.RemoveAll(dir)
			runs[name] = append(runs[name], steps)
			if err != nil {
				return runs, err
			}
		}
	}
	if !c.Load.JSON {
		summarizeTURN(out, c.Servers, runs, c.Load)
	}
	return runs, nil
}

// summarizeTURN prints, per server and round, the highest sustained step
// and packets/s per % of CPU there; then, for the first two servers, the
// ratios, and both servers' CPU at the highest step both sustained.
func summarizeTURN(out io.Writer, servers []string, runs map[string][][]TURNStep, cfg TURNConfig) {
	fmt.Fprintf(out, "\nsummary (sustained: loss ≤ %.3g%% and p99 ≤ %s):\n", cfg.GoodLoss, cfg.GoodP99)
	for _, name := range servers {
		for i, steps := range runs[name] {
			if b := BestTURN(steps); b != nil {
				fmt.Fprintf(out, "  %-8s round %d: %5d calls, %7.0f packets/s, server CPU %3.0f%%, %5.0f packets/s per %% CPU\n",
					name, i+1, b.Calls, b.Rate, b.ServerCPU, b.PacketsPerCPU())
			} else {
				fmt.Fprintf(out, "  %-8s round %d: no sustained step\n", name, i+1)
			}
		}
	}
	if len(servers) < 2 {
		return
	}
	x, y := servers[0], servers[1]
	for i := range min(len(runs[x]), len(runs[y])) {
		bx, by := BestTURN(runs[x][i]), BestTURN(runs[y][i])
		if bx == nil || by == nil {
			continue
		}
		fmt.Fprintf(out, "  round %d: %s/%s max calls %.2f", i+1, x, y, float64(bx.Calls)/float64(by.Calls))
		// CPU per packet compared at the same load: the highest step both
		// sustained.
		var sx, sy *TURNStep
		for j := range runs[x][i] {
			for k := range runs[y][i] {
				a, b := &runs[x][i][j], &runs[y][i][k]
				if a.Calls == b.Calls && a.Sustained && b.Sustained && (sx == nil || a.Calls > sx.Calls) {
					sx, sy = a, b
				}
			}
		}
		if sx != nil && sx.PacketsPerCPU() > 0 && sy.PacketsPerCPU() > 0 {
			fmt.Fprintf(out, "; at %d calls: CPU %.0f%% vs %.0f%%, packets/s per %% CPU %.0f vs %.0f (ratio %.2f)",
				sx.Calls, sx.ServerCPU, sy.ServerCPU, sx.PacketsPerCPU(), sy.PacketsPerCPU(), sx.PacketsPerCPU()/sy.PacketsPerCPU())
		}
		fmt.Fprintln(out)
	}
}
