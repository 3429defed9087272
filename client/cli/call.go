package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/call"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/tunnel"
)

// iceServers returns the STUN and TURN servers for a call: the server's
// TURN relay with a fresh credential, restricted to the URLs of transport
// (see turnURLs). A server without a relay answers KindUnavailable: no
// servers then, and a call uses host candidates only. The client is
// connected when it is called.
func iceServers(ctx context.Context, c *client.Client, transport string) ([]webrtc.ICEServer, error) {
	cr, err := c.TURNCredentials(ctx)
	if parley.ErrorKind(err) == parley.KindUnavailable {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	urls, err := turnURLs(cr.URLs, transport)
	if err != nil || len(urls) == 0 {
		return nil, err
	}
	return []webrtc.ICEServer{{URLs: urls, Username: cr.Username, Credential: cr.Password}}, nil
}

// The values of --turn-transport.
var turnTransports = []string{"udp", "tcp", "tls", "all"}

// turnURLs keeps the TURN URLs of one transport: "udp" (turn:, UDP), "tcp"
// (turn:, TCP), "tls" (turns:, TCP) or "all".
func turnURLs(urls []string, transport string) ([]string, error) {
	var keep []string
	for _, raw := range urls {
		u, err := ice.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("the server's TURN URL %q: %w", raw, err)
		}
		var t string
		switch scheme, proto := u.Scheme.String(), u.Proto.String(); {
		case scheme == "turn" && proto == "udp":
			t = "udp"
		case scheme == "turn" && proto == "tcp":
			t = "tcp"
		case scheme == "turns" && proto == "tcp":
			t = "tls"
		}
		if transport == "all" || t == transport {
			keep = append(keep, raw)
		}
	}
	return keep, nil
}

const callFlagsHelp = `
--send FILE plays an Ogg Opus file (what opusenc writes) to the other side,
paced in real time from the moment the call connects; at its end the call
goes on, silent. --record FILE writes what arrives to an Ogg Opus file, in
order; packets that never came are recorded as empty Opus frames, which
players conceal, so the recording keeps its timing. Neither needs a codec.

At the start the call prints its set-up time (from dialling, or answering,
to the first audio packet received), and at the end the audio packets sent,
received and lost (counted from RTP sequence numbers). A call ends when
either side hangs up (after --duration, or on Ctrl-C).

The call uses the server's TURN relay when the two sides cannot reach each
other directly. --relay-only sends the audio only through it, so that
neither side learns the other's IP address; it needs a server that offers
TURN. --turn-transport reaches the relay over one transport only: udp, tcp,
or tls (TURN over TLS on the server's HTTPS port, for networks that let
only the web through); all, the default, lets ICE choose. The line
"connected in D (PATH)" says which path the call took: direct, or "relay
over udp", "relay over tcp", "relay over tls".

TURN over TLS checks the server's certificate like the connection to the
server does: with the system's roots, plus those of --ca.

--path chooses how a call you make carries its audio. auto, the default,
asks this device's path memory: for each network it has been on (told
apart by the address prefix it reaches the server from, and the server;
what is kept holds no address), it remembers how its last 8 calls went,
made or answered: over WebRTC or through the tunnel, whether they
connected, and by which way. On a network where the last WebRTC call did
not connect (or took over 5s to, through the relay) and the last call
through the tunnel did (faster), auto goes through the tunnel; otherwise
it takes WebRTC. It prints its choice and why, e.g. "path: tunnel
(remembered: on this network WebRTC did not connect on 2026-11-28 14:02,
the tunnel did on 2026-11-28 14:05)". WebRTC is tried again once its
failure is not among the network's last 8 calls, or is 30 days old. The
memory also picks the tunnel's carrier to try first (the one the last
tunnelled call here ended on, unless it left it for loss or a freeze;
answer does this too)
and, when the last WebRTC call here connected only through the relay
over tcp or tls, that --turn-transport; each choice prints a line. The
flags --path webrtc or tunnel, --carrier and --turn-transport still
decide when given. 'parley paths' shows what is remembered, and
'parley paths --forget' clears it.

When auto chooses WebRTC, provided the other side can reach the tunnel
too, the call races the two: it opens the tunnel beside WebRTC, and if
WebRTC has not come up within 1s of the answer the call starts in the
tunnel ("path: tunnel first (...)"), then moves up to WebRTC without
hanging up if that comes up over UDP later ("path: tunnel → webrtc
(WebRTC came up over UDP)"; through the relay over TCP or TLS it is no
better, and the call stays). A call on WebRTC that fails or carries
nothing for 1.5s (a network that starts blocking UDP) moves to the
tunnel, which stands open: it prints "path: webrtc → tunnel (reason)" and
"moved in D (tunnel over ...)". When WebRTC comes back over UDP and
stays up for 2s (4s after a second move down, and so on), or the other
side moves back, the call moves back up ("path: tunnel → webrtc (WebRTC
came back over UDP)"); if it does not come back by itself, the caller
restarts ICE after 4s, then 8s, 16s..., for fresh candidates (a network
that changed). --path webrtc never moves.

--path tunnel carries the audio through the server's own connections
instead of WebRTC (for networks that block or throttle UDP, STUN or
DTLS): end-to-end encrypted frames (SFrame, with keys agreed inside your
encrypted conversation) that the server forwards without being able to
read. Each packet repeats the frames before it, as many as the loss the
other side reports calls for; the receiver plays them through a jitter
buffer that adapts its delay and conceals what is still missing. When the
connection freezes (some networks stall a flow after a few kilobytes) the
call moves to a spare connection opened ahead, and prints "path: A → B
(reason)". The one answering follows the caller's choice. As the sender
adapts to the path it prints "sender at 12.3s: bitrate 24000→12000 ...:
slow path: ..."; at the end the call prints what its jitter buffer did
and what its sender chose.
--carrier picks the tunnel's connection: any (the default) races a
WebSocket and WebTransport (QUIC datagrams, where UDP gets through) and
prefers WebTransport; websocket or webtransport use that one only.

On a slow path the tunnel's sender chooses a lower bitrate, as a browser
sets its encoder. This client has no encoder: --send-lower gives it the
same audio at lower bitrates (opusenc --bitrate 8, 12, 16, 24, 32 ...,
20 ms frames), and a tunnelled call sends each frame from the version
that fits the bitrate chosen (without it, the file goes as it is).`

