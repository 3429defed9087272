// Command parley-load drives a real parleyd with many connected devices and
// reports the message rate it sustains, with latency measured from each
// message's scheduled send time, or the memory each idle device costs.
//
//	parley-load --pairs 100 --start 5000 --step-rate 5000 --max 40000
//	parley-load --idle 10000
//	parley-load --turn parleyd,coturn --rounds 2
//
// By default it starts ./bin/parleyd itself, pinned to core 0, and pins
// itself to core 1. See package load for what is measured and how.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/parleychat/parley/load"
)

func main() {
	var cfg load.Config
	fs := flag.NewFlagSet("parley-load", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: parley-load [flags]

Throughput mode (default): P sender->receiver pairs send messages of --size
bytes; the aggregate rate starts at --start msg/s and rises by --step-rate
every --step until --max (or until p99 latency passes --stop-p99). Each step
prints the delivered rate, p50/p99/max latency from the scheduled send time
to delivery, the sender's wait for the server's answer (ack p50/p99: the
answer comes once the message is durable), lost and duplicated messages, the
server's CPU (of one core) and the share of copies it wrote to disk.

Idle mode (--idle N): N devices register, then connect and stay idle; prints
the server's resident memory per idle connected device.

Standby mode (--standby N): N calls, each with two devices that open the
call's tunnel and hold it, as a call whose audio WebRTC carries does (it
raced the tunnel); prints the server's memory and CPU per call.

Relay mode (--turn parleyd,coturn): calls of two TURN clients each relay
--turn-rate packets/s both ways through the relay; the number of calls
climbs through --turn-steps (each --step long, 10s by default) until loss
passes 1%%, p99 passes 100 ms or the server's core is full. Each step prints
the packets/s relayed, loss, p50/p99 one-way latency and the CPU of the
server and of this tool. The relays named are started in turn (--rounds
times, alternating), pinned like parleyd; --turn-addr drives a running
relay instead.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Server, "server", "", "base URL of a running parleyd (default: start --parleyd)")
	fs.StringVar(&cfg.Parleyd, "parleyd", "./bin/parleyd", "parleyd binary to start")
	fs.IntVar(&cfg.ServerCPU, "server-cpu", 0, "core to pin the started server to (-1: none)")
	loadCPU := fs.Int("load-cpu", 1, "core to pin this tool to (-1: none)")
	serverArgs := fs.String("server-args", "", "extra flags for the started server, space-separated")
	fs.IntVar(&cfg.Pairs, "pairs", 100, "sender->receiver pairs")
	fs.IntVar(&cfg.Size, "size", 1024, "bytes per message")
	fs.IntVar(&cfg.StartRate, "start", 1000, "aggregate msg/s of the first step")
	fs.IntVar(&cfg.StepRate, "step-rate", 1000, "rate increase per step")
	fs.IntVar(&cfg.MaxRate, "max", 0, "rate of the last step (default: --start)")
	fs.DurationVar(&cfg.Step, "step", 0, "length of each step (default 20s)")
	fs.DurationVar(&cfg.StopP99, "stop-p99", 0, "stop once p99 exceeds this (default 1s)")
	fs.IntVar(&cfg.Idle, "idle", 0, "idle mode: number of devices")
	fs.IntVar(&cfg.Standby, "standby", 0, "standby mode: number of calls (its CPU windows are --step long)")
	fs.BoolVar(&cfg.JSON, "json", false, "print one JSON object per step")
	turnServers := fs.String("turn", "", "relay mode: comma-separated relays to start and load, of parleyd and coturn")
	turnAddr := fs.String("turn-addr", "", "relay mode: UDP address of a running TURN relay to load instead")
	turnSecret := fs.String("turn-secret", "", "relay mode with --turn-addr: `file` holding the relay's shared secret (parleyd: DATA/turn-secret)")
	turnPID := fs.Int("turn-pid", 0, "relay mode with --turn-addr: the relay's process, for its CPU")
	turnserver := fs.String("turnserver", "turnserver", "coturn's binary")
	turnSteps := fs.String("turn-steps", "", "relay mode: concurrent calls of each step, comma-separated (default 25,50,100,200,...)")
	turnRate := fs.Int("turn-rate", 50, "relay mode: packets/s each way per call")
	turnSize := fs.Int("turn-size", 120, "relay mode: bytes per packet")
	rounds := fs.Int("rounds", 1, "relay mode: times each relay runs, alternating")
	retries := fs.Int("turn-retries", 1, "relay mode: times a step that is not sustained runs again (a noisy machine can spoil one)")
	nice := fs.Int("nice", 0, "relay mode: nice value for the relays started and this tool alike (below 0 needs root)")
	fs.Parse(os.Args[1:])
	if *serverArgs != "" {
		cfg.ServerArg = strings.Fields(*serverArgs)
	}
	if cfg.Server != "" {
		cfg.ServerCPU = -1
	}
	pinSelf(*loadCPU)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *turnServers != "" || *turnAddr != "" {
		tc := load.TURNConfig{Step: cfg.Step, Rate: *turnRate, Size: *turnSize, JSON: cfg.JSON, LoadCore: *loadCPU, Retries: *retries}
		for _, f := range strings.Split(*turnSteps, ",") {
			if f = strings.TrimSpace(f); f != "" {
				n, err := strconv.Atoi(f)
				if err != nil || n <= 0 {
					fmt.Fprintf(os.Stderr, "parley-load: --turn-steps: %q is no number of calls\n", f)
					os.Exit(2)
				}
				tc.Steps = append(tc.Steps, n)
			}
		}
		if err := runTURN(ctx, tc, *turnServers, *turnAddr, *turnSecret, *turnPID, cfg.Parleyd, *turnserver, cfg.ServerCPU, *rounds, *nice); err != nil {
			fmt.Fprintln(os.Stderr, "parley-load:", err)
			os.Exit(1)
		}
		return
	}
	if _, err := load.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

// runTURN runs the relay mode against a running relay (addr) or against
// the relays it starts.
func runTURN(ctx context.Context, tc load.TURNConfig, servers, addr, secretFile string, pid int, parleyd, turnserver string, cpu, rounds, nice int) error {
	if addr != "" {
		if secretFile == "" {
			return fmt.Errorf("--turn-addr needs --turn-secret")
		}
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return err
		}
		tc.Addr, tc.Secret, tc.PID, tc.ServerCore = addr, []byte(strings.TrimSpace(string(b))), pid, -1
		_, err = load.RunTURN(ctx, tc)
		return err
	}
	_, err := load.RunTURNCompare(ctx, load.TURNCompare{
		Servers: strings.Split(servers, ","), Rounds: rounds,
		Parleyd: parleyd, Turnserver: turnserver, ServerCPU: cpu, Nice: nice, Load: tc,
	})
	return err
}

// pinSelf re-runs this process under taskset on cpu, once. Pinning must
// happen before the Go runtime starts its threads, hence the re-exec.
func pinSelf(cpu int) {
	const mark = "PARLEY_LOAD_PINNED"
	if cpu < 0 || os.Getenv(mark) != "" {
		return
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-load: taskset not found; running unpinned")
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	os.Setenv(mark, "1")
	args := append([]string{"taskset", "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	err = syscall.Exec(taskset, args, os.Environ())
	fmt.Fprintln(os.Stderr, "parley-load: taskset:", err)
}
