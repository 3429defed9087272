package server

import (
	"context"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg          *prometheus.Registry
	connected    prometheus.Gauge
	accepted     prometheus.Counter
	delivered    prometheus.Counter
	liveDropped  prometheus.Counter
	requests     *prometheus.CounterVec
	storeSeconds *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_connected_devices", Help: "Devices with an authenticated connection.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_accepted_total", Help: "Message copies (one per recipient device) accepted and durable (on disk, or on their device).",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_delivered_total", Help: "Message copies acknowledged by their recipient device.",
		}),
		liveDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_live_dropped_total", Help: "Live copies dropped because a connection's queue was full (the message stays in the mailbox).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_requests_total", Help: "Requests answered, by operation and error kind (\"\" for success).",
		}, []string{"op", "kind"}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_store_seconds", Help: "Latency of store operations.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"op"}),
	}
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "parley_messages_queued", Help: "Message copies stored and not yet delivered.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := s.store.CountMessages(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	m.reg.MustRegister(m.connected, m.accepted, m.delivered, m.liveDropped, m.requests, m.storeSeconds, queued,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// registerWritten counts the copies a store wrote to disk, if it tells:
// the sqlite store writes only those not acknowledged within a moment.
func (m *metrics) registerWritten(st Store) {
	w, ok := st.(interface{ Written() uint64 })
	if !ok {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "parley_messages_written_total",
		Help: "Message copies written to the mailbox on disk; the other accepted copies were acknowledged by their device first.",
	}, func() float64 { return float64(w.Written()) }))
}

// timedStore is a Store that records each call's latency.
type timedStore struct {
	Store
	h *prometheus.HistogramVec
}

func (t timedStore) observe(op string, start time.Time) {
	t.h.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t timedStore) CreateAccount(ctx context.Context, a directory.Account, d directory.Device, k directory.Keys) error {
	defer t.observe("create_account", time.Now())
	return t.Store.CreateAccount(ctx, a, d, k)
}

func (t timedStore) AddDevice(ctx context.Context, d directory.Device, k directory.Keys) (parley.DeviceID, error) {
	defer t.observe("add_device", time.Now())
	return t.Store.AddDevice(ctx, d, k)
}

func (t timedStore) Account(ctx context.Context, user parley.UserID) (directory.Account, []directory.Device, error) {
	defer t.observe("account", time.Now())
	return t.Store.Account(ctx, user)
}

func (t timedStore) Device(ctx context.Context, addr parley.Address) (directory.Device, error) {
	defer t.observe("device", time.Now())
	return t.Store.Device(ctx, addr)
}

func (t timedStore) AddKeys(ctx context.Context, addr parley.Address, k directory.Keys) (directory.KeyCounts, error) {
	defer t.observe("add_keys", time.Now())
	return t.Store.AddKeys(ctx, addr, k)
}

func (t timedStore) KeyCounts(ctx context.Context, addr parley.Address) (directory.KeyCounts, error) {
	defer t.observe("key_counts", time.Now())
	return t.Store.KeyCounts(ctx, addr)
}

func (t timedStore) TakeBundles(ctx context.Context, user parley.UserID, device parley.DeviceID) (directory.Account, []directory.Bundle, error) {
	defer t.observe("take_bundles", time.Now())
	return t.Store.TakeBundles(ctx, user, device)
}

func (t timedStore) StartEnqueue(ctx context.Context, envs []parley.Envelope, accepted func(*parley.Envelope) bool) func() (bool, error) {
	start := time.Now()
	wait := t.Store.StartEnqueue(ctx, envs, accepted)
	return func() (bool, error) {
		defer t.observe("enqueue", start)
		return wait()
	}
}

func (t timedStore) Enqueue(ctx context.Context, envs []parley.Envelope) (bool, error) {
	defer t.observe("enqueue", time.Now())
	return t.Store.Enqueue(ctx, envs)
}

func (t timedStore) Mailbox(ctx context.Context, to parley.Address, after uint64, limit int) ([]parley.Envelope, error) {
	defer t.observe("mailbox", time.Now())
	return t.Store.Mailbox(ctx, to, after, limit)
}

func (t timedStore) Ack(ctx context.Context, to parley.Address, seqs []uint64) error {
	defer t.observe("ack", time.Now())
	return t.Store.Ack(ctx, to, seqs)
}

func (t timedStore) Expire(ctx context.Context, before time.Time) (int, error) {
	defer t.observe("expire", time.Now())
	return t.Store.Expire(ctx, before)
}
