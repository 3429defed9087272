package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/wire"
)

// Queue sizes of one connection. Both apply back-pressure: a full queue
// blocks its producer (and so, in the end, the server's writes to us); no
// frame is dropped.
const (
	sendQueue    = 64 // frames waiting for the writer
	deliverQueue = 32 // Deliver requests (and QueueEmpty, kept in order) waiting to be decrypted and stored
)

// requestTimeout bounds one request's round trip.
const requestTimeout = 30 * time.Second

// slowestUpload is the slowest link, in bytes a second, on which uploading
// prekeys (some 170 KB at registration) still gets an answer in time; the
// server's auth deadline waits for the same rate.
const slowestUpload = 2 << 10

// timeoutFor is requestTimeout, plus, for a request that carries prekeys,
// the time its upload takes at slowestUpload.
func timeoutFor(f *wire.Frame) time.Duration {
	switch f.Body.(type) {
	case *wire.Register, *wire.UploadKeys:
		if b, err := f.MarshalBinary(); err == nil {
			return requestTimeout + time.Duration(len(b))*time.Second/slowestUpload
		}
	}
	return requestTimeout
}

// dial connects and reads the server's Hello.
func (c *Client) dial(ctx context.Context, server string) (Conn, *wire.Hello, error) {
	conn, err := c.dialer.Dial(ctx, server)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	f, err := conn.ReadFrame(rctx)
	if err != nil {
		conn.Close()
		return nil, nil, parley.Errorf(parley.KindUnavailable, "server at %s: reading hello: %w", server, err)
	}
	h, ok := f.Body.(*wire.Hello)
	if f.Type != wire.TypePush || f.Op != wire.OpHello || !ok {
		conn.Close()
		return nil, nil, parley.Errorf(parley.KindUnsupported, "server at %s did not say hello", server)
	}
	if h.Version != wire.ProtocolVersion {
		conn.Close()
		return nil, nil, parley.Errorf(parley.KindUnsupported, "server speaks protocol version %d, this client %d", h.Version, wire.ProtocolVersion)
	}
	return conn, h, nil
}

// handshake sends Register or Login as the connection's first request and
// reads its answer.
func handshake(ctx context.Context, conn Conn, op wire.Op, body any) (*wire.Session, error) {
	f := &wire.Frame{Type: wire.TypeRequest, ID: 1, Op: op, Body: body}
	timeout := timeoutFor(f)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := conn.WriteFrame(ctx, f); err != nil {
		return nil, parley.Errorf(parley.KindUnavailable, "connection lost: %w", err)
	}
	for {
		f, err := conn.ReadFrame(ctx)
		if err != nil {
			var pe *parley.Error
			switch {
			case errors.As(err, &pe):
				return nil, err
			case ctx.Err() != nil:
				return nil, parley.Errorf(parley.KindUnavailable, "the server did not answer within %v: %w", timeout, err)
			}
			return nil, parley.Errorf(parley.KindUnavailable, "connection lost: %w", err)
		}
		if f.Type != wire.TypeResponse || f.ID != 1 {
			continue // nothing else is expected before the answer
		}
		if f.Err != nil {
			return nil, f.Err
		}
		s, ok := f.Body.(*wire.Session)
		if !ok {
			return nil, parley.Errorf(parley.KindUnsupported, "odd answer to %v: %T", op, f.Body)
		}
		return s, nil
	}
}

// conflictBackoff is the least wait before reconnecting after another
// connection of this device took over.
const conflictBackoff = 3 * time.Second