var cmdCall = &command{
	name:  "call",
	args:  "[--send FILE.ogg [--send-lower FILES]] [--record FILE.ogg] [--duration D] [--path auto|webrtc|tunnel] [--relay-only] [--turn-transport T] USER",
	short: "make a voice call to USER, playing and recording Ogg Opus files",
	long: `Call rings USER on every device that is online; the first to answer takes the
call. The audio goes between the devices over WebRTC, encrypted with keys
agreed through set-up messages that travel inside your end-to-end encrypted
conversation, so the server can neither listen in nor sit in the middle.

It fails with "USER is busy" when USER is in another call, "USER declined the
call", or "no answer" when nobody answers within --ring.
` + callFlagsHelp + `

Example, with 'parley answer' on Bob's side:
  parley call bob --send speech.ogg --record heard.ogg --duration 10s`,
	flags: func(fs *flag.FlagSet) {
		addCallFlags(fs)
		fs.Duration("duration", 0, "hang up this long after the call connects (0: when USER hangs up, or on Ctrl-C)")
		fs.Duration("ring", 45*time.Second, "give up when nobody answers within this time")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usagef("want one USER")
		}
		peer, err := parley.ParseUserID(args[0])
		if err != nil {
			return err
		}
		o, err := callOptions(fs)
		if err != nil {
			return err
		}
		m, closeMedia, err := openMedia(o)
		if err != nil {
			return err
		}
		defer closeMedia()
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		if me, _, _, _ := c.Whoami(); me == peer {
			return usagef("you cannot call yourself")
		}
		mem, network := c.PathMemory(), networkOf(ctx, c)
		o = planPath(ctx, e, o, mem, network)
		s, err := startPhone(ctx, e, c, o, fs.Lookup("ring").Value.(flag.Getter).Get().(time.Duration))
		if err != nil {
			return err
		}
		defer s.stop()
		fmt.Fprintf(e.stdout, "calling %s\n", peer)
		cl, err := s.phone.Dial(ctx, peer, m)
		if err != nil {
			return err
		}
		st, err := s.talk(ctx, cl, o.duration)
		record(ctx, e, c, cl, st, err)
		rememberPath(ctx, e, mem, network, o, o.path, true, st, s.path, err)
		return finish(e, cl, st, err, closeMedia)
	},
}

