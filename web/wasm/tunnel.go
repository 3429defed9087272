//go:build js && wasm

package main

// Tier 2 of calls in the browser: the call's audio through the server's
// tunnel (package tunnel), the same Session the CLI runs. The page brings
// the codec (WebCodecs, web/src/tunnel.ts); this side keys the call from
// the two shares, joins the room over WebTransport or a WebSocket, sends
// and receives the encrypted packets, and plays the frames out through the
// jitter buffer, handing each due frame to the page.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"sync"
	"syscall/js"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/tunnel/audio"
)

// tunnelOpenTimeout bounds the joining of the room (tickets and the first
// carrier), as the CLI's connect timeout does.
const tunnelOpenTimeout = 20 * time.Second

// frameDuration is the duration of the page's Opus frames.
const frameDuration = 20 * time.Millisecond

// newTunnelKey returns a fresh 32-byte share of a call's tunnel secret,
// base64, for an offer's or answer's tunnel_key.
func newTunnelKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// openTunnel is parley.openTunnel(callId, caller, mine, theirs, handlers,
// carrier?): it derives the call's keys from the two shares, joins the
// room (on carrier alone, if given), starts the playout and answers with a
// TunnelCall of api.ts.
func (b *bridge) openTunnel(args []js.Value) (any, error) {
	c, err := b.client()
	if err != nil {
		return nil, err
	}
	if len(args) < 5 || args[4].Type() != js.TypeObject {
		return nil, parley.Errorf(parley.KindInvalid, "openTunnel(callId, caller, mine, theirs, handlers): want five arguments")
	}
	callID, caller, h := argString(args, 0), args[1].Truthy(), args[4]
	mine, err1 := base64.StdEncoding.DecodeString(argString(args, 2))
	theirs, err2 := base64.StdEncoding.DecodeString(argString(args, 3))
	if err1 != nil || err2 != nil {
		return nil, parley.Errorf(parley.KindInvalid, "openTunnel: the tunnel keys are not base64")
	}
	callerShare, calleeShare := mine, theirs
	if !caller {
		callerShare, calleeShare = theirs, mine
	}
	keys, err := tunnel.DeriveKeys(callerShare, calleeShare, callID)
	if err != nil {
		return nil, parley.Errorf(parley.KindInvalid, "openTunnel: %v", err)
	}
	t := &tunnelCall{h: h}
	octx, cancel := context.WithTimeout(context.Background(), tunnelOpenTimeout)
	defer cancel()
	s, err := tunnel.OpenSession(octx, tunnel.SessionConfig{
		Keys: keys, Caller: caller, FrameDuration: frameDuration,
		Link: tunnel.LinkConfig{Ticket: tunnel.OnlyCarrier(c.TunnelTicket, argString(args, 5)), Dial: tunnel.DefaultDial},
		Play: t.play, Arrived: t.arrived, Peer: t.peer, Resume: t.resume,
		Logger: slog.New(slog.NewTextHandler(consoleWriter{}, nil)).With("call", callID),
	})
	if err != nil {
		return nil, err
	}
	t.s = s
	ctx, stop := context.WithCancel(context.Background())
	t.stop = stop
	go s.Run(ctx)
	return t.object(), nil
}

// tunnelCall is one call's Session and the page's handlers. The handlers
// are called from the Session's Run goroutine (a Go goroutine may call
// into JavaScript; the page's handlers only queue work, they never wait).
type tunnelCall struct {
	stop  context.CancelFunc
	heard bool // a frame has arrived (Run's goroutine only)

	mu sync.Mutex      // guards s and h
	s  *tunnel.Session // nil once closed
	h  js.Value        // TunnelHandlers of api.ts; undefined once closed
}

// session returns the Session, or nil once the call is closed.
func (t *tunnelCall) session() *tunnel.Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s
}

// Statuses of a frame handed to the page's play.
var frameStatus = map[audio.FrameStatus]string{
	audio.Played:    "played",
	audio.Repaired:  "repaired",
	audio.Concealed: "concealed",
}

func (t *tunnelCall) play(_ uint64, frame []byte, st audio.FrameStatus, _ time.Time) {
	v := js.Null()
	if st != audio.Concealed {
		v = js.Global().Get("Uint8Array").New(len(frame)) // empty: the sender's silence
		js.CopyBytesToJS(v, frame)
	}
	t.handle("play", v, frameStatus[st])
}

