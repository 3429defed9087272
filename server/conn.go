package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
	"github.com/parleychat/parley/wire"
	"golang.org/x/sync/errgroup"
)

// conn is one WebSocket connection. Until it authenticates, one goroutine
// (the HTTP handler's) reads and writes. Then run, in a goroutine of its
// own, reads and starts the writer beside it under an errgroup; the helpers
// that answer sends, delete acknowledged messages and wait for pongs run in
// the group only while they have work. An idle connection costs two
// goroutines and no queue storage.
type conn struct {
	s         *Server
	ws        *websocket.Conn
	ip        string // the client's IP, for registration limits
	log       *slog.Logger
	cancel    context.CancelFunc
	challenge [32]byte

	addr    parley.Address // set once authenticated, before the goroutines start
	started bool           // the writer goroutine runs: send through out

	out      queue[[]byte]           // encoded responses and pushes; the reader waits when it is full
	live     queue[*parley.Envelope] // live messages; dropped when full (see overflow)
	overflow atomic.Bool             // a live message was dropped: re-read the mailbox
	acks     workQueue[uint64]       // acknowledged seqs, from the reader to the acker
	acked    chan []uint64           // seqs deleted from the store, from the acker to the writer
	sends    workQueue[pendingSend]  // sends on their way to disk, in order, from the reader to the send helper

	// prev is the older connection of the same device that this one
	// replaced, if any; done is closed once this connection's goroutines
	// have stopped and its acknowledgements are on disk.
	prev    *conn // read by the HTTP handler only
	done    chan struct{}
	unacked atomic.Int32 // deliveries in flight, kept by the writer

	closeOnce sync.Once
}

// closeError ends a connection with a given close code and reason.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed with %d: %s", e.code, e.reason) }

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		http.Error(w, "shutting down", wire.HTTPStatus(parley.KindUnavailable))
		return
	}
	ws, err := websocket.Accept(lazyHijacker{w}, r, nil) // same-origin only, which is what browsers need
	if err != nil {
		s.log.Debug("websocket accept", "err", err)
		return
	}
	ws.SetReadLimit(parley.MaxFrameSize)
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	// The connection outlives the request, whose context (canceled when this
	// handler returns) it would otherwise keep in memory.
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s:      s,
		ws:     ws,
		ip:     ip,
		log:    s.log.With("remote", r.RemoteAddr),
		cancel: cancel,
		out:    newQueue[[]byte](outQueue),
		live:   newQueue[*parley.Envelope](s.cfg.LiveQueue),
		acks:   newWorkQueue[uint64](deliverWindow),
		acked:  make(chan []uint64, 4),
		sends:  newWorkQueue[pendingSend](sendInFlight),
		done:   make(chan struct{}),
	}
	if !s.track(c) {
		cancel()
		ws.Close(websocket.StatusCode(wire.CloseGoingAway), "server shutting down")
		return
	}
	counts, err := c.open(ctx)
	if err != nil {
		c.end(err)
		return
	}
	first, err := c.firstPage(ctx)
	if err != nil {
		c.end(err)
		return
	}
	// The session goes on in goroutines of its own (counted in s.wg by
	// track) and this handler returns: net/http then lets go of the request,
	// and the handler's stack, grown by the signature check and the store,
	// is freed instead of being kept for as long as the device stays idle.
	// For the same reason the writer starts with the mailbox's first page
	// read here: an idle device's writer never calls the store.
	go func() { c.end(c.run(ctx, counts, first)) }()
}

// end closes the connection as err says, once its goroutines have stopped,
// and forgets it.
func (c *conn) end(err error) {
	if c.addr != (parley.Address{}) {
		c.s.endSession(c)
	}
	close(c.done)
	var ce *closeError
	var pe *parley.Error
	switch {
	case errors.As(err, &ce):
		c.closeWith(ce.code, ce.reason)
	case errors.As(err, &pe):
		c.log.Debug("closing", "kind", pe.Kind, "err", err)
		c.closeWith(wire.CloseCode(pe.Kind), pe.Message)
	case websocket.CloseStatus(err) != -1, errors.Is(err, context.Canceled), errors.Is(err, net.ErrClosed):
		c.log.Debug("connection closed", "err", err)
		c.closeNow()
	default:
		c.log.Debug("connection failed", "err", err)
		c.closeNow()
	}
	c.cancel()
	c.s.untrack(c)
}