var cmdAnswer = &command{
	name:  "answer",
	args:  "[--send FILE.ogg [--send-lower FILES]] [--record FILE.ogg] [--wait D] [--duration D] [--carrier C] [--relay-only] [--turn-transport T]",
	short: "wait for a voice call and answer it, playing and recording Ogg Opus files",
	long: `Answer connects, waits up to --wait for someone to call this account, answers
the first call that rings, and stays in it until the caller hangs up (or
--duration has passed, or Ctrl-C). Another call that comes meanwhile gets
"busy". A call that rang while this device was offline is not answered.
` + callFlagsHelp + `

Example, with 'parley call' on Alice's side:
  parley answer --send reply.ogg --record heard.ogg --wait 30s`,
	flags: func(fs *flag.FlagSet) {
		addCallFlags(fs)
		fs.Duration("wait", 30*time.Second, "how long to wait for a call")
		fs.Duration("duration", 0, "hang up this long after the call connects (0: when the caller hangs up, or on Ctrl-C)")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usagef("answer takes no arguments")
		}
		o, err := callOptions(fs)
		if err != nil {
			return err
		}
		wait := fs.Lookup("wait").Value.(flag.Getter).Get().(time.Duration)
		m, closeMedia, err := openMedia(o)
		if err != nil {
			return err
		}
		defer closeMedia()
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		mem, network := c.PathMemory(), networkOf(ctx, c)
		o = planAnswer(ctx, e, o, mem, network)
		s, err := startPhone(ctx, e, c, o, 0)
		if err != nil {
			return err
		}
		defer s.stop()
		fmt.Fprintln(e.stdout, "waiting for a call")
		in, err := s.ring(ctx, wait)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s is calling (device %d); answering\n", in.From().User, in.From().Device)
		cl, err := in.Accept(ctx, m)
		if err != nil {
			return err
		}
		st, err := s.talk(ctx, cl, o.duration)
		record(ctx, e, c, cl, st, err)
		tier := client.TierWebRTC // the caller chose it
		if cl.Tunnel() {
			tier = client.TierTunnel
		}
		rememberPath(ctx, e, mem, network, o, tier, false, st, s.path, err)
		return finish(e, cl, st, err, closeMedia)
	},
}

func addCallFlags(fs *flag.FlagSet) {
	fs.String("send", "", "send this Ogg Opus file")
	fs.String("send-lower", "", "`FILES`: the same audio as --send at lower bitrates (opusenc --bitrate 8 ...), comma-separated; a call through the tunnel sends from the one that fits the bitrate it chooses for the path (this client cannot re-encode)")
	fs.String("record", "", "record what arrives to this Ogg Opus file")
	fs.Bool("relay-only", false, "send audio only through the server's TURN relay, hiding your IP address")
	fs.String("turn-transport", "all", "reach the TURN relay over `T`: udp, tcp, tls or all")
	fs.String("trace", "", "write every audio packet sent and received to `FILE`, one JSON object a line (for measuring the path)")
	fs.String("carrier", "any", "with --path tunnel, the tunnel's `carrier`: any (race them, prefer WebTransport or the one that worked on this network), websocket or webtransport")
	fs.String("path", pathAuto, "how to carry the audio of calls you make: `P` is auto (what worked on this network, else webrtc), webrtc (direct, or through the TURN relay) or tunnel (through the server's own connections, for networks that block WebRTC)")
}

type callOpts struct {
	send, record string
	sendLower    []string // --send-lower
	trace        string   // --trace FILE
	duration     time.Duration
	relayOnly    bool
	transport    string // --turn-transport
	path         string // --path; planPath settles auto
	fallback     bool   // --path auto chose WebRTC: the call races the tunnel
	carrier      string // --carrier
	prefer       string // with carrier "any", the carrier kind to try first (from the path memory)
}

