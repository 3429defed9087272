package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	nfqueue "github.com/florianl/go-nfqueue/v2"
	"github.com/mdlayher/netlink"
)

// A Direction is one way through the censor.
type Direction int

// The two directions; traffic between two clients counts as Up (it comes
// from a client).
const (
	Up   Direction = iota // from a client: NFQUEUE queue 0
	Down                  // from the server: NFQUEUE queue 1
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Queue sizing (see the package doc, "The queue").
const (
	queueMaxLen  = 8192    // packets held by the kernel per queue
	queueReadBuf = 4 << 20 // netlink socket receive buffer, bytes
)

// QueueStats counts what the NFQUEUE handler did in one direction since the
// last SetProfile.
type QueueStats struct {
	Seen, Dropped, Delayed int
}

// handler is the censor's NFQUEUE program, one queue per direction.
type handler struct {
	impairer
	queues [2]*nfqueue.Nfqueue
	cancel context.CancelFunc
}

// impairer decides each packet's fate by an Impairment, per direction; the
// NFQUEUE handler and the in-process Proxy share it.
type impairer struct {
	mu     sync.Mutex // guards the fields below
	impair *Impairment
	dirs   [2]dirState
}

// dirState is one direction's impairment state.
type dirState struct {
	rng   *rand.Rand
	bad   bool // Gilbert–Elliott state
	stats QueueStats
}

// startHandler opens both queues inside the namespace at nsPath.
func startHandler(nsPath string) (*handler, error) {
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("netlab: open censor namespace: %w", err)
	}
	defer ns.Close() // the sockets keep their own reference
	ctx, cancel := context.WithCancel(context.Background())
	h := &handler{cancel: cancel}
	for d := range h.queues {
		q, err := nfqueue.Open(&nfqueue.Config{
			NetNS:        int(ns.Fd()),
			NfQueue:      uint16(d),
			MaxQueueLen:  queueMaxLen,
			Copymode:     nfqueue.NfQnlCopyMeta,
			Flags:        nfqueue.NfQaCfgFlagFailOpen,
			AfFamily:     2, // AF_INET
			WriteTimeout: time.Second,
		})
		if err != nil {
			h.close()
			return nil, fmt.Errorf("netlab: open nfqueue %d: %w", d, err)
		}
		h.queues[d] = q
		if err := q.Con.SetReadBuffer(queueReadBuf); err != nil {
			h.close()
			return nil, fmt.Errorf("netlab: nfqueue read buffer: %w", err)
		}
		_ = q.SetOption(netlink.NoENOBUFS, true)
		dir := Direction(d)
		err = q.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
			h.packet(q, dir, a)
			return 0
		}, func(err error) int {
			if ctx.Err() != nil {
				return 1
			}
			return 0 // keep reading: a lost notification is a failed-open packet
		})
		if err != nil {
			h.close()
			return nil, fmt.Errorf("netlab: register nfqueue %d: %w", d, err)
		}
	}
	return h, nil
}

// setImpairment replaces the impairment and reseeds both directions.
func (h *impairer) setImpairment(imp *Impairment, seed uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.impair = imp
	for d := range h.dirs {
		h.dirs[d] = dirState{rng: rand.New(rand.NewPCG(seed, uint64(d)+1))}
	}
}

func (h *impairer) stats(d Direction) QueueStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dirs[d].stats
}

// packet decides one packet's fate and issues (or schedules) its verdict.
func (h *handler) packet(q *nfqueue.Nfqueue, d Direction, a nfqueue.Attribute) {
	if a.PacketID == nil {
		return
	}
	id := *a.PacketID
	drop, delay := h.decide(d)
	switch {
	case drop:
		_ = q.SetVerdict(id, nfqueue.NfDrop)
	case delay > 0:
		time.AfterFunc(delay, func() { _ = q.SetVerdict(id, nfqueue.NfAccept) })
	default:
		_ = q.SetVerdict(id, nfqueue.NfAccept)
	}
}

func (h *impairer) decide(d Direction) (drop bool, delay time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.dirs[d]
	s.stats.Seen++
	imp := h.impair
	if imp == nil || s.rng == nil {
		return false, 0
	}
	drop = imp.Loss > 0 && s.rng.Float64() < imp.Loss
	if g := imp.Bursty; g != nil {
		// The packet meets the current state's loss, then the state moves.
		keep := g.K
		if s.bad {
			keep = g.H
		}
		if s.rng.Float64() >= keep {
			drop = true
		}
		if s.bad {
			s.bad = s.rng.Float64() >= g.Q
		} else {
			s.bad = s.rng.Float64() < g.P
		}
	}
	if drop {
		s.stats.Dropped++
		return true, 0
	}
	delay = imp.Delay
	if imp.Jitter > 0 {
		delay += time.Duration((2*s.rng.Float64() - 1) * float64(imp.Jitter))
	}
	if delay > 0 {
		s.stats.Delayed++
	}
	return false, max(delay, 0)
}

// close stops reading and closes both sockets. Packets still held are
// dropped by the kernel when their queue goes away.
func (h *handler) close() error {
	h.cancel()
	var errs []error
	for _, q := range h.queues {
		if q != nil {
			errs = append(errs, q.Close())
		}
	}
	return errors.Join(errs...)
}
