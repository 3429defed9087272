package load

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/wire"
	"golang.org/x/sync/errgroup"
)

// Config says what to run. Zero values mean the defaults in brackets.
type Config struct {
	Server    string   // base URL of a running parleyd; empty: start Parleyd
	Parleyd   string   // the parleyd binary to start ["parleyd"]
	ServerCPU int      // core to pin a started server to; -1: no pinning
	ServerArg []string // extra flags for a started server
	DataDir   string   // data folder of a started server [a temporary folder]

	Pairs     int           // sender→receiver pairs [100]
	Size      int           // bytes of each message [1024]
	StartRate int           // aggregate messages/s of the first step [1000]
	StepRate  int           // increase per step [1000]
	MaxRate   int           // last step's rate [StartRate]
	Step      time.Duration // length of a step [20s]
	StopP99   time.Duration // stop raising the rate once p99 exceeds this [1s]

	Idle int // idle mode: connect this many devices and report memory
	// Standby mode: this many calls whose tunnel stands by (WebRTC
	// carries their audio); report the server's memory and CPU per call.
	Standby int

	JSON   bool      // one JSON object per step instead of a table
	Out    io.Writer // the report [os.Stdout]
	Logs   io.Writer // a started server's stderr [discarded]
	Prefix string    // username prefix [a random one]
}