func callOptions(fs *flag.FlagSet) (callOpts, error) {
	o := callOpts{
		send:      fs.Lookup("send").Value.String(),
		sendLower: splitList(fs.Lookup("send-lower").Value.String()),
		record:    fs.Lookup("record").Value.String(),
		trace:     fs.Lookup("trace").Value.String(),
		duration:  fs.Lookup("duration").Value.(flag.Getter).Get().(time.Duration),
		relayOnly: fs.Lookup("relay-only").Value.String() == "true",
		transport: fs.Lookup("turn-transport").Value.String(),
		path:      fs.Lookup("path").Value.String(),
		carrier:   fs.Lookup("carrier").Value.String(),
	}
	if len(o.sendLower) > 0 && o.send == "" {
		return o, usagef("--send-lower needs --send: the lower versions are of the file it sends")
	}
	if !slices.Contains([]string{"any", "websocket", "webtransport"}, o.carrier) {
		return o, usagef("--carrier %s: want any, websocket or webtransport", o.carrier)
	}
	if o.path != pathAuto && o.path != call.PathWebRTC && o.path != call.PathTunnel {
		return o, usagef("--path %s: want %s, %s or %s", o.path, pathAuto, call.PathWebRTC, call.PathTunnel)
	}
	if !slices.Contains(turnTransports, o.transport) {
		return o, usagef("--turn-transport %s: want one of %s", o.transport, strings.Join(turnTransports, ", "))
	}
	return o, nil
}

// openMedia opens the file to send (checking that it is Ogg Opus), and
// creates the recording and the packet trace (o.trace). The returned
// function closes them; it may be called more than once, and only once the
// call has ended.
func openMedia(o callOpts) (call.Media, func() error, error) {
	var m call.Media
	var files []*os.File
	var trace *tracer
	closeAll := func() error {
		var errs []error
		if trace != nil {
			errs = append(errs, trace.flush())
			trace = nil
		}
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		files = nil
		return errors.Join(errs...)
	}
	if o.send != "" {
		f, err := os.Open(o.send)
		if err != nil {
			return m, nil, fmt.Errorf("cannot open the file to send: %w", err)
		}
		files = append(files, f)
		if m.Send, err = call.NewOggReader(f); err != nil {
			closeAll()
			return m, nil, fmt.Errorf("%s: %w (make one with: opusenc speech.wav speech.ogg)", o.send, err)
		}
	}
	for _, name := range o.sendLower {
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return m, nil, fmt.Errorf("cannot open a lower version to send: %w", err)
		}
		files = append(files, f)
		r, err := call.NewOggReader(f)
		if err != nil {
			closeAll()
			return m, nil, fmt.Errorf("%s: %w (make one with: opusenc --bitrate 12 speech.wav speech-12k.ogg)", name, err)
		}
		m.SendLower = append(m.SendLower, r)
	}
	if o.record != "" {
		f, err := os.Create(o.record)
		if err != nil {
			closeAll()
			return m, nil, fmt.Errorf("cannot create the recording: %w", err)
		}
		files = append(files, f)
		m.Record = f
	}
	if o.trace != "" {
		f, err := os.Create(o.trace)
		if err != nil {
			closeAll()
			return m, nil, fmt.Errorf("cannot create the trace: %w", err)
		}
		files = append(files, f)
		trace = &tracer{w: bufio.NewWriter(f)}
		m.Trace = trace.packet
	}
	return m, closeAll, nil
}

// tracer writes the --trace file: one line a packet,
//
//	{"dir":"out","seq":1234,"ts":96000,"size":81,"at_us":1764322800123456}
//
// dir "out" for sent, "in" for received, "play" for a frame the tunnel's
// jitter buffer played; at_us is the time it left, arrived or played, in
// microseconds since the Unix epoch, on this machine's clock. A frame sent
// from a --send-lower file has "version": its place in that list, from 1;
// a frame received in a packet sent again (the server's replay after a
// move, or a copy on a carrier the call was not on) has "resent": true.
type tracer struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

func (t *tracer) packet(p call.TracePacket) {
	dir := "in"
	switch {
	case p.Out:
		dir = "out"
	case p.Played:
		dir = "play"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		version := ""
		if p.Version > 0 {
			version = fmt.Sprintf(`,"version":%d`, p.Version)
		}
		if p.Resent {
			version += `,"resent":true`
		}
		_, t.err = fmt.Fprintf(t.w, `{"dir":%q,"seq":%d,"ts":%d,"size":%d,"at_us":%d%s}`+"\n", dir, p.Seq, p.Timestamp, p.Size, p.At.UnixMicro(), version)
	}
}

