package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/wire"
	"golang.org/x/sync/errgroup"
)

// StandbyResult is the standby mode's answer: what calls cost the server
// whose tunnel stands by beside WebRTC, which carries their audio (every
// call that races the tiers, package call's Config.Fallback, and every
// call of the web client). Each side's tunnel.Session is held and sends
// nothing, so its Link stands by (tunnel.Link.SetIdle): its carriers, a
// WebTransport session and a WebSocket spare, are pinged once a second.
type StandbyResult struct {
	Calls    int            `json:"calls"`
	Carriers map[string]int `json:"carriers"` // the sides' active carriers, by kind

	RSSBefore    int64   `json:"rss_before_bytes"` // the devices connected, no tunnel open
	RSSAfter     int64   `json:"rss_after_bytes"`
	BytesPerCall float64 `json:"bytes_per_call"`

	HeapPerCall       float64 `json:"heap_inuse_bytes_per_call"`
	StackPerCall      float64 `json:"stack_inuse_bytes_per_call"`
	GoroutinesPerCall float64 `json:"goroutines_per_call"`

	CPUBefore  float64 `json:"server_cpu_pct_before"` // of one core, over Config.Step
	CPUAfter   float64 `json:"server_cpu_pct_after"`
	CPUPerCall float64 `json:"server_cpu_pct_per_call"`
}

// runStandby registers two devices per call, restarts the server (as the
// idle mode does, so that registration's garbage hides nothing), logs
// them in with a tunnel ticket each, measures the server, opens each
// call's tunnel on both sides and holds it, and measures again.
func runStandby(ctx context.Context, cfg Config, srv *proc) error {
	if srv.pid == 0 {
		return errors.New("load: standby mode measures the server, so it must start parleyd itself (no --server)")
	}
	devs, err := setUp(ctx, srv.url, cfg.Prefix, 2*cfg.Standby, os.Stderr)
	if err != nil {
		return err
	}
	closeAll(devs)
	if err := srv.restart(ctx); err != nil {
		return err
	}
	tickets := make(map[*device]*tunnel.Ticket, len(devs))
	var mu sync.Mutex
	err = loginAll(ctx, srv.url, devs, func(ctx context.Context, d *device) error {
		f, err := d.call(ctx, wire.OpTunnelTicket, &wire.GetTunnelTicket{})
		if err != nil {
			return fmt.Errorf("a tunnel ticket for %s: %w", d.user, err)
		}
		t, err := client.TunnelTicketOf(f, srv.url, time.Now())
		mu.Lock()
		tickets[d] = t
		mu.Unlock()
		return err
	})
	if err != nil {
		return err
	}
	defer closeAll(devs)
	time.Sleep(2 * time.Second)
	r := &StandbyResult{Calls: cfg.Standby, Carriers: map[string]int{}}
	gb, gerr := srv.goStats(ctx)
	if r.RSSBefore, err = srv.rss(); err != nil {
		return err
	}
	if r.CPUBefore, err = serverCPU(ctx, srv, cfg.Step); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "opening %d calls' tunnels\n", cfg.Standby)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sessions := make([]*tunnel.Session, len(devs))
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Close()
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range cfg.Standby {
		g.Go(func() error {
			id := make([]byte, 16)
			shares := make([]byte, 64)
			rand.Read(id)
			rand.Read(shares)
			keys, err := tunnel.DeriveKeys(shares[:32], shares[32:], hex.EncodeToString(id))
			if err != nil {
				return err
			}
			for side, d := range []*device{devs[2*i], devs[2*i+1]} {
				t := tickets[d]
				s, err := tunnel.OpenSession(gctx, tunnel.SessionConfig{
					Keys: keys, Caller: side == 0,
					Link: tunnel.LinkConfig{Ticket: func(context.Context) (*tunnel.Ticket, error) { return t, nil }, Dial: tunnel.DefaultDial},
				})
				if err != nil {
					return fmt.Errorf("opening a tunnel for %s: %w", d.user, err)
				}
				s.Hold() // WebRTC carries the call
				sessions[2*i+side] = s
				go s.Run(sctx)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	time.Sleep(5 * time.Second) // the spares open, the links stand by
	for _, s := range sessions {
		r.Carriers[s.Path()]++
	}
	ga, gerr2 := srv.goStats(ctx)
	if r.RSSAfter, err = srv.rss(); err != nil {
		return err
	}
	if r.CPUAfter, err = serverCPU(ctx, srv, cfg.Step); err != nil {
		return err
	}
	n := float64(r.Calls)
	r.BytesPerCall = float64(r.RSSAfter-r.RSSBefore) / n
	r.CPUPerCall = (r.CPUAfter - r.CPUBefore) / n
	if gerr == nil && gerr2 == nil {
		r.HeapPerCall = (ga.HeapInuse - gb.HeapInuse) / n
		r.StackPerCall = (ga.StackInuse - gb.StackInuse) / n
		r.GoroutinesPerCall = (ga.Goroutines - gb.Goroutines) / n
	}
	if cfg.JSON {
		return json.NewEncoder(cfg.Out).Encode(r)
	}
	fmt.Fprintf(cfg.Out, "calls standing by in the tunnel: %d (the sides' active carriers: %v)\n", r.Calls, r.Carriers)
	fmt.Fprintf(cfg.Out, "server RSS before: %.1f MiB, after: %.1f MiB; per call: %.1f KiB\n",
		float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.BytesPerCall/1024)
	fmt.Fprintf(cfg.Out, "  of which Go heap in use: %.1f KiB, goroutine stacks: %.1f KiB, goroutines: %.1f\n",
		r.HeapPerCall/1024, r.StackPerCall/1024, r.GoroutinesPerCall)
	fmt.Fprintf(cfg.Out, "server CPU (of one core) before: %.2f%%, after: %.2f%%; per call: %.4f%% (%.0f µs a second)\n",
		r.CPUBefore, r.CPUAfter, r.CPUPerCall, r.CPUPerCall*1e4)
	return nil
}

// serverCPU is the server's CPU over d, in % of one core.
func serverCPU(ctx context.Context, srv *proc, d time.Duration) (float64, error) {
	t0, err := srv.cpuTime()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	t1, err := srv.cpuTime()
	if err != nil {
		return 0, err
	}
	return 100 * float64(t1-t0) / float64(time.Since(start)), nil
}
