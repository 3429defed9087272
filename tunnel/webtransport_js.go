// The browser's WebTransport carrier: the W3C WebTransport API
// (https://www.w3.org/TR/webtransport/) driven through syscall/js. It
// speaks the carrier protocol of the native one (webtransport.go): Join,
// and the server's Joined, Peer and Error, go on the session's first
// bidirectional stream, each prefixed by its 2-byte length; Media, Ping
// and Pong go as datagrams; Select goes both ways.

package tunnel

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
	"time"
)

// Limits of a WebTransport carrier in the browser.
const (
	wtInQueue   = 64                     // messages received and not yet taken by Recv; datagrams beyond it are dropped
	wtOutQueue  = 32                     // datagrams handed to the browser and not yet sent; Send drops beyond it
	wtWriteMax  = 2 * time.Second        // a stream write without a deadline in its ctx
	wtCauseWait = 200 * time.Millisecond // for the session's close reason, after the stream's end
	wtCloseErr  = 1                      // the server's close with a reason (server/tunnel.WTCloseError)
	// wtMaxAge is how long the browser may hold a datagram before it
	// drops it unsent (W3C WebTransport, outgoingMaxAge): audio that late
	// is no use to the listener's jitter buffer.
	wtMaxAge = 500 * time.Millisecond
)

// dialWebTransport opens a WebTransport carrier with the browser's own
// WebTransport and sends Join; the server's Joined (or Error) is the first
// message Recv returns. The browser checks the server's certificate: by
// certHashes when the ticket has them (W3C WebTransport,
// serverCertificateHashes: a self-signed certificate valid for at most 14
// days), else by the usual Web PKI. tls.Config is not the browser's to
// take.
func dialWebTransport(ctx context.Context, u string, _ *tls.Config, certHashes [][]byte, room RoomID, ticket string) (Carrier, error) {
	if !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("tunnel: WebTransport URL %q is not https://", u)
	}
	ctor := js.Global().Get("WebTransport")
	if ctor.Type() != js.TypeFunction {
		return nil, errors.New("tunnel: this browser has no WebTransport")
	}
	opts := js.Global().Get("Object").New()
	if len(certHashes) > 0 {
		hashes := js.Global().Get("Array").New()
		for _, h := range certHashes {
			o := js.Global().Get("Object").New()
			o.Set("algorithm", "sha-256")
			o.Set("value", uint8Array(h))
			hashes.Call("push", o)
		}
		opts.Set("serverCertificateHashes", hashes)
	}
	var wt js.Value
	if err := jsTry(func() { wt = ctor.New(u, opts) }); err != nil {
		return nil, fmt.Errorf("tunnel: WebTransport to %s: %w", u, err)
	}
	c := &wtCarrier{
		wt:      wt,
		wtInbox: newWTInbox(),
		closed:  make(chan js.Value, 1),
	}
	// closed settles when the session ends (it rejects when the session
	// failed; awaiting it also keeps that rejection from being reported
	// as unhandled). Its close info carries the server's reason.
	go func() {
		info, err := await(context.Background(), wt.Get("closed"))
		if err != nil {
			info = js.Null()
		}
		c.closed <- info
	}()
	if _, err := await(ctx, wt.Get("ready")); err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel: WebTransport to %s: %w", u, err)
	}
	err := jsTry(func() {
		dg := wt.Get("datagrams")
		if dg.Get("outgoingMaxAge").Type() != js.TypeUndefined {
			dg.Set("outgoingMaxAge", wtMaxAge.Milliseconds())
		}
		// createWritable is the current API (the writable attribute
		// is deprecated in the spec but older browsers have only it).
		if dg.Get("createWritable").Type() == js.TypeFunction {
			c.dw = dg.Call("createWritable").Call("getWriter")
		} else {
			c.dw = dg.Get("writable").Call("getWriter")
		}
		c.dr = dg.Get("readable").Call("getReader")
	})
	if err == nil {
		var bidi js.Value
		bidi, err = await(ctx, wt.Call("createBidirectionalStream"))
		if err == nil {
			c.sw = bidi.Get("writable").Call("getWriter")
			c.sr = bidi.Get("readable").Call("getReader")
			err = c.writeStream(ctx, AppendJoin(nil, room, ticket))
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel: joining over WebTransport: %w", err)
	}
	c.sent = js.FuncOf(func(js.Value, []js.Value) any { c.datagramSettled(); return nil })
	c.wg.Add(2)
	go c.readStream()
	go c.readDatagrams()
	return c, nil
}

