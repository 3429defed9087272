package netlab_test

// The probes: the test binary re-executed inside a namespace with
// NETLAB_PROBE naming the mode (the usual Go helper-process pattern). Each
// prints "ready" once listening, then one JSON result line.

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/lab/netlab"
)

const probeEnv = "NETLAB_PROBE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(probeEnv); mode != "" {
		if err := probeMain(mode, os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "probe %s: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A datagram probe ends with its sequence number and send time (unix ns),
// after a kind-specific prefix: plain, a STUN binding request, or the start
// of a DTLS 1.2 / 1.0 ClientHello record.
func probePacket(kind string, size int, seq uint64) []byte {
	b := make([]byte, max(size, 36))
	switch kind {
	case "stun": // RFC 8489 §5: type, length, magic cookie, transaction id
		binary.BigEndian.PutUint16(b[0:], 0x0001)
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)-20))
		binary.BigEndian.PutUint32(b[4:], 0x2112A442)
	case "dtls12", "dtls10": // RFC 9147 §4: content type, version, epoch, seq, length; then ClientHello
		b[0] = 22
		b[1], b[2] = 0xfe, 0xfd
		if kind == "dtls10" {
			b[2] = 0xff
		}
		binary.BigEndian.PutUint16(b[11:], uint16(len(b)-13))
		b[13] = 1 // handshake type client_hello
	default:
		b[0] = 'P'
	}
	binary.BigEndian.PutUint64(b[len(b)-16:], seq)
	binary.BigEndian.PutUint64(b[len(b)-8:], uint64(time.Now().UnixNano()))
	return b
}

// arrival is one received probe: its sequence number, one-way delay and size.
type arrival struct {
	Seq   uint64 `json:"s"`
	Delay int64  `json:"d"` // ns
	Size  int    `json:"n"`
}

type sinkResult struct {
	Arrivals []arrival `json:"arrivals"`
	Elapsed  int64     `json:"elapsed"` // ns from the first arrival to the last
}

type fetchResult struct {
	Connected bool       `json:"connected"`
	Bytes     int        `json:"bytes"`
	EOF       bool       `json:"eof"`
	Reset     bool       `json:"reset"`
	Stalled   bool       `json:"stalled"` // no byte for the stall time before the end
	Err       string     `json:"err,omitempty"`
	Samples   [][2]int64 `json:"samples"` // [ms since connect, total bytes] per read
}

func probeMain(mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	addr := fs.String("addr", "", "listen or destination address")
	n := fs.Int("n", 100, "packets to send")
	interval := fs.Duration("interval", time.Millisecond, "between packets")
	size := fs.Int("size", 100, "datagram size")
	kind := fs.String("kind", "plain", "datagram kind: plain, stun, dtls12, dtls10")
	idle := fs.Duration("idle", time.Second, "sink: stop after this long without a packet")
	maxDur := fs.Duration("max", 20*time.Second, "stop after this long in any case")
	total := fs.Int("bytes", 1<<20, "tcp-serve: bytes to send per connection")
	stall := fs.Duration("stall", 2*time.Second, "tcp-fetch: stalled after this long without a byte")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	switch mode {
	case "udp-sink":
		c, err := net.ListenPacket("udp4", *addr)
		if err != nil {
			return err
		}
		_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
		fmt.Println("ready")
		var res sinkResult
		var first time.Time
		deadline := time.Now().Add(*maxDur)
		buf := make([]byte, 65536)
		for {
			d := deadline
			if t := time.Now().Add(*idle); !first.IsZero() && t.Before(d) {
				d = t
			}
			_ = c.SetReadDeadline(d)
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			res.Elapsed = int64(now.Sub(first))
			if k < 16 {
				continue
			}
			sent := int64(binary.BigEndian.Uint64(buf[k-8:]))
			res.Arrivals = append(res.Arrivals, arrival{Seq: binary.BigEndian.Uint64(buf[k-16:]), Delay: now.UnixNano() - sent, Size: k})
		}
		return out.Encode(res)
	case "udp-send":
		c, err := net.Dial("udp4", *addr)
		if err != nil {
			return err
		}
		start := time.Now()
		for i := range *n {
			// Paced against the start, so that a late wake-up does not slow the rate.
			if d := time.Until(start.Add(time.Duration(i) * *interval)); d > 0 {
				time.Sleep(d)
			}
			if _, err := c.Write(probePacket(*kind, *size, uint64(i))); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
		}
		return nil
	case "tcp-serve":
		ln, err := net.Listen("tcp4", *addr)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		chunk := make([]byte, 16384)
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			go func() {
				defer c.Close()
				for sent := 0; sent < *total; sent += len(chunk) {
					if _, err := c.Write(chunk[:min(len(chunk), *total-sent)]); err != nil {
						return
					}
				}
			}()
		}
	case "tcp-fetch":
		var res fetchResult
		defer func() { _ = out.Encode(&res) }()
		c, err := net.DialTimeout("tcp4", *addr, 3*time.Second)
		if err != nil {
			res.Err = err.Error()
			return nil
		}
		defer c.Close()
		res.Connected = true
		start := time.Now()
		buf := make([]byte, 65536)
		for time.Since(start) < *maxDur {
			d := time.Now().Add(*stall)
			if end := start.Add(*maxDur); end.Before(d) {
				d = end
			}
			_ = c.SetReadDeadline(d)
			k, err := c.Read(buf)
			res.Bytes += k
			if k > 0 {
				res.Samples = append(res.Samples, [2]int64{time.Since(start).Milliseconds(), int64(res.Bytes)})
			}
			var ne net.Error
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				res.EOF = true
				return nil
			case errors.Is(err, syscall.ECONNRESET):
				res.Reset = true
				return nil
			case errors.As(err, &ne) && ne.Timeout():
				res.Stalled = time.Since(start) < *maxDur
				return nil
			default:
				res.Err = err.Error()
				return nil
			}
		}
		return nil
	}
	return fmt.Errorf("unknown mode")
}