// lazyHijacker hands websocket.Accept the connection with lazily buffered
// reads (see lazyConn) and a 16-byte bufio.Reader on top, in place of
// net/http's 4 KiB one, which it would keep for as long as the connection
// lasts. Writes keep net/http's bufio.Writer: a frame is written with one
// system call.
type lazyHijacker struct{ http.ResponseWriter }

func (w lazyHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return c, brw, err // bytes read ahead stay where they are (rare)
	}
	lc, ok := lazyReads(c)
	if !ok {
		return c, brw, nil
	}
	return lc, bufio.NewReadWriter(bufio.NewReaderSize(lc, 16), brw.Writer), nil
}

func (w lazyHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeWith closes the connection with a close code and reason (cut to the
// 123 bytes a close frame has room for) and stops its goroutines.
func (c *conn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		if len(reason) > 123 {
			reason = reason[:123]
		}
		c.ws.Close(websocket.StatusCode(code), reason)
		c.cancel()
	})
}

func (c *conn) closeNow() {
	c.closeOnce.Do(func() {
		c.ws.CloseNow()
		c.cancel()
	})
}

// goAway closes the connection because the server is shutting down.
func (c *conn) goAway() { c.closeWith(wire.CloseGoingAway, "server shutting down") }

// open greets the client and answers its requests until it authenticates.
func (c *conn) open(ctx context.Context) (directory.KeyCounts, error) {
	rand.Read(c.challenge[:])
	hello := &wire.Frame{Type: wire.TypePush, Op: wire.OpHello, Body: &wire.Hello{
		Version: wire.ProtocolVersion, Challenge: c.challenge, ServerTime: c.s.now(),
	}}
	if err := c.sendFrame(ctx, hello); err != nil {
		return directory.KeyCounts{}, err
	}
	return c.authenticate(ctx)
}

// run serves an authenticated connection until it ends.
func (c *conn) run(ctx context.Context, counts directory.KeyCounts, first []parley.Envelope) error {
	c.log.Info("session started")

	c.started = true
	if low(counts) {
		c.push(&wire.Frame{Type: wire.TypePush, Op: wire.OpLowKeys, Body: &wire.KeyCounts{
			PreKeys: uint32(counts.PreKeys), KyberPreKeys: uint32(counts.KyberPreKeys),
		}})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.writeLoop(gctx, g, first) })
	// The reader runs in this goroutine, which would otherwise only wait;
	// its error joins the group's as if it had been started with g.Go.
	err := c.readLoop(gctx, g)
	g.Go(func() error { return err })
	return g.Wait()
}

// startSession makes c the connection of its device, closing an older one.
func (s *Server) startSession(c *conn) {
	s.mu.Lock()
	old := s.sessions[c.addr]
	s.sessions[c.addr] = c
	s.mu.Unlock()
	if old != nil {
		c.prev = old
		go old.closeWith(wire.CloseCode(parley.KindConflict), "another connection of this device took over")
	}
	s.metrics.connected.Inc()
}

func (s *Server) endSession(c *conn) {
	s.mu.Lock()
	if s.sessions[c.addr] == c {
		delete(s.sessions, c.addr)
	}
	s.mu.Unlock()
	s.metrics.connected.Dec()
}

func low(k directory.KeyCounts) bool {
	return k.PreKeys < wire.LowKeyThreshold || k.KyberPreKeys < wire.LowKeyThreshold
}

// readFrame reads and decodes one frame. A bad request that can be answered
// by its ID is answered, and readFrame returns nil, nil; other errors end
// the connection.
func (c *conn) readFrame(ctx context.Context) (*wire.Frame, error) {
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, parley.Errorf(parley.KindUnsupported, "text messages are not part of the protocol")
	}
	f, err := wire.DecodeFrame(b)
	if err != nil {
		c.log.Debug("bad frame", "err", err)
		if f != nil && f.Type == wire.TypeRequest && f.ID != 0 {
			return nil, c.respond(ctx, f, nil, err)
		}
		return nil, err
	}
	return f, nil
}

