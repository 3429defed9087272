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
)

// conn is one WebSocket connection. Until it authenticates, one goroutine
// (the HTTP handler's) reads and writes. Then each of its goroutines runs
// only while it has work: the reader while the client sends (between
// messages it parks, see poller); the writer while responses, pushes,
// deliveries or acknowledgements wait; the helpers that answer sends and
// delete acknowledged messages while those wait; and a ping, started by a
// timer, until its pong. The first error of any ends the session. An idle
// connection costs no goroutine, no buffer and no queue storage.
type conn struct {
	s         *Server
	ws        *websocket.Conn
	lazy      *lazyConn // ws's connection, when it is one; else nil
	ip        string    // the client's IP, for registration limits
	log       *slog.Logger
	cancel    context.CancelFunc
	challenge [32]byte
	// auth, until the connection authenticates, counts the bytes read
	// against its deadline (see authDeadline).
	auth *authDeadline

	addr    parley.Address // set once authenticated, before the goroutines start
	started bool           // the session runs: send through out and the writer

	out      queue[[]byte]           // encoded responses and pushes; the reader waits when it is full
	live     queue[*parley.Envelope] // live messages; dropped when full (see overflow)
	overflow atomic.Bool             // a live message was dropped: re-read the mailbox
	acks     queue[uint64]           // acknowledged seqs, from the reader to the acker
	sends    queue[pendingSend]      // sends on their way to disk, in order, from the reader to the send helper

	// mu guards the fields below: which helpers run, and the seqs the
	// acker deleted, for the writer.
	mu      sync.Mutex
	writing bool     // the writer runs and will see what is queued
	acking  bool     // the acker runs and will take what acks holds
	sending bool     // the send helper runs and will take what sends holds
	stopped bool     // the session is ending: no helper may start
	acked   []uint64 // seqs deleted from the store, for the writer
	// writer starts the writer; set by start, it holds its ctx.
	writer func()
	// reader starts the reader again; set by start, it holds its ctx.
	reader func()
	// The reader parks between messages (see poller): parkID is its
	// socket's id in the poller (guarded by the poller's mu); stopReads
	// keeps it from parking once the session ends.
	parkID    int32
	stopReads atomic.Bool

	// The session's helpers, and the error that ended it.
	helpers sync.WaitGroup
	errOnce sync.Once
	err     error
	ping    *time.Timer // starts a ping PingInterval after the last pong; set under mu

	// The delivery state, kept by the writer (one at a time; each one
	// starts after the last has stopped, under mu).
	inflight map[uint64]struct{} // seqs sent, not yet acknowledged; nil when none
	readTo   uint64              // the highest seq read from the mailbox
	behind   bool                // the mailbox may hold messages not yet sent
	drained  bool                // QueueEmpty was sent
	first    []parley.Envelope   // the mailbox's first page, read by the handler
	fresh    bool                // first stands for the next mailbox read

	// prev is the older connection of the same device that this one
	// replaced, if any; done is closed once this connection's goroutines
	// have stopped and its acknowledgements are on disk.
	prev    *conn // read by the HTTP handler only
	done    chan struct{}
	unacked atomic.Int32 // deliveries in flight, kept by the writer

	closeOnce sync.Once
}

// parkAfter is how long a reader waits for its client's next message
// before it parks.
const parkAfter = 200 * time.Millisecond

// errParked is readLoop's answer when it parked the connection.
var errParked = errors.New("parked until the client sends")

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
	h := &lazyHijacker{ResponseWriter: w}
	ws, err := websocket.Accept(h, r, nil) // same-origin only, which is what browsers need
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
		lazy:   h.lc,
		ip:     ip,
		log:    s.log.With("remote", r.RemoteAddr),
		cancel: cancel,
		out:    queue[[]byte]{limit: outQueue},
		live:   queue[*parley.Envelope]{limit: s.cfg.LiveQueue},
		acks:   queue[uint64]{limit: deliverWindow},
		sends:  queue[pendingSend]{limit: sendInFlight},
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
	c.start(ctx, counts, first)
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
// reads (see lazyConn) and a 16-byte bufio.Reader on top, and writes
// through a 16-byte bufio.Writer over a frameWriter, in place of net/http's
// 4 KiB reader and writer, which it would keep for as long as the
// connection lasts. A frame is still written with one system call.
type lazyHijacker struct {
	http.ResponseWriter
	lc *lazyConn // set by Hijack when the connection is one
}

