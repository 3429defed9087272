//go:build js && wasm

// Command wasm is the web client's protocol core: package client compiled to
// WebAssembly over an IndexedDB store (web/idbstore). It sets
// globalThis.parley to the object described in web/src/api.ts, then
// dispatches "parley-ready" on window. The TypeScript UI does the rest.
//
// Every method that may block (storage, network) runs in its own goroutine
// and answers with a Promise: a JS callback must never block the Go
// scheduler.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"rsc.io/qr"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/web/idbstore"
)

// dbName is the IndexedDB database of the web client.
const dbName = "parley"

// lockName is the Web Lock that keeps a second tab of the same profile from
// running a second client over the same sessions.
const lockName = "parley-device"

func main() {
	b := &bridge{conn: "offline"}
	js.Global().Set("parley", b.object())
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("parley-ready"))
	select {} // serve callbacks for the life of the page
}

// bridge is the state behind globalThis.parley.
type bridge struct {
	mu        sync.Mutex // guards the fields below
	c         *client.Client
	st        *idbstore.Store
	running   bool
	conn      string // a Connection of api.ts
	listeners map[int]js.Value
	nextID    int
}

func (b *bridge) object() js.Value {
	o := js.Global().Get("Object").New()
	async := func(name string, fn func(args []js.Value) (any, error)) {
		o.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return promise(func() (any, error) { return fn(args) }) }))
	}
	sync := func(name string, fn func(args []js.Value) any) {
		o.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any { return fn(args) }))
	}
	async("open", b.open)
	async("register", b.register)
	sync("start", func([]js.Value) any { b.start(); return nil })
	sync("account", func([]js.Value) any { return b.account() })
	sync("connection", func([]js.Value) any { b.mu.Lock(); defer b.mu.Unlock(); return b.conn })
	async("send", b.send)
	async("retry", b.retry)
	async("conversations", b.conversations)
	async("messages", b.messages)
	async("markRead", b.markRead)
	async("safetyNumber", b.safetyNumber)
	async("setVerified", b.setVerified)
	sync("onEvent", b.onEvent)
	sync("newCallId", func([]js.Value) any { return client.NewCallID() })
	async("sendCallSignal", b.sendCallSignal)
	async("turnServers", b.turnServers)
	async("recordCall", b.recordCall)
	sync("newTunnelKey", func([]js.Value) any { return newTunnelKey() })
	async("openTunnel", b.openTunnel)
	sync("stats", func([]js.Value) any {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return map[string]any{"go_sys_bytes": float64(ms.Sys), "go_heap_bytes": float64(ms.HeapAlloc)}
	})
	return o
}

// client returns the client, or an error before open.
func (b *bridge) client() (*client.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return nil, parley.Errorf(parley.KindInvalid, "parley.open() has not been called")
	}
	return b.c, nil
}

func (b *bridge) open([]js.Value) (any, error) {
	b.mu.Lock()
	opened := b.c != nil
	b.mu.Unlock()
	if opened {
		return b.account(), nil
	}
	if err := takeTabLock(); err != nil {
		return nil, err
	}
	ctx := context.Background()
	st, err := idbstore.Open(ctx, dbName)
	if err != nil {
		return nil, err
	}
	// Ask the browser not to evict the keys and history under storage
	// pressure (best effort: browsers may say no).
	if s := js.Global().Get("navigator").Get("storage"); s.Truthy() && s.Get("persist").Truthy() {
		s.Call("persist")
	}
	c, err := client.New(ctx, client.Config{Store: st, Logger: slog.New(slog.NewTextHandler(consoleWriter{}, nil))})
	if err != nil {
		st.Close()
		return nil, err
	}
	b.mu.Lock()
	b.c, b.st = c, st
	b.mu.Unlock()
	go b.relayEvents(c)
	if _, _, _, err := c.Whoami(); err == nil {
		b.start()
	}
	return b.account(), nil
}