// authenticate answers requests until one Register or Login succeeds.
func (c *conn) authenticate(ctx context.Context) (directory.KeyCounts, error) {
	timeout := time.AfterFunc(c.s.cfg.AuthTimeout, func() {
		c.closeWith(wire.CloseCode(parley.KindUnauthorized), "authentication timed out")
	})
	defer timeout.Stop()
	fails := 0
	for {
		f, err := c.readFrame(ctx)
		if err != nil {
			return directory.KeyCounts{}, err
		}
		if f == nil || f.Type != wire.TypeRequest {
			continue
		}
		var (
			sess *wire.Session
			k    directory.KeyCounts
		)
		switch body := f.Body.(type) {
		case *wire.Register:
			sess, k, err = c.s.register(ctx, c, body)
		case *wire.Login:
			sess, k, err = c.s.login(ctx, c, body)
		default:
			err = parley.Errorf(parley.KindUnauthorized, "%s before Register or Login", f.Op)
		}
		if err != nil {
			if err := c.respond(ctx, f, nil, err); err != nil {
				return directory.KeyCounts{}, err
			}
			if parley.ErrorKind(err) == parley.KindUnauthorized {
				if fails++; fails >= maxAuthTries {
					return directory.KeyCounts{}, parley.Errorf(parley.KindUnauthorized, "too many failed attempts")
				}
			}
			continue
		}
		// Registered for live messages before the client hears of success,
		// so that a newer connection of the device always replaces this one.
		c.addr = parley.Address{User: sess.User, Device: sess.Device}
		c.log = c.log.With("device", c.addr.String())
		c.s.startSession(c)
		return k, c.respond(ctx, f, sess, nil)
	}
}

// readLoop reads and handles requests in order. It starts the send helper
// and the acker in g when they have work and none runs.
func (c *conn) readLoop(ctx context.Context, g *errgroup.Group) error {
	for {
		f, err := c.readFrame(ctx)
		if err != nil {
			return err
		}
		if f == nil {
			continue
		}
		switch f.Type {
		case wire.TypeRequest:
			start := time.Now()
			if m, ok := f.Body.(*wire.Send); ok {
				// Sends are pipelined: checked and queued for the disk here,
				// answered by sendLoop in order once durable.
				p := pendingSend{req: f, finish: c.s.startSend(ctx, c.addr, m), start: start}
				if err := c.sends.add(ctx, g, p, c.sendLoop); err != nil {
					return err
				}
				continue
			}
			body, err := c.handle(ctx, f)
			c.log.Debug("request", "op", f.Op, "kind", kindOrEmpty(err), "took", time.Since(start))
			if err := c.respond(ctx, f, body, err); err != nil {
				return err
			}
		case wire.TypeResponse:
			if f.Op != wire.OpDeliver {
				continue
			}
			if f.Err != nil {
				// Left in the mailbox: it comes again on the next connection.
				c.log.Info("delivery refused", "seq", f.ID, "kind", f.Err.Kind)
				continue
			}
			if err := c.acks.add(ctx, g, f.ID, c.ackLoop); err != nil {
				return err
			}
		}
	}
}

func kindOrEmpty(err error) parley.Kind {
	if err == nil {
		return ""
	}
	return parley.ErrorKind(err)
}

// pendingSend is a Send whose copies are on their way to disk.
type pendingSend struct {
	req    *wire.Frame
	finish func() (any, error)
	start  time.Time
}

// sendInFlight is how many sends of one connection may wait for the disk at
// once; past it the reader stops reading (back-pressure on the client).
const sendInFlight = 256

// sendLoop answers pipelined sends in the order they arrived, each once its
// copies are durable, and returns when none is left. Sends still waiting
// when the connection ends are committed all the same; their client
// retries them, and the store's replay check keeps them single.
func (c *conn) sendLoop(ctx context.Context) error {
	for {
		sends := c.sends.take()
		if sends == nil {
			return nil
		}
		for _, p := range sends {
			body, err := p.finish()
			c.log.Debug("request", "op", p.req.Op, "kind", kindOrEmpty(err), "took", time.Since(p.start))
			if err := c.respond(ctx, p.req, body, err); err != nil {
				return err
			}
			c.sends.done(1)
		}
	}
}

// respond answers a request. body is sent on success, and on a
// KindStaleDevices error when it is a *wire.StaleDevices.
func (c *conn) respond(ctx context.Context, req *wire.Frame, body any, err error) error {
	f := &wire.Frame{Type: wire.TypeResponse, ID: req.ID, Op: req.Op}
	if err != nil {
		f.Err = wire.ErrorFor(err)
		if f.Err.Kind == parley.KindInternal && ctx.Err() == nil {
			c.log.Error("request failed", "op", req.Op, "err", err)
		}
		if sd, ok := body.(*wire.StaleDevices); ok && sd != nil && f.Err.Kind == parley.KindStaleDevices {
			f.Body = sd
		}
	} else {
		f.Body = body
	}
	c.s.metrics.requests.WithLabelValues(req.Op.String(), string(kindOrEmpty(err))).Inc()
	return c.sendFrame(ctx, f)
}