func (t *tunnelCall) arrived(audio.Frame, time.Time) {
	if !t.heard {
		t.heard = true
		t.handle("audio")
	}
}

func (t *tunnelCall) peer(present bool) { t.handle("peer", present) }

// resume asks the page whether a held call takes a packet that came (see
// tunnel.SessionConfig.Resume); without a resume handler it does.
func (t *tunnelCall) resume(time.Time) bool {
	v := t.handle("resume")
	return v.Type() != js.TypeBoolean || v.Bool()
}

// handle calls the page's handler name and returns what it returned
// (undefined if there is none). An exception it throws is logged: in Go
// it would be a panic, which would end the whole program.
func (t *tunnelCall) handle(name string, args ...any) (v js.Value) {
	t.mu.Lock()
	h := t.h
	t.mu.Unlock()
	if h.Type() != js.TypeObject || h.Get(name).Type() != js.TypeFunction { // closed, or an optional handler
		return js.Undefined()
	}
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			js.Global().Get("console").Call("warn", "parley: the tunnel's "+name+" handler threw:", je.Value)
			v = js.Undefined()
		}
	}()
	return h.Call(name, args...)
}

// object is the TunnelCall of api.ts. Its functions are never released:
// the page may still call one after close (an encoder's last output), and
// calling a released function would end the program. After close they do
// nothing, and hold nothing but t, which lets go of the Session and the
// handlers.
func (t *tunnelCall) object() js.Value {
	o := js.Global().Get("Object").New()
	fn := func(name string, f func(s *tunnel.Session, args []js.Value) any) {
		o.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any {
			s := t.session()
			if s == nil {
				return nil
			}
			return f(s, args)
		}))
	}
	fn("send", func(s *tunnel.Session, args []js.Value) any {
		var frame []byte
		if len(args) > 0 && args[0].InstanceOf(js.Global().Get("Uint8Array")) {
			frame = make([]byte, args[0].Get("byteLength").Int())
			js.CopyBytesToGo(frame, args[0])
		}
		// Send does not wait: it queues the packet on the carrier, or
		// drops it when the carrier is behind.
		if _, err := s.Send(frame); err != nil {
			return jsError(err)
		}
		return nil
	})
	fn("path", func(s *tunnel.Session, _ []js.Value) any { return s.Path() })
	fn("hold", func(s *tunnel.Session, _ []js.Value) any {
		s.Hold() // what the jitter buffer held is not played: the page hears WebRTC now
		return nil
	})
	fn("stats", func(s *tunnel.Session, _ []js.Value) any { return jsTunnelStats(s.Stats()) })
	fn("close", func(s *tunnel.Session, _ []js.Value) any {
		t.mu.Lock()
		t.s, t.h = nil, js.Undefined()
		t.mu.Unlock()
		// Closing waits for the carriers' goroutines, which need the
		// event loop this callback holds: in a goroutine of its own.
		go func() {
			t.stop()
			s.Close()
		}()
		return nil
	})
	return o
}

// jsTunnelStats is st as the TunnelStats of api.ts.
func jsTunnelStats(st tunnel.SessionStats) map[string]any {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	j, snd := st.Jitter, st.Sender
	switches := make([]any, len(st.Switches))
	for i, sw := range st.Switches {
		switches[i] = map[string]any{"at": unixMilli(sw.At), "from": sw.From, "to": sw.To, "reason": sw.Reason}
	}
	return map[string]any{
		"path":                st.Path,
		"received":            j.Received,
		"played":              j.Played,
		"repaired":            j.Repaired,
		"concealed":           j.Concealed,
		"trailing":            j.Trailing,
		"late":                j.Late,
		"skipped":             j.Skipped,
		"inserted":            j.Inserted,
		"longest_gap_ms":      ms(j.LongestGap),
		"delay_ms":            ms(j.Delay),
		"target_delay_ms":     ms(j.TargetDelay),
		"max_target_delay_ms": ms(j.MaxTargetDelay),
		"loss_before_repair":  j.LossBeforeRepair,
		"rtt_ms":              ms(st.RTT),
		"packets_sent":        st.PacketsSent,
		"packets_dropped":     st.PacketsDropped,
		"bitrate":             snd.Bitrate,
		"redundancy":          snd.Depth,
		"frames_per_packet":   snd.FramesPerPacket,
		"switches":            switches,
	}
}