// takeTabLock takes the profile's Web Lock for the life of the page, or
// fails with kind "locked" when another tab holds it.
func takeTabLock() error {
	locks := js.Global().Get("navigator").Get("locks")
	if !locks.Truthy() {
		// Web Locks need a secure context (https, or http on localhost).
		js.Global().Get("console").Call("warn", "parley: no Web Locks in this context; a second tab could conflict with this one")
		return nil
	}
	got := make(chan bool, 1)
	var cb js.Func
	cb = js.FuncOf(func(_ js.Value, args []js.Value) any {
		cb.Release()
		if len(args) == 0 || args[0].IsNull() {
			got <- false
			return nil
		}
		got <- true
		// Hold the lock until the page goes away: a Promise that never settles.
		return js.Global().Get("Promise").New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	})
	opts := js.Global().Get("Object").New()
	opts.Set("ifAvailable", true)
	locks.Call("request", lockName, opts, cb)
	if !<-got {
		return &parley.Error{Kind: "locked", Message: "Parley is open in another tab of this browser; close it or use that tab"}
	}
	return nil
}

func (b *bridge) register(args []js.Value) (any, error) {
	c, err := b.client()
	if err != nil {
		return nil, err
	}
	server, name := argString(args, 0), argString(args, 1)
	if err := c.Register(context.Background(), server, name); err != nil {
		return nil, err
	}
	b.start()
	return b.account(), nil
}

// start runs the client's connection loop once.
func (b *bridge) start() {
	b.mu.Lock()
	if b.c == nil || b.running {
		b.mu.Unlock()
		return
	}
	if _, _, _, err := b.c.Whoami(); err != nil {
		b.mu.Unlock()
		return
	}
	b.running = true
	c := b.c
	b.mu.Unlock()
	b.setConn("connecting", nil)
	go func() {
		err := c.Run(context.Background())
		b.mu.Lock()
		b.running = false
		b.mu.Unlock()
		b.setConn("offline", err)
	}()
}

// setConn records the connection state and tells the listeners.
func (b *bridge) setConn(state string, err error) {
	b.mu.Lock()
	same := b.conn == state
	b.conn = state
	b.mu.Unlock()
	if same {
		return
	}
	ev := map[string]any{"type": "connection", "state": state}
	if err != nil {
		ev["error"] = err.Error()
	}
	b.emit(ev)
}

// emit calls every listener with ev. Never with b.mu held: a listener may
// call back into the bridge.
func (b *bridge) emit(ev map[string]any) {
	b.mu.Lock()
	ls := make([]js.Value, 0, len(b.listeners))
	for _, l := range b.listeners {
		ls = append(ls, l)
	}
	b.mu.Unlock()
	v := js.ValueOf(ev)
	for _, l := range ls {
		l.Invoke(v)
	}
}

// relayEvents turns the client's events into api.ts events.
func (b *bridge) relayEvents(c *client.Client) {
	for ev := range c.Events() {
		switch ev.Type {
		case client.EventConnected:
			b.setConn("online", nil)
		case client.EventDisconnected:
			state := "reconnecting"
			if !js.Global().Get("navigator").Get("onLine").Bool() {
				state = "offline"
			}
			b.setConn(state, ev.Err)
		case client.EventMessage:
			b.emit(map[string]any{"type": "message", "message": jsMessage(ev.Message)})
		case client.EventSent, client.EventDelivered, client.EventSendFailed:
			b.emit(map[string]any{"type": "update", "message": jsMessage(ev.Message)})
		case client.EventIdentityChanged:
			b.emit(map[string]any{"type": "identity_changed", "peer": string(ev.Peer)})
		case client.EventQueueEmpty:
			b.emit(map[string]any{"type": "caught_up"})
		case client.EventCall:
			sig := ev.Call
			jsig := map[string]any{
				"id": sig.CallID, "kind": string(sig.Type), "sdp": sig.SDP, "candidate": sig.Candidate,
				"from": sig.From.String(), "sent_at": unixMilli(sig.SentAt),
			}
			if len(sig.TunnelKey) > 0 {
				jsig["tunnel_key"] = base64.StdEncoding.EncodeToString(sig.TunnelKey)
			}
			b.emit(map[string]any{"type": "call", "peer": string(ev.Peer), "signal": jsig})
		}
	}
}

func (b *bridge) onEvent(args []js.Value) any {
	if len(args) == 0 || args[0].Type() != js.TypeFunction {
		return nil
	}
	b.mu.Lock()
	if b.listeners == nil {
		b.listeners = map[int]js.Value{}
	}
	id := b.nextID
	b.nextID++
	b.listeners[id] = args[0]
	b.mu.Unlock()
	var off js.Func
	off = js.FuncOf(func(js.Value, []js.Value) any {
		b.mu.Lock()
		delete(b.listeners, id)
		b.mu.Unlock()
		off.Release()
		return nil
	})
	return off
}

