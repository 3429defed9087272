package tunnel

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/webtransport-go"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
)

// A WebTransport carrier is a session (HTTP/3 extended CONNECT at
// tunnel.Path) whose first bidirectional stream, opened by the client,
// carries the messages that must not be lost, each prefixed by its length
// (2 bytes, big-endian): the client's Join (and Selects, which it may
// repeat there), the server's Joined, Peer and Error. Everything else —
// Media, Ping, Pong, and Selects — travels as QUIC datagrams, which may be
// lost or reordered as the network pleases.
//
// When the server closes a carrier with an Error it writes the Error on
// the stream, ends the stream, gives the client a moment to close the
// session, and then closes the session itself with code WTCloseError and
// the reason "kind:message" (the same error, for a client whose stream was
// reset before it read it).
const (
	// WTCloseError is the WebTransport session error code of a session
	// the server closed for the reason in its message, "kind:message".
	WTCloseError webtransport.SessionErrorCode = 1
)

// Limits and timeouts of a WebTransport carrier, beside those in ws.go.
const (
	wtStreamQueue = 16                     // Joined, Peer: few per call
	wtCloseGrace  = 500 * time.Millisecond // for the client to close after an Error
	wtMaxReason   = 1000                   // bytes of a close reason (the capsule allows 1024)
)

// ServeWebTransport serves WebTransport carriers on pc, over QUIC with
// tlsConf (an operator's certificate, or a CertSource's), until ctx ends.
// It does not close pc. It returns nil once ctx has ended, or why it
// could not go on serving.
//
// Sessions may come from any origin: a carrier proves who it is with the
// ticket in its Join, which a page gets only from its own parley session,
// never from a cookie the browser adds by itself.
func (h *Hub) ServeWebTransport(ctx context.Context, pc net.PacketConn, tlsConf *tls.Config) error {
	h.checkUDPBuffers(pc)
	mux := http.NewServeMux()
	h3 := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(tlsConf),
		QUICConfig: &quic.Config{
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			Tracer:                           qlog.DefaultConnectionTracer, // with QLOGDIR set
			MaxIdleTimeout:                   idleTimeout,
			KeepAlivePeriod:                  idleTimeout / 3,
		},
		Handler: mux,
		Logger:  h.log,
	}
	wt := &webtransport.Server{
		H3:          h3,
		CheckOrigin: func(*http.Request) bool { return true },
	}
	mux.HandleFunc(tunnel.Path, func(w http.ResponseWriter, r *http.Request) {
		sess, err := wt.Upgrade(w, r)
		if err != nil {
			h.log.Debug("tunnel WebTransport upgrade", "remote", r.RemoteAddr, "err", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.serveSession(ctx, sess)
	})

	stop := context.AfterFunc(ctx, func() { wt.Close() })
	defer stop()
	err := wt.Serve(pc)
	wt.Close()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("tunnel: serving WebTransport: %w", err)
}

// serveSession runs one WebTransport carrier: the Join on the session's
// first stream, then the client's datagrams and stream messages until the
// session ends, the client is idle for idleTimeout, or ctx ends.
func (h *Hub) serveSession(ctx context.Context, sess *webtransport.Session) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(sess.Context(), cancel)()
	c := &wtCarrier{h: h, sess: sess, dgrams: make(tunnel.Queue, carrierQueue), msgs: make(tunnel.Queue, wtStreamQueue), done: make(chan struct{})}
	defer c.Close(parley.KindUnavailable, "")

	joinBy := time.AfterFunc(joinTimeout, cancel)
	str, err := sess.AcceptStream(ctx)
	if err != nil {
		return
	}
	defer context.AfterFunc(ctx, func() { str.CancelRead(0) })()
	var hdr [2]byte
	msg, err := readStreamMsg(str, hdr[:])
	if !joinBy.Stop() || err != nil {
		if errors.Is(err, tunnel.ErrMalformed) {
			c.start(str)
			c.Close(parley.KindInvalid, err.Error())
		}
		return
	}
	c.start(str)
	s := h.join(msg, c)
	if s == nil {
		return
	}
	defer s.Leave()

	var last atomic.Int64 // when the client last sent something, in Unix ns
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Go(func() { // idle: nothing on the stream or in datagrams for idleTimeout
		t := time.NewTimer(idleTimeout)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			since := time.Since(time.Unix(0, last.Load()))
			if since >= idleTimeout {
				cancel()
				return
			}
			t.Reset(idleTimeout - since)
		}
	})
	wg.Go(func() { // the stream: Selects, and EOF when the client closes
		defer cancel()
		for {
			msg, err := readStreamMsg(str, hdr[:])
			if err != nil {
				if errors.Is(err, tunnel.ErrMalformed) {
					c.Close(parley.KindInvalid, err.Error())
				}
				return
			}
			last.Store(time.Now().UnixNano())
			if err := s.Receive(msg); err != nil {
				c.Close(parley.ErrorKind(err), err.Error())
				return
			}
		}
	})
	for {
		msg, err := sess.ReceiveDatagram(ctx)
		if err != nil {
			break
		}
		last.Store(time.Now().UnixNano())
		if err := s.Receive(msg); err != nil {
			c.Close(parley.ErrorKind(err), err.Error())
			break
		}
	}
	cancel()
	wg.Wait() // no Receive after Leave
}