func (c *Config) defaults() {
	if c.Parleyd == "" {
		c.Parleyd = "parleyd"
	}
	if c.Pairs <= 0 {
		c.Pairs = 100
	}
	if c.Size < 16 {
		c.Size = 1024
	}
	if c.StartRate <= 0 {
		c.StartRate = 1000
	}
	if c.StepRate <= 0 {
		c.StepRate = 1000
	}
	if c.MaxRate < c.StartRate {
		c.MaxRate = c.StartRate
	}
	if c.Step <= 0 {
		c.Step = 20 * time.Second
	}
	if c.StopP99 <= 0 {
		c.StopP99 = time.Second
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logs == nil {
		c.Logs = io.Discard
	}
	if c.Prefix == "" {
		var b [3]byte
		rand.Read(b[:])
		c.Prefix = fmt.Sprintf("ld%x", b)
	}
}

// StepResult is one step of the throughput mode.
type StepResult struct {
	Pairs      int     `json:"pairs"`
	TargetRate int     `json:"target_rate"`
	Sent       int64   `json:"sent"`      // sends the server acknowledged
	Delivered  int64   `json:"delivered"` // distinct messages delivered
	Rate       float64 `json:"delivered_per_s"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Maxms      float64 `json:"max_ms"`
	// The sender's wait: from the scheduled send time to the server's
	// answer, which comes once the message is durable (on the server's
	// disk, or on the recipient's device).
	AckP50ms   float64 `json:"ack_p50_ms"`
	AckP99ms   float64 `json:"ack_p99_ms"`
	Late       int64   `json:"late"` // acknowledged, not yet delivered 5 s after the step
	Lost       int64   `json:"lost"` // acknowledged, never delivered by the end of the run
	Duplicated int64   `json:"duplicated"`
	SendErrors int64   `json:"send_errors"`
	ServerCPU  float64 `json:"server_cpu_pct"` // of one core; -1 when unknown
	// Written is the share of the step's message copies that the server
	// wrote to disk (the others their recipient acknowledged first), in
	// percent; -1 when the server does not say.
	Written float64 `json:"written_pct"`
}

// IdleResult is the idle mode's answer. The Go figures come from the
// server's /metrics (without a forced collection, so the heap in use
// includes garbage not yet collected); they are 0 when unavailable.
type IdleResult struct {
	Devices        int     `json:"devices"`
	RSSBefore      int64   `json:"rss_before_bytes"`
	RSSAfter       int64   `json:"rss_after_bytes"`
	BytesPerDevice float64 `json:"bytes_per_device"`

	HeapPerDevice       float64 `json:"heap_inuse_bytes_per_device"`
	StackPerDevice      float64 `json:"stack_inuse_bytes_per_device"`
	GoroutinesPerDevice float64 `json:"goroutines_per_device"`
	NextGC              float64 `json:"next_gc_bytes"` // the heap size that starts the next collection
}

// pair is one sender and its receiver, with what each has seen.
type pair struct {
	tx, rx *device

	mu      sync.Mutex      // guards the fields below
	seen    []bool          // delivered, by sequence number
	acked   []bool          // acknowledged by the server, by sequence number
	pending map[uint64]sent // by request ID, until answered
	errs    int64           // sends the server refused
}

// sent is a send not yet answered.
type sent struct {
	seq   uint64
	sched time.Time
}

// stepCounts counts, over the sequence numbers from lo up to hi, what was
// acknowledged, delivered, and acknowledged but not delivered; and how many
// sends are still unanswered or were refused.
func stepCounts(pairs []*pair, lo, hi uint64) (acked, delivered, undelivered, pending, errs int64) {
	for _, p := range pairs {
		p.mu.Lock()
		for i := lo; i < min(hi, uint64(len(p.seen))); i++ {
			a, s := p.acked[i], p.seen[i]
			if a {
				acked++
			}
			if s {
				delivered++
			}
			if a && !s {
				undelivered++
			}
		}
		pending += int64(len(p.pending))
		errs += p.errs
		p.mu.Unlock()
	}
	return
}

// Run runs the throughput mode (or the idle mode when cfg.Idle > 0), writes
// its report to cfg.Out and returns the throughput steps.
func Run(ctx context.Context, cfg Config) ([]StepResult, error) {
	cfg.defaults()
	srv := &proc{url: cfg.Server}
	if cfg.Server == "" {
		dir := cfg.DataDir
		if dir == "" {
			d, err := os.MkdirTemp("", "parley-load-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(d)
			dir = d
		}
		// The load registers its devices from one address in a burst.
		args := append([]string{"--register-every", "1us", "--register-burst", "1000000"}, cfg.ServerArg...)
		p, err := startServer(ctx, cfg.Parleyd, dir, cfg.ServerCPU, args, cfg.Logs)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		srv = p
	}
	if cfg.Idle > 0 {
		r, err := runIdle(ctx, cfg, srv)
		if err != nil {
			return nil, err
		}
		if cfg.JSON {
			return nil, json.NewEncoder(cfg.Out).Encode(r)
		}
		fmt.Fprintf(cfg.Out, "idle devices: %d\nserver RSS before: %.1f MiB, after: %.1f MiB\nper idle connected device: %.1f KiB\n",
			r.Devices, float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.BytesPerDevice/1024)
		fmt.Fprintf(cfg.Out, "  of which Go heap in use: %.1f KiB, goroutine stacks: %.1f KiB, goroutines: %.2f (next GC at %.1f MiB of heap)\n",
			r.HeapPerDevice/1024, r.StackPerDevice/1024, r.GoroutinesPerDevice, r.NextGC/(1<<20))
		return nil, nil
	}
	if cfg.Standby > 0 {
		return nil, runStandby(ctx, cfg, srv)
	}
	return runThroughput(ctx, cfg, srv)
}

// setUp registers n devices, a few at a time, and leaves them connected.
func setUp(ctx context.Context, base, prefix string, n int, progress io.Writer) ([]*device, error) {
	devs := make([]*device, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var done atomic.Int64
	for i := range devs {
		g.Go(func() error {
			d, err := newDevice(fmt.Sprintf("%s-%d", prefix, i), uint32(i%16000+1))
			if err != nil {
				return err
			}
			devs[i] = d
			if err := d.register(gctx, base); err != nil {
				return err
			}
			if k := done.Add(1); k%1000 == 0 && progress != nil {
				fmt.Fprintf(progress, "registered %d/%d devices\n", k, n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(devs)
		return nil, err
	}
	return devs, nil
}

func closeAll(devs []*device) {
	for _, d := range devs {
		if d != nil {
			d.close()
		}
	}
}

func runIdle(ctx context.Context, cfg Config, srv *proc) (*IdleResult, error) {
	if srv.pid == 0 {
		return nil, errors.New("load: idle mode measures the server's memory, so it must start parleyd itself (no --server)")
	}
	devs, err := setUp(ctx, srv.url, cfg.Prefix, cfg.Idle, os.Stderr)
	if err != nil {
		return nil, err
	}
	closeAll(devs)
	// Registration leaves memory behind that logins would reuse and hide;
	// a fresh process on the same data measures connections alone.
	if err := srv.restart(ctx); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)
	before, err := srv.rss()
	if err != nil {
		return nil, err
	}
	gb, gerr := srv.goStats(ctx)
	if err := loginAll(ctx, srv.url, devs, nil); err != nil {
		return nil, err
	}
	defer closeAll(devs)
	time.Sleep(5 * time.Second)
	after, err := srv.rss()
	if err != nil {
		return nil, err
	}
	ga, gerr2 := srv.goStats(ctx)
	n := float64(len(devs))
	r := &IdleResult{Devices: len(devs), RSSBefore: before, RSSAfter: after, BytesPerDevice: float64(after-before) / n}
	if gerr == nil && gerr2 == nil {
		r.HeapPerDevice = (ga.HeapInuse - gb.HeapInuse) / n
		r.StackPerDevice = (ga.StackInuse - gb.StackInuse) / n
		r.GoroutinesPerDevice = (ga.Goroutines - gb.Goroutines) / n
		r.NextGC = ga.NextGC
	}
	return r, nil
}

// loginAll logs devs in, with before (if set) run on each connection
// first, then keeps each connection read (pings, pushes) as a real client
// would. On an error it closes them all.
func loginAll(ctx context.Context, base string, devs []*device, before func(context.Context, *device) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, d := range devs {
		g.Go(func() error {
			if err := d.login(gctx, base); err != nil {
				return err
			}
			if before != nil {
				return before(gctx, d)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(devs)
		return err
	}
	for _, d := range devs {
		go func() {
			for {
				if _, err := d.read(ctx); err != nil {
					return
				}
			}
		}()
	}
	return nil
}

func runThroughput(ctx context.Context, cfg Config, srv *proc) ([]StepResult, error) {
	devs, err := setUp(ctx, srv.url, cfg.Prefix, 2*cfg.Pairs, os.Stderr)
	if err != nil {
		return nil, err
	}
	defer closeAll(devs)
	pairs := make([]*pair, cfg.Pairs)
	for i := range pairs {
		pairs[i] = &pair{tx: devs[2*i], rx: devs[2*i+1]}
	}

	// One reader per device for the whole run: receivers record deliveries
	// and acknowledge them; senders count acknowledgements of their sends.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		ackLat    []time.Duration // the senders' waits
		dups      atomic.Int64
	)
	rctx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	for _, p := range pairs {
		go func() {
			for {
				f, err := p.tx.read(rctx)
				now := time.Now()
				if err != nil {
					return
				}
				if f.Type == wire.TypeResponse && f.Op == wire.OpSend {
					p.mu.Lock()
					s, ok := p.pending[f.ID]
					if ok {
						delete(p.pending, f.ID)
						if f.Err != nil {
							p.errs++
						} else {
							p.acked[s.seq] = true
						}
					}
					p.mu.Unlock()
					if ok && f.Err == nil {
						mu.Lock()
						ackLat = append(ackLat, now.Sub(s.sched))
						mu.Unlock()
					}
				}
			}
		}()
		go func() {
			for {
				f, err := p.rx.read(rctx)
				now := time.Now()
				if err != nil {
					return
				}
				if f.Type != wire.TypeRequest {
					continue
				}
				if f.Op == wire.OpDeliver {
					if d, ok := f.Body.(*wire.Deliver); ok && len(d.Envelope.Content) >= 16 {
						seq := binary.BigEndian.Uint64(d.Envelope.Content)
						sched := time.Unix(0, int64(binary.BigEndian.Uint64(d.Envelope.Content[8:])))
						p.mu.Lock()
						dup := seq < uint64(len(p.seen)) && p.seen[seq]
						if seq < uint64(len(p.seen)) {
							p.seen[seq] = true
						}
						p.mu.Unlock()
						if dup {
							dups.Add(1)
						} else {
							mu.Lock()
							latencies = append(latencies, now.Sub(sched))
							mu.Unlock()
						}
					}
				}
				p.rx.write(rctx, &wire.Frame{Type: wire.TypeResponse, ID: f.ID, Op: f.Op})
			}
		}()
	}

	if !cfg.JSON {
		fmt.Fprintf(cfg.Out, "pairs=%d size=%dB step=%s server=%s\n", cfg.Pairs, cfg.Size, cfg.Step, srv.url)
		fmt.Fprintln(cfg.Out, "(p50, p99, max: scheduled send to delivery; ack: scheduled send to the sender's answer, once durable)")
		fmt.Fprintf(cfg.Out, "%10s %10s %10s %9s %9s %9s %9s %9s %6s %6s %7s %10s %8s\n", "target/s", "sent", "deliv/s", "p50 ms", "p99 ms", "max ms",
			"ack p50", "ack p99", "late", "dups", "errors", "server CPU", "written")
	}
	var results []StepResult
	var best *StepResult
	seqBase := uint64(0)
	var bases []uint64 // each step's first sequence number
	for rate := cfg.StartRate; rate <= cfg.MaxRate; rate += cfg.StepRate {
		perPair := cfg.Step.Seconds() * float64(rate) / float64(cfg.Pairs)
		n := uint64(perPair + 1)
		for _, p := range pairs {
			p.mu.Lock()
			p.seen = slices.Grow(p.seen, int(n))[:seqBase+n]
			p.acked = slices.Grow(p.acked, int(n))[:seqBase+n]
			p.pending = make(map[uint64]sent)
			p.errs = 0
			p.mu.Unlock()
		}
		mu.Lock()
		latencies, ackLat = latencies[:0], ackLat[:0]
		mu.Unlock()
		dups.Store(0)

		cpu0, cpuErr := srv.cpuTime()
		st0, stErr := srv.goStats(ctx)
		t0 := time.Now()
		start := t0.Add(100 * time.Millisecond)
		end := start.Add(cfg.Step)
		interval := time.Duration(float64(time.Second) * float64(cfg.Pairs) / float64(rate))
		var wg sync.WaitGroup
		for i, p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				send(rctx, p, cfg.Size, seqBase, start.Add(interval*time.Duration(i)/time.Duration(cfg.Pairs)), end, interval)
			}()
		}
		wg.Wait()
		// Let what is in flight arrive: every send answered, every
		// acknowledged message delivered, or 5 s.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, _, late, pending, _ := stepCounts(pairs, seqBase, math.MaxUint64); late == 0 && pending == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		cpu1, _ := srv.cpuTime()
		st1, _ := srv.goStats(ctx)

		mu.Lock()
		lat, alat := slices.Clone(latencies), slices.Clone(ackLat)
		mu.Unlock()
		slices.Sort(lat)
		slices.Sort(alat)
		acked, delivered, late, _, errs := stepCounts(pairs, seqBase, math.MaxUint64)
		r := StepResult{
			Pairs: cfg.Pairs, TargetRate: rate,
			Sent: acked, Delivered: delivered,
			Rate:       float64(delivered) / cfg.Step.Seconds(),
			P50ms:      ms(quantile(lat, 0.50)),
			P99ms:      ms(quantile(lat, 0.99)),
			Maxms:      ms(quantile(lat, 1)),
			AckP50ms:   ms(quantile(alat, 0.50)),
			AckP99ms:   ms(quantile(alat, 0.99)),
			Late:       late,
			Duplicated: dups.Load(),
			SendErrors: errs,
			ServerCPU:  -1,
			Written:    -1,
		}
		if stErr == nil && st0.Written >= 0 && st1.Written >= 0 && st1.Accepted > st0.Accepted {
			r.Written = 100 * (st1.Written - st0.Written) / (st1.Accepted - st0.Accepted)
		}
		if cpuErr == nil && srv.pid != 0 {
			r.ServerCPU = 100 * float64(cpu1-cpu0) / float64(elapsed)
		}
		results = append(results, r)
		if !cfg.JSON { // JSON lines come at the end, once lost is known
			written := "-"
			if r.Written >= 0 {
				written = fmt.Sprintf("%.1f%%", r.Written)
			}
			fmt.Fprintf(cfg.Out, "%10d %10d %10.0f %9.1f %9.1f %9.1f %9.1f %9.1f %6d %6d %7d %9.0f%% %8s\n", r.TargetRate, r.Sent, r.Rate, r.P50ms, r.P99ms, r.Maxms,
				r.AckP50ms, r.AckP99ms, r.Late, r.Duplicated, r.SendErrors, r.ServerCPU, written)
		}
		if r.P99ms < 100 && r.Late == 0 && r.SendErrors == 0 && r.Delivered > 0 {
			best = &results[len(results)-1]
		}
		bases = append(bases, seqBase)
		seqBase += n
		if ctx.Err() != nil || time.Duration(r.P99ms*float64(time.Millisecond)) > cfg.StopP99 {
			break
		}
	}
	// What is late is not lost: wait for it, then count what never came.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, late, pending, _ := stepCounts(pairs, 0, math.MaxUint64); late == 0 && pending == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lost, dupsTotal int64
	for i := range results {
		dupsTotal += results[i].Duplicated
		hi := uint64(math.MaxUint64)
		if i+1 < len(bases) {
			hi = bases[i+1]
		}
		_, _, results[i].Lost, _, _ = stepCounts(pairs, bases[i], hi)
		lost += results[i].Lost
	}
	if cfg.JSON {
		enc := json.NewEncoder(cfg.Out)
		for _, r := range results {
			enc.Encode(r)
		}
	} else {
		fmt.Fprintf(cfg.Out, "after the run: %d lost (acknowledged, never delivered), %d duplicated\n", lost, dupsTotal)
		if best != nil {
			fmt.Fprintf(cfg.Out, "highest rate with p99 < 100 ms and nothing late or lost: %.0f msg/s (target %d, p99 %.1f ms)\n", best.Rate, best.TargetRate, best.P99ms)
		} else {
			fmt.Fprintln(cfg.Out, "no step had p99 < 100 ms with nothing late or lost")
		}
	}
	return results, ctx.Err()
}

// send sends one pair's messages of a step on their schedule: the k-th at
// first + k*interval, until end. A late send keeps its scheduled time, so
// its latency includes the wait.
func send(ctx context.Context, p *pair, size int, seqBase uint64, first, end time.Time, interval time.Duration) {
	content := make([]byte, size)
	rand.Read(content)
	seq := seqBase
	for sched := first; sched.Before(end); sched = sched.Add(interval) {
		if d := time.Until(sched); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		c := slices.Clone(content)
		binary.BigEndian.PutUint64(c, seq)
		binary.BigEndian.PutUint64(c[8:], uint64(sched.UnixNano()))
		seq++
		id := p.tx.nextID.Add(1)
		p.mu.Lock()
		p.pending[id] = sent{seq - 1, sched}
		p.mu.Unlock()
		err := p.tx.write(ctx, &wire.Frame{Type: wire.TypeRequest, ID: id, Op: wire.OpSend, Body: &wire.Send{
			To: p.rx.user, ID: parley.NewMessageID(), SentAt: sched,
			Messages: []wire.OutgoingMessage{{Device: p.rx.id, RegistrationID: p.rx.regID, Type: parley.EnvelopeSignal, Content: c}},
		}})
		if err != nil {
			return
		}
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