// wtCarrier is a WebTransport carrier in the browser: two goroutines,
// which Close ends, read the stream and the datagrams into in; Send hands
// datagrams to the browser without waiting for them to go.
type wtCarrier struct {
	wt     js.Value // the WebTransport
	sw, sr js.Value // the stream's writer and reader
	dw, dr js.Value // the datagrams' writer and reader

	wtInbox
	closed chan js.Value // the session's close info (null if it failed), once it ended
	once   sync.Once
	wg     sync.WaitGroup

	sent    js.Func    // called when a datagram write settles
	mu      sync.Mutex // guards pending and gone
	pending int        // datagram writes not yet settled
	gone    bool       // Close was called; sent is released once pending is 0
}

func (c *wtCarrier) Kind() string { return "webtransport" }

func (c *wtCarrier) Send(ctx context.Context, msg []byte) error {
	onStream, err := c.check(msg)
	if err != nil {
		return err
	}
	if onStream {
		if err := c.writeStream(ctx, msg); err != nil {
			return err
		}
	}
	c.sendDatagram(msg)
	return nil
}

// sendDatagram hands msg to the browser without waiting for it to go out.
// When wtOutQueue are still waiting (the path is slower than the media) it
// drops msg, as a lossy network would; a datagram the browser cannot send
// (too large, or the session is closing) is dropped the same way. The
// count is ours: the writable's own desiredSize says little, as browsers
// set its high-water mark to one datagram (Chromium does).
func (c *wtCarrier) sendDatagram(msg []byte) {
	c.mu.Lock()
	if c.gone || c.pending >= wtOutQueue {
		c.mu.Unlock()
		return
	}
	c.pending++
	c.mu.Unlock()
	if err := jsTry(func() { c.dw.Call("write", uint8Array(msg)).Call("then", c.sent, c.sent) }); err != nil {
		c.datagramSettled()
	}
}

// datagramSettled notes a datagram write that settled, and releases sent
// after the last one once the carrier is closed: a released callback must
// never be called.
func (c *wtCarrier) datagramSettled() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending--
	if c.gone && c.pending == 0 {
		c.sent.Release()
	}
}

// writeStream writes msg, length-prefixed, on the stream, and waits for
// the browser to take it.
func (c *wtCarrier) writeStream(ctx context.Context, msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(msg))
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	b = append(b, msg...)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wtWriteMax)
		defer cancel()
	}
	// The stream's writer queues writes in order, so that concurrent
	// calls (Join, then Selects) need no lock: each is one whole message.
	var p js.Value
	if err := jsTry(func() { p = c.sw.Call("write", uint8Array(b)) }); err != nil {
		return fmt.Errorf("tunnel: WebTransport stream: %w", err)
	}
	if _, err := await(ctx, p); err != nil {
		return fmt.Errorf("tunnel: WebTransport stream: %w", err)
	}
	return nil
}