func (w *lazyHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return c, brw, err // bytes read ahead stay where they are (rare)
	}
	lc, ok := lazyReads(c)
	if !ok {
		return c, brw, nil
	}
	// The response's head may still wait in net/http's writer.
	if err := brw.Writer.Flush(); err != nil {
		c.Close()
		return nil, nil, err
	}
	w.lc = lc
	return lc, bufio.NewReadWriter(bufio.NewReaderSize(lc, 16), newFrameWriter(c)), nil
}

func (w *lazyHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
		if c.lazy != nil {
			c.lazy.nonblock.Store(false)         // Close waits for the client's close frame
			c.lazy.SetWriteDeadline(time.Time{}) // set by fail; Close has its own limit
		}
		c.ws.Close(websocket.StatusCode(code), reason)
		c.cancel()
		c.stopReading()
	})
}

func (c *conn) closeNow() {
	c.closeOnce.Do(func() {
		c.ws.CloseNow()
		c.cancel()
		c.stopReading()
	})
}

// stopReading keeps the reader from parking and resumes it if it is
// parked, for it to see that the session ends.
func (c *conn) stopReading() {
	c.stopReads.Store(true)
	c.s.poller.unpark(c)
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

// start serves an authenticated connection until it ends, in goroutines
// that run only while they have work (see conn): the reader until the
// client has nothing more to say, when it parks (see poller); the writer,
// the helpers and pings. The first error of any of them ends the session.
func (c *conn) start(ctx context.Context, counts directory.KeyCounts, first []parley.Envelope) {
	c.log.Info("session started")

	c.writer = func() { c.startHelper(ctx, c.writeLoop) }
	c.reader = func() { go c.read(ctx) }
	c.first, c.fresh, c.behind = first, true, true
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	if low(counts) {
		c.push(&wire.Frame{Type: wire.TypePush, Op: wire.OpLowKeys, Body: &wire.KeyCounts{
			PreKeys: uint32(counts.PreKeys), KyberPreKeys: uint32(counts.KyberPreKeys),
		}})
	}
	c.wake()    // to send the first page and QueueEmpty
	c.mu.Lock() // the timer's function reads c.ping
	c.ping = time.AfterFunc(c.s.cfg.PingInterval, func() { c.startHelper(ctx, c.pingOnce) })
	c.mu.Unlock()
	if c.lazy != nil {
		c.lazy.nonblock.Store(true) // see readLoop
	}
	go c.read(ctx)
}

// read runs the reader until it parks, or until the session ends: then,
// once the other goroutines have stopped, it ends the connection.
func (c *conn) read(ctx context.Context) {
	err := c.readLoop(ctx)
	if err == errParked {
		return
	}
	c.fail(err)
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.helpers.Wait()
	c.ping.Stop() // after the last ping, which rearms it
	c.end(c.err)
}

// resume starts the reader of a parked connection again.
func (c *conn) resume() { c.reader() }

// fail ends the session with err, unless it ended already: the first
// error is the session's, and canceling its context stops the others.
func (c *conn) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.cancel()
		c.stopReading()
		// Neither a reader waiting for the rest of a frame nor a write
		// watches the context (see readFrame and write): end them. The
		// close frame can still be written (see closeWith).
		if c.lazy != nil {
			if tc, ok := c.lazy.Conn.(*net.TCPConn); ok {
				tc.CloseRead()
			}
			c.lazy.SetWriteDeadline(time.Unix(1, 0))
		}
	})
}