// Run keeps the client connected until ctx is done: it logs in, sends the
// outbox, receives messages and tops up prekeys, and after a lost connection
// reconnects with exponential backoff. It returns ctx's error, or an error
// that retrying cannot fix (not registered, authentication refused).
func (c *Client) Run(ctx context.Context) error {
	if _, _, err := c.account(); err != nil {
		return err
	}
	c.running.Add(1)
	defer c.running.Add(-1)
	backoff := c.minBO
	for {
		connected, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.emit(Event{Type: EventDisconnected, Err: err})
		// Refused credentials or an incompatible server: retrying cannot help.
		k := parley.ErrorKind(err)
		if k == parley.KindUnauthorized || k == parley.KindUnsupported {
			return err
		}
		switch {
		case k == parley.KindConflict:
			// Another program on this folder connected as this device and
			// took over (say, 'parley send' beside a running chat). Let it
			// finish before taking the connection back.
			backoff = max(backoff, conflictBackoff)
		case connected:
			backoff = c.minBO
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.log.Info("disconnected", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.maxBO)
	}
}

// session is one authenticated connection.
type session struct {
	c    *Client
	conn Conn
	out  chan *wire.Frame
	done <-chan struct{} // closed when the connection is going away

	mu      sync.Mutex // guards nextID and pending
	nextID  uint64
	pending map[uint64]pendingRequest

	heard atomic.Int64 // unix ns of the last frame from the server
}

// live returns the current connection, or nil.
func (c *Client) live() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// runOnce makes one connection and serves it until it ends; connected says
// whether it got as far as logging in.
func (c *Client) runOnce(ctx context.Context) (connected bool, err error) {
	a, _, err := c.account()
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	dk := c.devKey
	c.mu.Unlock()
	conn, hello, err := c.dial(ctx, a.Server)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	sig, err := dk.Private.Sign(wire.AuthPayload(hello.Challenge, string(a.User), a.Device))
	if err != nil {
		return false, fmt.Errorf("login: sign: %w", err)
	}
	sess, err := handshake(ctx, conn, wire.OpLogin, &wire.Login{Version: wire.ProtocolVersion, Username: string(a.User), Device: a.Device, Signature: sig})
	if err != nil {
		return false, err
	}

	g, gctx := errgroup.WithContext(ctx)
	s := &session{c: c, conn: conn, out: make(chan *wire.Frame, sendQueue), done: gctx.Done(), nextID: 1, pending: map[uint64]pendingRequest{}}
	s.heard.Store(time.Now().UnixNano())
	deliveries := make(chan *wire.Frame, deliverQueue)
	lowKeys := make(chan wire.KeyCounts, 1)
	lowKeys <- sess.Counts

	c.mu.Lock()
	c.conn = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.conn == s {
			c.conn = nil
		}
		c.mu.Unlock()
	}()
	c.log.Info("connected", "user", a.User, "device", a.Device, "server", a.Server)
	c.emit(Event{Type: EventConnected})

	// Shutting down, the writer first sends what is queued (acknowledgements
	// above all), then the connection closes, which ends the reader.
	written := make(chan struct{})
	g.Go(func() error { <-gctx.Done(); <-written; return conn.Close() })
	g.Go(func() error { return s.readLoop(gctx, deliveries, lowKeys) })
	g.Go(func() error { defer close(written); return s.writeLoop(gctx) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case f := <-deliveries:
				if f.Op == wire.OpQueueEmpty {
					c.emit(Event{Type: EventQueueEmpty})
					continue
				}
				if err := c.deliver(gctx, s, f); err != nil {
					return err
				}
			}
		}
	})
	g.Go(func() error { return c.outboxLoop(gctx, s) })
	// Key maintenance failures are logged, not fatal: the keys on the server
	// still work, and the next connection tries again.
	g.Go(func() error {
		if err := c.rotateKeys(gctx, s); err != nil && gctx.Err() == nil {
			c.log.Warn("rotating prekeys failed", "err", err)
		}
		for {
			select {
			case <-gctx.Done():
				return nil
			case n := <-lowKeys:
				if err := c.topUp(gctx, s, n); err != nil && gctx.Err() == nil {
					c.log.Warn("uploading prekeys failed", "err", err)
				}
			}
		}
	})
	g.Go(func() error { return s.pingLoop(gctx) })
	if ac, ok := conn.(acker); ok {
		g.Go(func() error { return s.silenceWatch(gctx, ac) })
	}
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = parley.Errorf(parley.KindUnavailable, "connection closed")
	}
	return true, err
}

func (s *session) readLoop(ctx context.Context, deliveries chan<- *wire.Frame, lowKeys chan wire.KeyCounts) error {
	for {
		// Not ctx: the reader ends when the connection closes, after the
		// writer has flushed (see runOnce).
		f, err := s.conn.ReadFrame(context.WithoutCancel(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var pe *parley.Error
			if errors.As(err, &pe) {
				return err
			}
			return parley.Errorf(parley.KindUnavailable, "connection lost: %w", err)
		}
		s.heard.Store(time.Now().UnixNano())
		switch f.Type {
		case wire.TypeResponse:
			s.mu.Lock()
			p := s.pending[f.ID]
			delete(s.pending, f.ID)
			s.mu.Unlock()
			if p.ch != nil {
				p.ch <- f
			}
		case wire.TypeRequest:
			switch f.Op {
			case wire.OpDeliver:
				select {
				case deliveries <- f:
				case <-ctx.Done():
					return ctx.Err()
				}
			case wire.OpPing:
				if err := s.respond(ctx, f, f.Body, nil); err != nil {
					return err
				}
			default:
				err := &parley.Error{Kind: parley.KindUnsupported, Message: fmt.Sprintf("client does not handle op %d", f.Op)}
				if err := s.respond(ctx, f, nil, err); err != nil {
					return err
				}
			}
		case wire.TypePush:
			switch f.Op {
			case wire.OpQueueEmpty:
				// After the deliveries before it are stored, not before.
				select {
				case deliveries <- f:
				case <-ctx.Done():
					return ctx.Err()
				}
			case wire.OpLowKeys:
				if n, ok := f.Body.(*wire.KeyCounts); ok {
					select {
					case lowKeys <- *n:
					default: // a top-up is already due
					}
				}
			}
		}
	}
}

// flushTimeout bounds the writing of queued frames when a connection shuts
// down.
const flushTimeout = 2 * time.Second

func (s *session) writeLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			for {
				select {
				case f := <-s.out:
					if err := s.conn.WriteFrame(fctx, f); err != nil {
						return ctx.Err()
					}
				default:
					return ctx.Err()
				}
			}
		case f := <-s.out:
			wctx, cancel := context.WithTimeout(ctx, requestTimeout)
			err := s.conn.WriteFrame(wctx, f)
			cancel()
			if err != nil {
				return parley.Errorf(parley.KindUnavailable, "connection lost: %w", err)
			}
		}
	}
}