// probe runs the test binary in mode inside node.
type probe struct {
	cmd    *exec.Cmd
	out    *bufio.Reader
	stderr *strings.Builder
	done   chan struct{}
	line   string
	err    error
}

func startProbe(t *testing.T, lab *netlab.Lab, node netlab.Node, mode string, args ...string) *probe {
	t.Helper()
	cmd := lab.Command(node, os.Args[0], args...)
	cmd.Env = append(os.Environ(), probeEnv+"="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{cmd: cmd, out: bufio.NewReader(stdout), stderr: new(strings.Builder), done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start probe %s in %s: %v", mode, node.Name, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	if mode == "udp-sink" || mode == "tcp-serve" {
		line, err := p.out.ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("probe %s in %s: got %q, %v; stderr: %s", mode, node.Name, line, err, p.stderr)
		}
	}
	go func() {
		defer close(p.done)
		p.line, _ = p.out.ReadString('\n')
		p.err = cmd.Wait()
	}()
	return p
}

// wait waits for the probe and decodes its JSON result into v (if not nil).
func (p *probe) wait(t *testing.T, v any) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("probe %v did not finish", p.cmd.Args)
	}
	if p.err != nil {
		t.Fatalf("probe %v: %v; stderr: %s", p.cmd.Args, p.err, p.stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(p.line), v); err != nil {
			t.Fatalf("probe %v: bad result %q: %v", p.cmd.Args, p.line, err)
		}
	}
}

// udpRun sends n probes from one node to a sink on another and returns what
// arrived.
type udpRun struct {
	from, to netlab.Node
	n        int
	interval time.Duration
	size     int
	kind     string
	port     int
	idle     time.Duration
	wait     time.Duration // the sink's longest wait; default n×interval + 5 s
}

func (r udpRun) start(t *testing.T, lab *netlab.Lab) func() sinkResult {
	t.Helper()
	if r.port == 0 {
		r.port = 9000
	}
	if r.idle == 0 {
		r.idle = 1500 * time.Millisecond
	}
	if r.wait == 0 {
		r.wait = time.Duration(r.n)*r.interval + 5*time.Second
	}
	dst := fmt.Sprintf("%s:%d", r.to.Addr, r.port)
	sink := startProbe(t, lab, r.to, "udp-sink", "-addr", dst, "-idle", r.idle.String(),
		"-max", r.wait.String())
	send := startProbe(t, lab, r.from, "udp-send", "-addr", dst, "-n", fmt.Sprint(r.n),
		"-interval", r.interval.String(), "-size", fmt.Sprint(max(r.size, 36)), "-kind", cmp.Or(r.kind, "plain"))
	return func() sinkResult {
		send.wait(t, nil)
		var res sinkResult
		sink.wait(t, &res)
		return res
	}
}