// startHelper runs f in a goroutine of the session, unless the session is
// ending. An error from f ends the session.
func (c *conn) startHelper(ctx context.Context, f func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.helpers.Add(1)
	go func() {
		defer c.helpers.Done()
		if err := f(ctx); err != nil {
			c.fail(err)
		}
	}()
}

// wake makes sure that the writer runs to see what was just queued.
func (c *conn) wake() {
	c.mu.Lock()
	start := c.started && !c.writing && !c.stopped
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		c.writer()
	}
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
	rctx := ctx
	if c.lazy != nil && c.lazy.nonblock.Load() {
		// Between messages such a read does not wait (or waits up to
		// parkAfter, see lazyConn.wait), and fail shuts the socket's reading
		// side to end one waiting for the rest of a frame: the session's
		// context would cost the WebSocket an AfterFunc (and its
		// allocations) for every frame header and payload read.
		rctx = context.Background()
	}
	typ, r, err := c.ws.Reader(rctx)
	if err != nil {
		return nil, err
	}
	if c.auth != nil {
		r = progressReader{r, c.auth}
	}
	buf := readMessageBufs.Get().(*[]byte)
	defer putReadMessageBuf(buf)
	b, err := readMessage((*buf)[:0], r)
	*buf = b
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, parley.Errorf(parley.KindUnsupported, "text messages are not part of the protocol")
	}
	f, err := wire.DecodeFrame(b) // copies what it keeps: b is reused
	if err != nil {
		c.log.Debug("bad frame", "err", err)
		if f != nil && f.Type == wire.TypeRequest && f.ID != 0 {
			return nil, c.respond(ctx, f, nil, err)
		}
		return nil, err
	}
	return f, nil
}

// authenticate answers requests until one Register or Login succeeds,
// within the auth deadline.
func (c *conn) authenticate(ctx context.Context) (directory.KeyCounts, error) {
	c.auth = startAuthDeadline(c.s.cfg.AuthTimeout, func() {
		// Not a refusal: on a slow or lossy link, trying again may well work.
		c.closeWith(wire.CloseCode(parley.KindUnavailable), "authentication timed out")
	})
	defer func() { c.auth.stop(); c.auth = nil }()
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
// and the acker when they have work and none runs. When the client has
// sent nothing more (its socket is in non-blocking mode, see lazyConn), it
// parks the connection and returns errParked.
func (c *conn) readLoop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Between messages, wait for the next one first: trying a read
		// that finds nothing and then waiting costs one system call more
		// per message.
		if c.lazy != nil && c.lazy.nonblock.Load() && !c.lazy.wait(parkAfter) && ctx.Err() == nil {
			if c.s.poller.park(c) {
				return errParked
			}
			c.lazy.nonblock.Store(false) // wait here from now on
			continue
		}
		f, err := c.readFrame(ctx)
		if errors.Is(err, errWouldBlock) {
			// A busy client's next message is likely to come soon: wait a
			// little before parking, which costs system calls and a new
			// goroutine per message.
			if c.lazy.wait(parkAfter) {
				continue
			}
			if c.s.poller.park(c) {
				return errParked
			}
			c.lazy.nonblock.Store(false) // wait here from now on
			continue
		}
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
				if err := c.sends.put(ctx, p); err != nil {
					return err
				}
				c.startWork(ctx, &c.sending, c.sendLoop)
				continue
			}
			body, err := c.handle(ctx, f)
			c.logRequest(ctx, f.Op, err, start)
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
			if err := c.acks.put(ctx, f.ID); err != nil {
				return err
			}
			c.startWork(ctx, &c.acking, c.ackLoop)
		}
	}
}