// readStreamMsg reads one length-prefixed message; hdr is 2 bytes of
// scratch.
func readStreamMsg(r io.Reader, hdr []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr))
	if n == 0 || n > tunnel.MaxMessage {
		return nil, fmt.Errorf("%w: stream message of %d bytes", tunnel.ErrMalformed, n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// wtCarrier is a WebTransport carrier. Send queues Media and Pong for the
// datagram writer and Joined and Peer for the stream writer, dropping what
// does not fit; the datagram writer also drops what QUIC will not take (a
// datagram too large for the path: media is sized to fit any path).
type wtCarrier struct {
	h      *Hub
	sess   *webtransport.Session
	dgrams tunnel.Queue
	msgs   tunnel.Queue
	done   chan struct{} // closed by Close
	once   sync.Once

	mu     sync.Mutex // guards str, shut and errMsg
	str    *webtransport.Stream
	shut   bool
	errMsg []byte // the Error to send on closing, if any
}

var _ Carrier = (*wtCarrier)(nil)

// start starts the writers on the session's first stream.
func (c *wtCarrier) start(str *webtransport.Stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return
	}
	c.str = str
	go c.writeDatagrams()
	go c.writeStream()
}

func (c *wtCarrier) Send(msg []byte) bool {
	if len(msg) == 0 {
		return false
	}
	q := c.msgs
	if t := tunnel.MsgType(msg[0]); tunnel.IsMedia(t) || t == tunnel.MsgPong {
		q = c.dgrams
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.shut && q.Offer(msg)
}

// Close sends an Error message (for a kind other than KindUnavailable)
// and closes the session.
func (c *wtCarrier) Close(kind parley.Kind, msg string) {
	c.once.Do(func() {
		c.mu.Lock()
		c.shut = true
		if kind != parley.KindUnavailable && msg != "" {
			c.errMsg = tunnel.AppendError(nil, string(kind), msg)
		}
		started := c.str != nil
		c.mu.Unlock()
		close(c.done)
		if !started {
			go c.closeSession()
		}
	})
}

// closeSession closes the session, with the Error as its reason if any.
// Called after done is closed.
func (c *wtCarrier) closeSession() {
	if c.errMsg == nil {
		c.sess.CloseWithError(0, "")
		return
	}
	kind, msg, _ := tunnel.ParseError(c.errMsg)
	reason := kind + ":" + msg
	if len(reason) > wtMaxReason {
		reason = strings.ToValidUTF8(reason[:wtMaxReason], "")
	}
	c.sess.CloseWithError(WTCloseError, reason)
}

func (c *wtCarrier) writeDatagrams() {
	for {
		select {
		case q := <-c.dgrams:
			if q.Stale(time.Now()) {
				continue // sending it would only delay what follows
			}
			err := c.sess.SendDatagram(q.Msg)
			if _, ok := errors.AsType[*quic.DatagramTooLargeError](err); ok {
				c.h.log.Debug("tunnel WebTransport datagram too large", "bytes", len(q.Msg), "err", err)
				continue
			}
			if err != nil {
				c.Close(parley.KindUnavailable, "")
				return
			}
		case <-c.done:
			return
		}
	}
}

// writeStream is the only writer of the stream; it also closes the
// session once Close has been called.
func (c *wtCarrier) writeStream() {
	buf := make([]byte, 0, 2+tunnel.MaxMessage)
	write := func(msg []byte, timeout time.Duration) error {
		buf = binary.BigEndian.AppendUint16(buf[:0], uint16(len(msg)))
		buf = append(buf, msg...)
		c.str.SetWriteDeadline(time.Now().Add(timeout))
		_, err := c.str.Write(buf)
		return err
	}
	for {
		select {
		case q := <-c.msgs:
			if err := write(q.Msg, writeTimeout); err != nil {
				c.Close(parley.KindUnavailable, "")
			}
		case <-c.done:
			if c.errMsg != nil && write(c.errMsg, wtCloseGrace) == nil {
				c.str.Close()
				select { // let the client read it and close
				case <-c.sess.Context().Done():
				case <-time.After(wtCloseGrace):
				}
			}
			c.closeSession()
			return
		}
	}
}