func (t *tracer) flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return fmt.Errorf("writing the trace: %w", t.err)
	}
	return t.w.Flush()
}

// phoneRun is a connected client with a Phone.
type phoneRun struct {
	e      *env
	c      *client.Client
	phone  *call.Phone
	r      *runner
	cancel context.CancelFunc
	ran    chan struct{} // closed when the Phone's Run returns
	online bool
	caught bool   // the messages kept by the server while offline have arrived
	path   string // the call's Stats.Path when it connected (a tunnelled call's carrier may be gone at the end)
}

// startPhone connects c to the server and starts a Phone on it.
func startPhone(ctx context.Context, e *env, c *client.Client, o callOpts, ring time.Duration) (*phoneRun, error) {
	// The client and the Phone outlive an interrupt (ctx), so that the
	// hang-up still goes out; stop ends them.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &phoneRun{e: e, c: c, r: start(pctx, c), cancel: cancel, ran: make(chan struct{})}
	if err := s.connect(ctx); err != nil {
		s.stop()
		return nil, err
	}
	servers, err := iceServers(ctx, c, o.transport)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("getting the TURN relay's credentials: %w", err)
	}
	if len(servers) == 0 && o.transport != "all" && !o.relayOnly {
		fmt.Fprintf(e.stderr, "! the server offers no TURN relay over %s: the call can only go direct\n", o.transport)
	}
	tlsCfg, err := e.tlsConfig()
	if err != nil {
		s.stop()
		return nil, err
	}
	path := o.path
	if path == pathAuto {
		path = "" // answering: the caller chooses
	}
	cfg := call.Config{ICEServers: servers, RelayOnly: o.relayOnly, TURNTLS: tlsCfg, RingTimeout: ring, Path: path, Fallback: o.fallback,
		Tunnel: &call.TunnelConfig{Ticket: tunnel.OnlyCarrier(c.TunnelTicket, o.carrier), Dial: tunnel.Dialer{TLS: tlsCfg}.Dial, Prefer: o.prefer}}
	if e.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s.phone, err = call.NewPhone(c, cfg)
	if err != nil {
		s.stop()
		if errors.Is(err, call.ErrNoRelay) {
			if o.transport != "all" {
				return nil, fmt.Errorf("--relay-only: %w (this server offers no TURN relay over %s)", err, o.transport)
			}
			return nil, fmt.Errorf("--relay-only: %w (this server offers no TURN relay)", err)
		}
		return nil, err
	}
	go func() {
		s.phone.Run(pctx)
		close(s.ran)
	}()
	return s, nil
}

// connectWait is how long a call waits to log in to the server: on a link
// that loses packets in bursts, TCP's backoff can hold one attempt up for
// half a minute.
const connectWait = time.Minute