// logRequest logs an answered request at debug level. The check comes
// first: boxing the attributes would allocate for every message even when
// debug logs are off.
func (c *conn) logRequest(ctx context.Context, op wire.Op, err error, start time.Time) {
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("request", "op", op, "kind", kindOrEmpty(err), "took", time.Since(start))
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

// startWork starts a helper, the acker or the send helper, unless it runs
// (*running, guarded by mu): it takes what the reader queued up to when it
// finds nothing left (see more).
func (c *conn) startWork(ctx context.Context, running *bool, work func(context.Context) error) {
	c.mu.Lock()
	start := !*running
	*running = true
	c.mu.Unlock()
	if start {
		c.startHelper(ctx, work)
	}
}

// more returns what q holds for the helper whose running flag is *running
// (guarded by mu), or nil, and then the helper must return: the next item
// queued starts another.
func more[T any](c *conn, q *queue[T], running *bool) []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	items := q.take()
	if len(items) == 0 {
		*running = false
	}
	return items
}

// sendLoop answers pipelined sends in the order they arrived, each once its
// copies are durable, and returns when none is left. Sends still waiting
// when the connection ends are committed all the same; their client
// retries them, and the store's replay check keeps them single.
func (c *conn) sendLoop(ctx context.Context) error {
	for {
		sends := more(c, &c.sends, &c.sending)
		if sends == nil {
			return nil
		}
		for _, p := range sends {
			body, err := p.finish()
			c.logRequest(ctx, p.req.Op, err, p.start)
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
	if err := c.out.put(ctx, b); err != nil {
		return err
	}
	c.wake()
	return nil
}

// push queues a push from another connection's goroutine. It never waits:
// pushes are advisory, and dropped when the queue is full.
func (c *conn) push(f *wire.Frame) {
	b, err := f.MarshalBinary()
	if err != nil {
		c.log.Error("encode push", "op", f.Op, "err", err)
		return
	}
	if c.out.tryPut(b) {
		c.wake()
	}
}

func (c *conn) write(ctx context.Context, b []byte) error {
	if c.lazy == nil {
		ctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
		defer cancel()
		if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	}
	// The time limit is a deadline on the socket, cleared after the write:
	// a context with a timeout would cost a timer, two contexts and the
	// WebSocket's AfterFunc for every frame. When the session fails, fail
	// moves the deadline to the past to end a write in progress.
	if err := ctx.Err(); err != nil {
		return err
	}
	c.lazy.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	err := c.ws.Write(context.Background(), websocket.MessageBinary, b)
	c.lazy.SetWriteDeadline(time.Time{})
	if err != nil {
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
	c.wake()
}

// A queue is a bounded FIFO between two goroutines of a connection. It
// holds no storage while empty, and no channel unless a goroutine waits
// for room: an idle connection's queues are a few words each.
type queue[T any] struct {
	limit int // items queued or being worked at once

	mu    sync.Mutex
	items []T           // guarded by mu
	held  int           // guarded by mu: items queued or being worked
	room  chan struct{} // guarded by mu: made by a goroutine waiting for room, closed when there is some
}

// tryPut queues v unless the queue is full.
func (q *queue[T]) tryPut(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held >= q.limit {
		return false
	}
	q.held++
	q.items = append(q.items, v)
	return true
}

// put queues v, waiting while the queue is full.
func (q *queue[T]) put(ctx context.Context, v T) error {
	for {
		q.mu.Lock()
		if q.held < q.limit {
			q.held++
			q.items = append(q.items, v)
			q.mu.Unlock()
			return nil
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take removes and returns the waiting items, oldest first. They still
// count against the limit until done.
func (q *queue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// empty reports whether no item waits.
func (q *queue[T]) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) == 0
}

// done makes room for n more items.
func (q *queue[T]) done(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held -= n
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// takeAll is take followed by done: the items no longer count.
func (q *queue[T]) takeAll() []T {
	items := q.take()
	if len(items) > 0 {
		q.done(len(items))
	}
	return items
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
// responses and pushes, stored messages (starting with the mailbox's first
// page, read by the handler) and live ones, keeping at most deliverWindow
// messages in flight. It returns once nothing is left to do; the next
// thing queued starts it again (see wake).
func (c *conn) writeLoop(ctx context.Context) error {
	var buf []byte // encoded Deliver requests
	deliver := func(e *parley.Envelope) error {
		f := wire.Frame{Type: wire.TypeRequest, ID: e.ServerSeq, Op: wire.OpDeliver, Body: &wire.Deliver{Envelope: *e}}
		var err error
		if buf, err = f.AppendBinary(buf[:0]); err != nil {
			return err
		}
		if err := c.write(ctx, buf); err != nil {
			return err
		}
		if c.inflight == nil {
			c.inflight = make(map[uint64]struct{})
		}
		c.inflight[e.ServerSeq] = struct{}{}
		c.unacked.Store(int32(len(c.inflight)))
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		acked := c.acked
		c.acked = nil
		c.mu.Unlock()
		for _, seq := range acked {
			delete(c.inflight, seq)
		}
		if len(c.inflight) == 0 {
			c.inflight = nil // a map keeps its size: let an idle connection's go
		}
		c.unacked.Store(int32(len(c.inflight)))
		if c.overflow.Swap(false) {
			c.behind = true
		}
		if c.behind && len(c.inflight) < deliverWindow {
			limit := min(mailboxPage, deliverWindow-len(c.inflight))
			envs := c.first
			if !c.fresh {
				var err error
				if envs, err = c.s.store.Mailbox(ctx, c.addr, c.readTo, limit); err != nil {
					return err
				}
			}
			c.first, c.fresh = nil, false
			for i := range envs {
				c.readTo = envs[i].ServerSeq
				if _, ok := c.inflight[c.readTo]; ok {
					continue
				}
				if err := deliver(&envs[i]); err != nil {
					return err
				}
			}
			if len(envs) < limit {
				c.behind = false
				if !c.drained {
					c.drained = true
					b, _ := (&wire.Frame{Type: wire.TypePush, Op: wire.OpQueueEmpty, Body: &wire.QueueEmpty{}}).MarshalBinary()
					if err := c.write(ctx, b); err != nil {
						return err
					}
				}
			}
		}
		// Then what waited meanwhile, between pages.
		for _, b := range c.out.takeAll() {
			if err := c.write(ctx, b); err != nil {
				return err
			}
		}
		for _, e := range c.live.takeAll() {
			if c.overflow.Swap(false) {
				c.behind = true
			}
			if _, ok := c.inflight[e.ServerSeq]; c.behind || ok || e.ServerSeq <= c.readTo {
				continue // the mailbox read has it, or will
			}
			if len(c.inflight) >= deliverWindow {
				c.behind = true
				continue
			}
			if err := deliver(e); err != nil {
				return err
			}
		}
		// Nothing more to send until something is queued (or, when the
		// window is full, acknowledged): stop, unless it was just now.
		if c.behind && len(c.inflight) < deliverWindow {
			continue
		}
		c.mu.Lock()
		idle := len(c.acked) == 0 && c.out.empty() && c.live.empty() && !c.overflow.Load()
		if idle {
			c.writing = false
		}
		c.mu.Unlock()
		if idle {
			return nil
		}
	}
}

// ackLoop deletes acknowledged messages, many per store call, and then
// tells the writer; it returns when none is left. When the connection ends
// it still deletes what was acknowledged: an acknowledgement read from the
// socket is never dropped.
func (c *conn) ackLoop(ctx context.Context) error {
	for {
		batch := more(c, &c.acks, &c.acking)
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
		c.mu.Lock()
		c.acked = append(c.acked, batch...)
		c.mu.Unlock()
		c.wake()
	}
}

// pingOnce pings the client, and arms the timer for the next ping once the
// pong is in; no pong within WriteTimeout ends the connection.
func (c *conn) pingOnce(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("ping: %w", err)
	}
	c.ping.Reset(c.s.cfg.PingInterval)
	return nil
}
