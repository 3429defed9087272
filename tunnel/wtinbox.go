package tunnel

import (
	"context"
	"fmt"
)

// wtInbox is what a WebTransport carrier (webtransport.go in Go,
// webtransport_js.go in a browser) has received, and how its stream
// ended; it gives both their Recv.
type wtInbox struct {
	in     chan []byte
	joined chan struct{} // closed when the stream's first message is in
	dead   chan struct{} // closed when the stream has ended; err says why
	err    error
	done   chan struct{} // closed by Close
}

func newWTInbox() wtInbox {
	return wtInbox{in: make(chan []byte, wtInQueue), joined: make(chan struct{}), dead: make(chan struct{}), done: make(chan struct{})}
}

// deliver hands a stream message to Recv, waiting for room.
func (c *wtInbox) deliver(msg []byte) bool {
	select {
	case c.in <- msg:
		return true
	case <-c.done:
		return false
	}
}

// Recv implements Carrier.
func (c *wtInbox) Recv(ctx context.Context) ([]byte, error) {
	select {
	case msg := <-c.in:
		return msg, nil
	case <-c.dead:
		select { // what came before the end first
		case msg := <-c.in:
			return msg, nil
		default:
			return nil, c.err
		}
	case <-c.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// check says whether a client may send msg on a carrier that is still
// open, and whether it goes on the stream (a Select, which the server
// must not miss) besides as a datagram (Media, Ping, and the Select too:
// whichever comes first).
func (c *wtInbox) check(msg []byte) (onStream bool, err error) {
	if len(msg) == 0 {
		return false, fmt.Errorf("%w: empty", ErrMalformed)
	}
	select {
	case <-c.done:
		return false, ErrClosed
	case <-c.dead:
		return false, c.err
	default:
	}
	switch MsgType(msg[0]) {
	case MsgMedia, MsgPing:
		return false, nil
	case MsgSelect:
		return true, nil
	}
	return false, fmt.Errorf("%w: a client does not send type %d", ErrMalformed, msg[0])
}