// readStream takes the server's stream messages until the stream ends;
// then the carrier is dead. The browser hands the stream's bytes over in
// chunks of any size; the length prefixes cut them into messages.
func (c *wtCarrier) readStream() {
	defer c.wg.Done()
	var err error
	sawError, first := false, true
	defer func() {
		if first {
			close(c.joined)
		}
		if !sawError {
			c.deliverCloseReason()
		}
		c.err = fmt.Errorf("tunnel: WebTransport carrier: %w", err)
		close(c.dead)
	}()
	var buf []byte
	for {
		var r js.Value
		if r, err = await(context.Background(), c.sr.Call("read")); err != nil {
			return
		}
		if r.Get("done").Bool() {
			err = fmt.Errorf("the server ended it: %w", ErrClosed)
			return
		}
		buf = append(buf, goBytes(r.Get("value"))...)
		for len(buf) >= 2 {
			n := int(binary.BigEndian.Uint16(buf))
			if n == 0 || n > MaxMessage {
				err = fmt.Errorf("%w: stream message of %d bytes", ErrMalformed, n)
				return
			}
			if len(buf) < 2+n {
				break
			}
			msg := append([]byte(nil), buf[2:2+n]...)
			buf = buf[2+n:]
			sawError = sawError || MsgType(msg[0]) == MsgError
			if !c.deliver(msg) {
				err = ErrClosed
				return
			}
			if first {
				first = false
				close(c.joined)
			}
		}
	}
}

// deliverCloseReason delivers the server's close of the session with a
// reason ("kind:message", close code wtCloseErr) as the Error it was, when
// the session ended that way soon after the stream.
func (c *wtCarrier) deliverCloseReason() {
	t := time.NewTimer(wtCauseWait)
	defer t.Stop()
	var info js.Value
	select {
	case info = <-c.closed:
		c.closed <- info // for whoever looks next
	case <-t.C:
		return
	case <-c.done:
		return
	}
	if info.Type() != js.TypeObject || info.Get("closeCode").Type() != js.TypeNumber || info.Get("closeCode").Int() != wtCloseErr {
		return
	}
	kind, text, _ := strings.Cut(info.Get("reason").String(), ":")
	c.deliver(AppendError(nil, kind, text))
}

// readDatagrams takes the server's datagrams once the stream's first
// message is in (so that Joined comes first), dropping those Recv has no
// room for.
func (c *wtCarrier) readDatagrams() {
	defer c.wg.Done()
	select {
	case <-c.joined:
	case <-c.done:
		return
	}
	for {
		r, err := await(context.Background(), c.dr.Call("read"))
		if err != nil || r.Get("done").Bool() {
			return
		}
		select {
		case c.in <- goBytes(r.Get("value")):
		default:
		}
	}
}

// Close closes the session. Cancelling the readers settles their pending
// reads, so the goroutines end (W3C Streams, ReadableStreamDefaultReader
// cancel: a pending read resolves as done).
func (c *wtCarrier) Close() error {
	c.once.Do(func() {
		close(c.done)
		for _, r := range []js.Value{c.sr, c.dr} {
			if r.Type() == js.TypeObject {
				jsTry(func() { r.Call("cancel").Call("catch", ignore()) })
			}
		}
		jsTry(func() { c.wt.Call("close") })
		c.mu.Lock()
		c.gone = true
		if c.pending == 0 && c.sent.Truthy() {
			c.sent.Release()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// await waits for the promise p to settle, or for ctx. Its callbacks
// release themselves when p settles, also after ctx ended the wait: a
// callback must stay alive as long as p may call it.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var ok, fail js.Func
	ok = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ok.Release()
		fail.Release()
		ch <- result{v: arg(args)}
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ok.Release()
		fail.Release()
		ch <- result{err: jsError(arg(args))}
		return nil
	})
	p.Call("then", ok, fail)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func arg(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// jsError is a JavaScript exception or rejection as a Go error.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString {
		return fmt.Errorf("%s: %s", v.Get("name").String(), v.Get("message").String())
	}
	return fmt.Errorf("%s", v.String())
}

// jsTry runs fn, turning a JavaScript exception it throws into an error.
func jsTry(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			err = jsError(je.Value)
		}
	}()
	fn()
	return nil
}

// ignore is a callback that does nothing, to mark a promise's rejection
// handled; it lives as long as the page.
var ignore = sync.OnceValue(func() js.Func {
	return js.FuncOf(func(js.Value, []js.Value) any { return nil })
})

func uint8Array(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

func goBytes(v js.Value) []byte {
	b := make([]byte, v.Get("byteLength").Int())
	js.CopyBytesToGo(b, v)
	return b
}