func (b *bridge) account() any {
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	user, dev, server, err := c.Whoami()
	if err != nil {
		return nil
	}
	return map[string]any{"user": string(user), "device": float64(dev), "server": server}
}

func (b *bridge) send(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	m, err := c.Send(context.Background(), peer, argString(args, 1))
	if err != nil {
		return nil, err
	}
	return jsMessage(m), nil
}

func (b *bridge) retry(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	id, err := parley.ParseMessageID(argString(args, 1))
	if err != nil {
		return nil, err
	}
	m, err := c.Retry(context.Background(), peer, id)
	if err != nil {
		return nil, err
	}
	return jsMessage(m), nil
}

func (b *bridge) conversations([]js.Value) (any, error) {
	c, err := b.client()
	if err != nil {
		return nil, err
	}
	convs, err := c.Conversations(context.Background())
	if err != nil {
		return nil, err
	}
	out := make([]any, len(convs))
	for i, cv := range convs {
		out[i] = map[string]any{
			"peer":             string(cv.Peer),
			"last":             jsMessage(&cv.Last),
			"unread":           cv.Unread,
			"verified":         cv.Verified,
			"identity_changed": cv.IdentityChanged,
		}
	}
	return out, nil
}

func (b *bridge) messages(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	q := client.Query{Peer: peer}
	if len(args) > 1 && args[1].Type() == js.TypeNumber {
		q.AfterSeq = uint64(max(args[1].Float(), 0))
	}
	msgs, err := c.Messages(context.Background(), q)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(msgs))
	for i := range msgs {
		out[i] = jsMessage(&msgs[i])
	}
	return out, nil
}

func (b *bridge) markRead(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	in := false
	msgs, err := c.Messages(ctx, client.Query{Peer: peer, Outgoing: &in, State: client.StateUnread})
	if err != nil {
		return nil, err
	}
	return nil, c.MarkRead(ctx, msgs)
}

func (b *bridge) safetyNumber(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	digits, scannable, err := c.SafetyNumber(ctx, peer)
	if err != nil {
		return nil, err
	}
	code, err := qr.Encode(string(scannable), qr.M)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	code.Scale = 8
	verified, err := c.Verified(ctx, peer)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"digits":   strings.Join(strings.Fields(digits), ""),
		"qr":       "data:image/png;base64," + base64.StdEncoding.EncodeToString(code.PNG()),
		"verified": verified,
	}, nil
}

func (b *bridge) setVerified(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	return nil, c.SetVerified(context.Background(), peer, len(args) > 1 && args[1].Truthy())
}

func (b *bridge) sendCallSignal(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || args[1].Type() != js.TypeObject {
		return nil, parley.Errorf(parley.KindInvalid, "sendCallSignal(peer, signal): no signal")
	}
	o := args[1]
	sig := client.CallSignal{
		CallID:    propString(o, "id"),
		Type:      client.CallSignalType(propString(o, "kind")),
		SDP:       propString(o, "sdp"),
		Candidate: propString(o, "candidate"),
	}
	if k := propString(o, "tunnel_key"); k != "" {
		if sig.TunnelKey, err = base64.StdEncoding.DecodeString(k); err != nil {
			return nil, parley.Errorf(parley.KindInvalid, "sendCallSignal: tunnel_key is not base64")
		}
	}
	// A stuck connection must not hold the signals queued behind this one
	// (the UI sends them one at a time) for ever.
	ctx, cancel := context.WithTimeout(context.Background(), callSignalTimeout)
	if sig.Type == client.CallOffer || sig.Type == client.CallAnswer || sig.Type == client.CallRestart {
		defer cancel()
		return nil, c.SendCallSignal(ctx, peer, sig) // the page wants to know whether it got through
	}
	// Other signals (trickled candidates above all) resolve once they are
	// on their way, in order, so that the next need not wait for this one's
	// answer: the server gives it once the peer's device has stored the
	// signal, a round trip through the peer's network. A failure is logged.
	wait, err := c.StartCallSignal(ctx, peer, sig)
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer cancel()
		if err := wait(); err != nil {
			js.Global().Get("console").Call("warn", fmt.Sprintf("parley: call signal %s: %v", sig.Type, err))
		}
	}()
	return nil, nil
}