// sendFrame encodes f and sends it: directly before the writer runs, then
// through out.
func (c *conn) sendFrame(ctx context.Context, f *wire.Frame) error {
	b, err := f.MarshalBinary()
	if err != nil {
		c.log.Error("encode", "op", f.Op, "err", err)
		f = &wire.Frame{Type: f.Type, ID: f.ID, Op: f.Op, Err: wire.ErrorFor(err)}
		if b, err = f.MarshalBinary(); err != nil {
			return err
		}
	}
	if !c.started {
		return c.write(ctx, b)
	}
	return c.out.put(ctx, b)
}

// push queues a push from another connection's goroutine. It never waits:
// pushes are advisory, and dropped when the queue is full.
func (c *conn) push(f *wire.Frame) {
	b, err := f.MarshalBinary()
	if err != nil {
		c.log.Error("encode push", "op", f.Op, "err", err)
		return
	}
	c.out.tryPut(b)
}

func (c *conn) write(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// offer hands a newly stored message to the connection for live delivery.
// It never waits; see the queue policy in the package doc.
func (c *conn) offer(e *parley.Envelope) {
	if !c.live.tryPut(e) {
		c.overflow.Store(true)
		c.s.metrics.liveDropped.Inc()
	}
}

// A queue is a bounded FIFO from any goroutine to the writer. Its storage
// is allocated only while items wait, so an idle connection holds none.
type queue[T any] struct {
	room  chan struct{} // a token per waiting item; no storage, whatever its capacity
	ready chan struct{} // capacity 1: signalled when an item is added
	mu    sync.Mutex
	items []T // guarded by mu
}

func newQueue[T any](limit int) queue[T] {
	return queue[T]{room: make(chan struct{}, limit), ready: make(chan struct{}, 1)}
}

// tryPut queues v unless the queue is full.
func (q *queue[T]) tryPut(v T) bool {
	select {
	case q.room <- struct{}{}:
	default:
		return false
	}
	q.add(v)
	return true
}

// put queues v, waiting while the queue is full.
func (q *queue[T]) put(ctx context.Context, v T) error {
	select {
	case q.room <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	q.add(v)
	return nil
}

func (q *queue[T]) add(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take removes and returns the waiting items, oldest first.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.mu.Unlock()
	for range items {
		<-q.room
	}
	return items
}

// A workQueue hands work from the reader to a helper goroutine that runs
// only while there is work: an idle connection holds neither the goroutine
// nor the queue's storage. At most limit items are queued or being worked;
// past that, add waits (back-pressure on the client).
type workQueue[T any] struct {
	room    chan struct{} // a token per item queued or being worked; no storage, whatever its capacity
	mu      sync.Mutex
	items   []T  // guarded by mu
	running bool // guarded by mu: a helper is working items and will take these
}

func newWorkQueue[T any](limit int) workQueue[T] {
	return workQueue[T]{room: make(chan struct{}, limit)}
}

// add queues v, waiting for room, and starts work in g when no helper runs.
func (q *workQueue[T]) add(ctx context.Context, g *errgroup.Group, v T, work func(context.Context) error) error {
	select {
	case q.room <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	q.mu.Lock()
	q.items = append(q.items, v)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		g.Go(func() error { return work(ctx) })
	}
	return nil
}

// take returns the queued items, oldest first, for the helper to work and
// then release with done. When none is queued it returns nil and the
// helper must return: the next add starts another.
func (q *workQueue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	if len(items) == 0 {
		q.running = false
		return nil
	}
	return items
}

// done makes room for n more items.
func (q *workQueue[T]) done(n int) {
	for range n {
		<-q.room
	}
}

// firstPage reads the first mailboxPage messages of the mailbox for the
// writer. It first lets the connection this one replaced put its last
// acknowledgements on disk, so that they are not delivered again; a dead
// one is not waited for long.
func (c *conn) firstPage(ctx context.Context) ([]parley.Envelope, error) {
	if c.prev != nil && c.prev.unacked.Load() > 0 {
		t := time.NewTimer(handoffWait)
		select {
		case <-c.prev.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.prev = nil
	return c.s.store.Mailbox(ctx, c.addr, 0, mailboxPage)
}

// writeLoop owns the socket's writes and the delivery state: it sends
// responses, stored messages (starting with first, the mailbox's first
// page) and live ones, keeping at most deliverWindow messages in flight.
// Every PingInterval it starts a ping in g, which waits for the pong so
// that the writer does not.
func (c *conn) writeLoop(ctx context.Context, g *errgroup.Group, first []parley.Envelope) error {
	var (
		// inflight holds the seqs sent and not yet acknowledged; made on
		// the first delivery.
		inflight map[uint64]struct{}
		// readTo is the highest seq read from the mailbox: every message
		// stored with a seq up to it has been sent or acknowledged.
		readTo  uint64
		behind  = true  // the mailbox may hold messages not yet sent
		drained = false // QueueEmpty was sent
		buf     []byte
	)
	deliver := func(e *parley.Envelope) error {
		f := wire.Frame{Type: wire.TypeRequest, ID: e.ServerSeq, Op: wire.OpDeliver, Body: &wire.Deliver{Envelope: *e}}
		var err error
		if buf, err = f.AppendBinary(buf[:0]); err != nil {
			return err
		}
		if err := c.write(ctx, buf); err != nil {
			return err
		}
		if inflight == nil {
			inflight = make(map[uint64]struct{})
		}
		inflight[e.ServerSeq] = struct{}{}
		c.unacked.Store(int32(len(inflight)))
		return nil
	}
	fresh := true // first stands for the loop's first mailbox read
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		if c.overflow.Swap(false) {
			behind = true
		}
		if behind && len(inflight) < deliverWindow {
			limit := min(mailboxPage, deliverWindow-len(inflight))
			envs := first
			if !fresh {
				var err error
				if envs, err = c.s.store.Mailbox(ctx, c.addr, readTo, limit); err != nil {
					return err
				}
			}
			fresh = false
			for i := range envs {
				readTo = envs[i].ServerSeq
				if _, ok := inflight[readTo]; ok {
					continue
				}
				if err := deliver(&envs[i]); err != nil {
					return err
				}
			}
			if len(envs) < limit {
				behind = false
				if !drained {
					drained = true
					b, _ := (&wire.Frame{Type: wire.TypePush, Op: wire.OpQueueEmpty, Body: &wire.QueueEmpty{}}).MarshalBinary()
					if err := c.write(ctx, b); err != nil {
						return err
					}
				}
			}
			// Serve waiting responses and acknowledgements between pages.
			select {
			case <-c.out.ready:
				for _, b := range c.out.take() {
					if err := c.write(ctx, b); err != nil {
						return err
					}
				}
			case seqs := <-c.acked:
				for _, seq := range seqs {
					delete(inflight, seq)
				}
				c.unacked.Store(int32(len(inflight)))
			default:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.out.ready:
			for _, b := range c.out.take() {
				if err := c.write(ctx, b); err != nil {
					return err
				}
			}
		case <-c.live.ready:
			for _, e := range c.live.take() {
				if c.overflow.Swap(false) {
					behind = true
				}
				if _, ok := inflight[e.ServerSeq]; behind || ok || e.ServerSeq <= readTo {
					continue // the mailbox read has it, or will
				}
				if len(inflight) >= deliverWindow {
					behind = true
					continue
				}
				if err := deliver(e); err != nil {
					return err
				}
			}
		case <-ping.C:
			g.Go(func() error { return c.ping(ctx) })
		case seqs := <-c.acked:
			for _, seq := range seqs {
				delete(inflight, seq)
			}
			c.unacked.Store(int32(len(inflight)))
		}
	}
}

// ackLoop deletes acknowledged messages, many per store call, and then
// tells the writer; it returns when none is left. When the connection ends
// it still deletes what was acknowledged: an acknowledgement read from the
// socket is never dropped.
func (c *conn) ackLoop(ctx context.Context) error {
	for {
		batch := c.acks.take()
		if batch == nil {
			return nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := c.s.store.Ack(fctx, c.addr, batch)
		cancel()
		c.acks.done(len(batch))
		if err != nil {
			if ctx.Err() != nil {
				c.log.Error("ack on close", "err", err)
				return nil
			}
			return err
		}
		c.s.metrics.delivered.Add(float64(len(batch)))
		select {
		case c.acked <- batch:
		case <-ctx.Done():
		}
	}
}

// ping pings the client; no pong within WriteTimeout ends the connection.
func (c *conn) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}