// connect waits until the client is logged in to the server. A failed
// attempt is retried (the client reconnects by itself; a lossy network
// can break a handshake or two) until connectWait has passed; an error
// that retrying cannot fix ends Run at once.
func (s *phoneRun) connect(ctx context.Context) error {
	timeout := time.NewTimer(connectWait)
	defer timeout.Stop()
	var last error
	for !s.online {
		select {
		case ev := <-s.c.Events():
			if ev.Type == client.EventDisconnected {
				last = ev.Err
				continue
			}
			s.event(ev)
		case err := <-s.r.done:
			if err == nil {
				err = last
			}
			return fmt.Errorf("cannot reach the server: %s", explain(err))
		case <-timeout.C:
			if last != nil {
				return fmt.Errorf("cannot reach the server within %v: %s", connectWait, explain(last))
			}
			return fmt.Errorf("the server did not answer within %v", connectWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *phoneRun) stop() {
	s.cancel()
	if s.phone != nil {
		<-s.ran
	}
	s.r.stop()
}

// event handles one client event while a call is set up or in progress.
func (s *phoneRun) event(ev client.Event) {
	switch ev.Type {
	case client.EventConnected:
		s.online = true
	case client.EventQueueEmpty:
		s.caught = true
	case client.EventDisconnected:
		if s.online {
			fmt.Fprintf(s.e.stderr, "! disconnected from the server (%s); reconnecting\n", explain(ev.Err))
		}
		s.online = false
	case client.EventIdentityChanged:
		fmt.Fprintf(s.e.stderr, "! your safety number with %s changed: compare it again with 'parley safety-number %s'\n", ev.Peer, ev.Peer)
	case client.EventCall:
		if ev.Call != nil && s.phone != nil {
			s.phone.Handle(*ev.Call)
		}
	}
}

// ring waits up to wait for an incoming call. Calls that rang while this
// device was offline ring only once all the signals kept for it have
// arrived: the caller may have given up meanwhile.
func (s *phoneRun) ring(ctx context.Context, wait time.Duration) (*call.Incoming, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		var rings <-chan *call.Incoming
		if s.caught {
			rings = s.phone.Rings()
		}
		select {
		case in := <-rings:
			select {
			case <-in.Gone():
				fmt.Fprintf(s.e.stdout, "missed a call from %s\n", in.From().User)
				continue
			default:
			}
			return in, nil
		case ev := <-s.c.Events():
			s.event(ev)
		case err := <-s.r.done:
			return nil, err
		case <-deadline.C:
			return nil, fmt.Errorf("no call within %v", wait)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// talk runs cl until it ends, hanging up after duration (if not zero) or
// when ctx ends.
func (s *phoneRun) talk(ctx context.Context, cl *call.Call, duration time.Duration) (call.Stats, error) {
	connected, audio := cl.Connected(), cl.Audio()
	var timeUp <-chan time.Time
	hangup := func() {
		go func() { // the loop goes on until the call is over
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			cl.Hangup(hctx)
		}()
	}
	interrupted := ctx.Done()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	switches, changes, moves, moved := 0, 0, 0, 0
	// newMoves prints the call's moves between tiers not yet printed.
	newMoves := func(st call.Stats) {
		for _, m := range st.Moves[min(moves, len(st.Moves)):] {
			fmt.Fprintf(s.e.stdout, "path: %s → %s (%s)\n", m.From, m.To, m.Reason)
		}
		moves = len(st.Moves)
	}
	for {
		select {
		case <-poll.C:
			st := cl.Stats()
			newMoves(st)
			for _, m := range st.Moves[min(moved, len(st.Moves)):] {
				if m.Up == 0 {
					break
				}
				if m.FromConnect > 0 { // else the "connected in" line says it
					fmt.Fprintf(s.e.stdout, "moved in %v (%s)\n", (m.Up - m.At).Round(time.Millisecond), pathName(st))
				}
				moved++
			}
			if t := st.Tunnel; t != nil {
				for _, sw := range t.Switches[min(switches, len(t.Switches)):] {
					fmt.Fprintf(s.e.stdout, "path: %s → %s (%s)\n", sw.From, orNone(sw.To), sw.Reason)
				}
				switches = len(t.Switches)
				// The sender's adaptations as they come (the last of
				// those since the previous look), with the call's time.
				if snd := t.Sender; snd.Changes > changes {
					fmt.Fprintf(s.e.stdout, "sender at %.1fs: %s\n", cl.Stats().Duration.Seconds(), snd.Reason)
					changes = snd.Changes
				}
			}
		case <-connected:
			connected = nil
			st := cl.Stats()
			newMoves(st) // a move before the call connected comes first
			s.path = st.Path
			if st.Race != nil && len(st.Moves) == 0 && strings.HasPrefix(st.Path, "tunnel/") {
				fmt.Fprintf(s.e.stdout, "path: tunnel first (%s)\n", notYet(st.Race))
			}
			fmt.Fprintf(s.e.stdout, "connected in %v (%s)\n", st.Connect.Round(time.Millisecond), pathName(st))
			if duration > 0 {
				timeUp = time.After(duration)
			}
		case <-audio:
			audio = nil
			fmt.Fprintf(s.e.stdout, "set-up time: %v\n", cl.Stats().Setup.Round(time.Millisecond))
		case <-timeUp:
			timeUp = nil
			hangup()
		case <-interrupted:
			interrupted = nil
			hangup()
		case ev := <-s.c.Events():
			s.event(ev)
		case err := <-s.r.done:
			// The client stopped (the account was removed?): the call
			// cannot be signalled any more.
			hangup()
			<-cl.Done()
			st, _ := cl.Wait(context.Background())
			return st, err
		case <-cl.Done():
			return cl.Wait(context.Background())
		}
	}
}

// notYet says why a call that raced the tiers started in the tunnel.
func notYet(r *call.Race) string {
	if r.WebRTC > 0 { // it came up at the same moment, through the relay over TCP
		return "WebRTC came up through the relay over " + r.WebRTCRelay + ", no better"
	}
	return fmt.Sprintf("WebRTC was not up within %v of the answer; it may still come", call.RaceGrace)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// pathName says which way the media goes: "direct", "relay over udp" (our
// leg to the TURN relay), "the other side's relay", or the candidate types.
func pathName(st call.Stats) string {
	local, remote, _ := strings.Cut(st.Path, "/")
	switch {
	case strings.HasPrefix(st.Path, "tunnel/"):
		return "tunnel over " + strings.TrimPrefix(st.Path, "tunnel/")
	case st.Path == "":
		return "path unknown"
	case st.Path == "host/host":
		return "direct"
	case local == "relay" && st.Relay != "":
		return "relay over " + st.Relay
	case local == "relay":
		return "relay"
	case remote == "relay":
		return "the other side's relay"
	}
	return "direct, " + st.Path + " candidates"
}

// record writes what the call came to into the history with its peer, as
// the web client does.
func record(ctx context.Context, e *env, c *client.Client, cl *call.Call, st call.Stats, err error) {
	r := client.CallRecord{CallID: cl.ID(), Outgoing: cl.Outgoing(), Outcome: client.CallCompleted, Duration: st.Duration}
	switch {
	case err == nil && st.Connect > 0:
	case errors.Is(err, call.ErrBusy):
		r.Outcome = client.CallWasBusy
	case errors.Is(err, call.ErrDeclined):
		r.Outcome = client.CallRejected
	case errors.Is(err, call.ErrNoAnswer):
		r.Outcome = client.CallNoAnswer
	case err == nil || errors.Is(err, context.Canceled):
		r.Outcome = client.CallCancelled
	default:
		r.Outcome, r.Reason = client.CallFailed, err.Error()
	}
	if _, rerr := c.RecordCall(context.WithoutCancel(ctx), cl.Peer(), r); rerr != nil {
		fmt.Fprintf(e.stderr, "! the call could not be written to the history: %v\n", rerr)
	}
}

// finish prints how the call ended and its packet counts, and closes the
// media files.
func finish(e *env, cl *call.Call, st call.Stats, err error, closeMedia func() error) error {
	if cerr := closeMedia(); cerr != nil && err == nil {
		err = fmt.Errorf("writing the recording: %w", cerr)
	}
	if st.Connect > 0 {
		if st.Setup == 0 {
			fmt.Fprintln(e.stdout, "set-up time: none (no audio arrived)")
		}
		switch {
		case err != nil:
			fmt.Fprintf(e.stdout, "call failed after %.1fs\n", st.Duration.Seconds())
		case st.Remote:
			fmt.Fprintf(e.stdout, "%s hung up after %.1fs\n", cl.Peer(), st.Duration.Seconds())
		default:
			fmt.Fprintf(e.stdout, "hung up after %.1fs\n", st.Duration.Seconds())
		}
		fmt.Fprintf(e.stdout, "packets: sent %d, received %d, lost %d\n", st.Sent, st.Received, st.Lost)
		if t := st.Tunnel; t != nil {
			j, snd := t.Jitter, t.Sender
			fmt.Fprintf(e.stdout, "jitter buffer: played %d, repaired %d, concealed %d, late %d, longest gap %v, delay %v (at most %v)\n",
				j.Played, j.Repaired, j.Concealed, j.Late, j.LongestGap, j.TargetDelay, j.MaxTargetDelay)
			fmt.Fprintf(e.stdout, "sender: redundancy %d, %d frames a packet, bitrate it would choose %d bit/s; %d carrier switches\n",
				snd.Depth, snd.FramesPerPacket, snd.Bitrate, len(t.Switches))
			fmt.Fprintf(e.stdout, "tunnel: sent %d packets, %d bytes of audio and repeats (%d dropped for a full carrier), RTT %v\n",
				snd.Packets, snd.Bytes, t.PacketsDropped, t.RTT.Round(time.Millisecond))
			if snd.Reason != "" {
				fmt.Fprintf(e.stdout, "sender's last change: %s\n", snd.Reason)
			}
		}
	}
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