// callSignalTimeout bounds the sending of one call signal.
const callSignalTimeout = 15 * time.Second

// turnServers answers with the server's TURN relay as RTCIceServer objects
// (an empty list when the server has none).
func (b *bridge) turnServers([]js.Value) (any, error) {
	c, err := b.client()
	if err != nil {
		return nil, err
	}
	tc, err := c.TURNCredentials(context.Background())
	if parley.ErrorKind(err) == parley.KindUnavailable && b.online() {
		return []any{}, nil // online, and the server runs no relay
	}
	if err != nil {
		return nil, err
	}
	urls := make([]any, len(tc.URLs))
	for i, u := range tc.URLs {
		urls[i] = u
	}
	return []any{map[string]any{"urls": urls, "username": tc.Username, "credential": tc.Password}}, nil
}

func (b *bridge) online() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn == "online"
}

func (b *bridge) recordCall(args []js.Value) (any, error) {
	c, peer, err := b.withPeer(args)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || args[1].Type() != js.TypeObject {
		return nil, parley.Errorf(parley.KindInvalid, "recordCall(peer, record): no record")
	}
	o := args[1]
	r := client.CallRecord{
		CallID:  propString(o, "id"),
		Outcome: client.CallOutcome(propString(o, "outcome")),
		Reason:  propString(o, "reason"),
	}
	r.Outgoing = o.Get("outgoing").Truthy()
	if d := o.Get("duration_ms"); d.Type() == js.TypeNumber {
		r.Duration = time.Duration(max(d.Float(), 0)) * time.Millisecond
	}
	if at := o.Get("at"); at.Type() == js.TypeNumber && at.Float() > 0 {
		r.At = time.UnixMilli(int64(at.Float()))
	}
	m, err := c.RecordCall(context.Background(), peer, r)
	if err != nil {
		return nil, err
	}
	return jsMessage(m), nil
}

// propString is o[name] if it is a string, else "".
func propString(o js.Value, name string) string {
	v := o.Get(name)
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}

// withPeer returns the client and the username in args[0].
func (b *bridge) withPeer(args []js.Value) (*client.Client, parley.UserID, error) {
	c, err := b.client()
	if err != nil {
		return nil, "", err
	}
	peer, err := parley.ParseUserID(argString(args, 0))
	return c, peer, err
}

func argString(args []js.Value, i int) string {
	if i >= len(args) || args[i].Type() != js.TypeString {
		return ""
	}
	return args[i].String()
}

// jsMessage is m as a Message of api.ts.
func jsMessage(m *client.Message) any {
	if m == nil || m.Seq == 0 && m.ID == (parley.MessageID{}) {
		return nil
	}
	from := ""
	if !m.Outgoing && !m.Notice {
		from = m.From.String()
	}
	return map[string]any{
		"seq":      float64(m.Seq),
		"id":       m.ID.String(),
		"peer":     string(m.Peer),
		"outgoing": m.Outgoing,
		"from":     from,
		"notice":   m.Notice,
		"text":     m.Text,
		"sent_at":  unixMilli(m.SentAt),
		"at":       unixMilli(m.At),
		"state":    m.State.String(),
		"error":    m.Error,
	}
}

func unixMilli(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli())
}

// promise runs fn in a goroutine and returns a Promise of its result; an
// error rejects it with an Error whose kind is the parley error kind.
func promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		executor.Release()
		resolve, reject := args[0], args[1]
		go func() {
			v, err := fn()
			if err != nil {
				reject.Invoke(jsError(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

func jsError(err error) js.Value {
	kind := parley.ErrorKind(err)
	msg := err.Error()
	var pe *parley.Error
	if errors.As(err, &pe) && pe.Message != "" {
		msg = pe.Message
	}
	e := js.Global().Get("Error").New(msg)
	e.Set("kind", string(kind))
	return e
}

// consoleWriter sends the client's log lines to the browser console.
type consoleWriter struct{}

func (consoleWriter) Write(p []byte) (int, error) {
	js.Global().Get("console").Call("log", "parley: "+strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