func (s *session) pingLoop(ctx context.Context) error {
	return every(ctx, s.c.pingIv, func() error {
		if _, err := s.request(ctx, wire.OpPing, &wire.Ping{Nonce: rand.Uint64()}); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return nil
	})
}

// every calls f every d until ctx is done (it returns nil) or f fails.
func every(ctx context.Context, d time.Duration, f func() error) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := f(); err != nil {
				return err
			}
		}
	}
}

// pendingRequest is a request waiting for its response.
type pendingRequest struct {
	ch chan *wire.Frame
	at time.Time
}

// acker is a Conn that can tell whether the server has acknowledged all
// it was sent (at the TCP level).
type acker interface {
	allAcked() (acked, known bool)
}

// silentAfter is how long a request may wait while nothing at all comes
// from the server, though it acknowledged all we sent, before the
// connection is given up.
const silentAfter = 5 * time.Second

// silenceWatch gives up on the connection when the server has gone silent
// in one direction: a request has waited silentAfter, nothing has come for
// as long, and yet the server's TCP acknowledged everything. On a link
// that loses packets in runs that is the server's side of TCP backing
// off its retransmissions (which the client cannot see), and a new
// connection starts over with short timeouts. A slow upload is not
// silence: its bytes are not all acknowledged.
func (s *session) silenceWatch(ctx context.Context, ac acker) error {
	return every(ctx, time.Second, func() error {
		now := time.Now()
		if now.Sub(time.Unix(0, s.heard.Load())) < silentAfter {
			return nil
		}
		waited := time.Duration(0)
		s.mu.Lock()
		for _, p := range s.pending {
			waited = max(waited, now.Sub(p.at))
		}
		s.mu.Unlock()
		if waited < silentAfter {
			return nil
		}
		if acked, known := ac.allAcked(); known && acked {
			return parley.Errorf(parley.KindUnavailable, "the server went silent: a request waited %v, though it acknowledged all we sent", waited.Round(time.Second))
		}
		return nil
	})
}

func (s *session) write(ctx context.Context, f *wire.Frame) error {
	select {
	case s.out <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return parley.Errorf(parley.KindUnavailable, "connection lost")
	}
}

func (s *session) respond(ctx context.Context, req *wire.Frame, body any, err *parley.Error) error {
	return s.write(ctx, &wire.Frame{Type: wire.TypeResponse, ID: req.ID, Op: req.Op, Err: err, Body: body})
}

// request sends a request and waits for its response. A failed response
// returns the frame too (its Body may explain the error) and its *parley.Error.
func (s *session) request(ctx context.Context, op wire.Op, body any) (*wire.Frame, error) {
	wait, err := s.start(ctx, op, body)
	if err != nil {
		return nil, err
	}
	return wait()
}

// start sends a request and returns, once it is queued for the
// connection, the function that waits for its response and answers as
// request does. Requests started one after another go out in that order,
// so a caller may have several in flight. wait must be called.
func (s *session) start(ctx context.Context, op wire.Op, body any) (wait func() (*wire.Frame, error), err error) {
	f := &wire.Frame{Type: wire.TypeRequest, Op: op, Body: body}
	ctx, cancel := context.WithTimeout(ctx, timeoutFor(f))
	ch := make(chan *wire.Frame, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = pendingRequest{ch, time.Now()}
	s.mu.Unlock()
	f.ID = id
	done := func() {
		cancel()
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
	if err := s.write(ctx, f); err != nil {
		done()
		return nil, err
	}
	return func() (*wire.Frame, error) {
		defer done()
		select {
		case f := <-ch:
			if f.Err != nil {
				return f, f.Err
			}
			return f, nil
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return nil, parley.Errorf(parley.KindUnavailable, "no answer from the server")
			}
			return nil, ctx.Err()
		case <-s.done:
			return nil, parley.Errorf(parley.KindUnavailable, "connection lost")
		}
	}, nil
}
