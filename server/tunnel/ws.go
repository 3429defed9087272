package tunnel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
)

// Timeouts of a WebSocket carrier.
const (
	joinTimeout  = 10 * time.Second // from the upgrade to the Join
	idleTimeout  = 30 * time.Second // a joined carrier that sends nothing this long is closed
	writeTimeout = 5 * time.Second  // each write
)

// ServeHTTP serves a WebSocket carrier (GET tunnel.Path): the first message
// must be a Join; then media, pings and selects until either side closes.
// Browsers connect from the server's own origin, which the WebSocket
// library's origin check allows.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		tunnel.SetLowLatency(c) // media, not bulk: see tunnel.SetLowLatency
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	ws.SetReadLimit(tunnel.MaxMessage)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &wsCarrier{ws: ws, out: make(tunnel.Queue, carrierQueue), done: make(chan struct{})}
	go c.write(ctx)
	defer c.Close(parley.KindUnavailable, "")

	jctx, jcancel := context.WithTimeout(ctx, joinTimeout)
	_, msg, err := ws.Read(jctx)
	jcancel()
	if err != nil {
		return
	}
	s := h.join(msg, c)
	if s == nil {
		return
	}
	defer s.Leave()
	for {
		rctx, rcancel := context.WithTimeout(ctx, idleTimeout)
		typ, msg, err := ws.Read(rctx)
		rcancel()
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			c.Close(parley.KindInvalid, "binary messages only")
			return
		}
		if err := s.Receive(msg); err != nil {
			c.Close(parley.ErrorKind(err), err.Error())
			return
		}
	}
}

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets ServeHTTP find the
// connection under a request, to keep little of a carrier's media unsent
// in the kernel.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// wsCarrier is a WebSocket carrier: one writer goroutine drains its queue.
type wsCarrier struct {
	ws   *websocket.Conn
	out  tunnel.Queue
	once sync.Once
	mu   sync.Mutex // guards closed and the send on out against close
	shut bool
	done chan struct{}
}

func (c *wsCarrier) Send(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.shut && c.out.Offer(msg)
}

// Close sends an Error message (for a kind other than KindUnavailable)
// and closes the connection.
func (c *wsCarrier) Close(kind parley.Kind, msg string) {
	c.once.Do(func() {
		c.mu.Lock()
		c.shut = true
		c.mu.Unlock()
		close(c.done)
		go func() {
			if kind != parley.KindUnavailable && msg != "" {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				c.ws.Write(ctx, websocket.MessageBinary, tunnel.AppendError(nil, string(kind), msg))
				cancel()
			}
			c.ws.CloseNow()
		}()
	})
}

func (c *wsCarrier) write(ctx context.Context) {
	for {
		select {
		case q := <-c.out:
			if q.Stale(time.Now()) {
				continue // sending it would only delay what follows
			}
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.ws.Write(wctx, websocket.MessageBinary, q.Msg)
			cancel()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					c.Close(parley.KindUnavailable, "")
				}
				return
			}
		case <-c.done:
			return
		case <-ctx.Done():
			return
		}
	}
}
