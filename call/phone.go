package call

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// Signaller sends one call signal to every device of peer, end-to-end
// encrypted. *client.Client is one.
type Signaller interface {
	SendCallSignal(ctx context.Context, peer parley.UserID, sig client.CallSignal) error
}

// A starter is a Signaller that can have several signals in flight:
// StartCallSignal returns once sig is on its way, in order, and wait
// returns what SendCallSignal would. *client.Client is one.
type starter interface {
	StartCallSignal(ctx context.Context, peer parley.UserID, sig client.CallSignal) (wait func() error, err error)
}

var (
	_ Signaller = (*client.Client)(nil)
	_ starter   = (*client.Client)(nil)
)

// Config is how a Phone makes calls.
type Config struct {
	// ICEServers are the STUN and TURN servers ICE may use; none means host
	// candidates only (same network, or the public Internet without NAT).
	ICEServers []webrtc.ICEServer
	// RelayOnly sends media only through a TURN relay, so that neither side
	// learns the other's IP address. It needs a TURN server in ICEServers.
	RelayOnly bool
	// TURNTLS, if set, is how TURN over TLS (turns: URLs in ICEServers)
	// checks the server's certificate: its RootCAs are the certificates
	// trusted (nil: the system's); ServerName defaults to the URL's host,
	// and NextProtos is replaced by "stun.turn". Nil leaves it to pion,
	// which trusts the system's roots.
	TURNTLS *tls.Config
	// RingTimeout is how long an outgoing call rings before it gives up with
	// ErrNoAnswer, and how old an incoming offer may be and still ring
	// (45 s if zero).
	RingTimeout time.Duration
	// ConnectTimeout is how long, after the answer, the media path may take
	// to come up before the call fails with ErrConnectionFailed (20 s if
	// zero).
	ConnectTimeout time.Duration
	// Tunnel, when set, lets calls carry their media through the server's
	// call tunnel (tier 2, package tunnel): Path chooses whether they do.
	Tunnel *TunnelConfig
	// Path is how this Phone's outgoing calls carry their media: PathWebRTC
	// (the default) or PathTunnel, which needs Tunnel. Incoming calls take
	// the caller's choice.
	Path string
	// Fallback makes this Phone's WebRTC calls race the tunnel, and move
	// between the two without hanging up (see Call.Stats().Race and
	// Moves, and the package doc); it needs Tunnel. The offer then carries
	// a share of the tunnel secret too, and a callee whose Phone has a
	// Tunnel answers with its own: the call races if both did. Incoming
	// calls follow the caller's offer.
	Fallback bool
	// Loopback gathers ICE candidates on the loopback interface only, over
	// UDP/IPv4, without mDNS: for tests on one machine.
	Loopback bool
	// Logger receives debug logs (none if nil).
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time

	net transport.Net // tests: the network WebRTC uses instead of the host's
	// tests: how long ICE stays disconnected before it fails, in calls
	// that can move to the tunnel (iceFailed if 0)
	iceFailed time.Duration
}

const (
	defaultRingTimeout    = 45 * time.Second
	defaultConnectTimeout = 20 * time.Second
	// signalQueue bounds the signals waiting to be sent. A call sends an
	// offer or answer, a handful of candidates and a hang-up; when the queue
	// is full (the signalling connection is stuck) new signals are dropped
	// and logged, and the call fails by its timeouts.
	signalQueue = 64
	// ringQueue bounds the incoming calls not yet taken from Rings; more get
	// "busy".
	ringQueue = 4
)

// Phone is one device's calling endpoint: it places calls, offers incoming
// calls to its user, and answers "busy" while a call is ringing or in
// progress. Feed it every received call signal with Handle, and keep Run
// running while it is in use.
type Phone struct {
	sig   Signaller
	cfg   Config
	log   *slog.Logger
	api   *webrtc.API
	mapi  *webrtc.API // with a Tunnel: for the calls that can move to it
	out   chan outgoing
	rings chan *Incoming

	mu      sync.Mutex // guards current, ringing and early
	current *Call      // the call placed or accepted, until it ends
	ringing *Incoming  // an offer not yet accepted or declined
	// early holds candidates that came before their offer (signals keep
	// their order per sending device, so only if the transport reorders),
	// by call id; at most earlyCalls ids, else it is cleared.
	early map[string][]client.CallSignal
}

// earlyCalls bounds Phone.early.
const earlyCalls = 8

// outgoing is one signal waiting to be sent; done, if set, gets the result.
type outgoing struct {
	peer parley.UserID
	sig  client.CallSignal
	done func(error)
}

// NewPhone returns a Phone that signals through sig.
func NewPhone(sig Signaller, cfg Config) (*Phone, error) {
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = defaultRingTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.RelayOnly && !hasTURN(cfg.ICEServers) {
		return nil, ErrNoRelay
	}
	switch cfg.Path {
	case "":
		cfg.Path = PathWebRTC
	case PathWebRTC:
	case PathTunnel:
		if cfg.Tunnel == nil {
			return nil, ErrNoTunnel
		}
	default:
		return nil, fmt.Errorf("call: unknown path %q (want %s or %s)", cfg.Path, PathWebRTC, PathTunnel)
	}
	if cfg.Fallback && cfg.Tunnel == nil {
		return nil, ErrNoTunnel
	}
	p := &Phone{
		sig: sig, cfg: cfg, log: log,
		out:   make(chan outgoing, signalQueue),
		rings: make(chan *Incoming, ringQueue),
	}
	api, err := newAPI(cfg, log, p.trace, false)
	if err != nil {
		return nil, err
	}
	p.api = api
	if cfg.Tunnel != nil {
		if p.mapi, err = newAPI(cfg, log, p.trace, true); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func hasTURN(servers []webrtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
				return true
			}
		}
	}
	return false
}

// ICE's timers for a call that can move to the tunnel: a binding request
// every half second when nothing else was sent, and the path counted as
// lost (PeerConnectionStateDisconnected, which moves the call) after 1.5 s
// without a packet from the other side. pion's defaults, 2 s and 5 s,
// would leave a call that a censor cut silent for 5 s.
const (
	movableKeepalive    = 500 * time.Millisecond
	movableDisconnected = 1500 * time.Millisecond
	iceFailed           = 25 * time.Second // pion's default, which SetICETimeouts needs restated
)

// dtlsRetransmit is how long the DTLS handshake waits for the answer to a
// flight before it sends it again (doubling each time). RFC 6347 section
// 4.2.4.1 suggests 1 s, pion's default, which on a path with bursty loss
// (the lab's burst-loss-20) made calls take 2 to 19 s to connect once ICE
// was up: two or three lost flights cost 1 + 2 + 4 s. A call's RTT is
// rarely near 250 ms, and a repeat sent early costs a few hundred bytes.
// In the lab, burst-loss-20's WebRTC set-up went from 4.4 / 8.6 / 2.0 /
// 19.2 s to 1.7 / 0.4 / 0.4 / 1.5 s; rate-32k's, where a repeat could
// crowd the 4 KB/s link, stayed within its spread (7.1 to 12.0 s in four
// runs before, 7.3 to 9.6 s in four after).
const dtlsRetransmit = 250 * time.Millisecond

// newAPI builds the WebRTC stack: Opus 48 kHz stereo as the only codec, no
// video, no interceptors but the packet trace (Media.Trace of trace()).
// movable sets ICE's timers for calls that can move to the tunnel.
func newAPI(cfg Config, log *slog.Logger, trace func() func(TracePacket), movable bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: opusCodec,
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("registering Opus: %w", err)
	}
	var s webrtc.SettingEngine
	s.LoggerFactory = pionLogs{log}
	if cfg.RelayOnly {
		// pion waits 2 s before it nominates a relayed pair, in case a
		// direct one comes up; with relay only none can.
		s.SetRelayAcceptanceMinWait(0)
	}
	if cfg.TURNTLS != nil {
		d, err := newTURNDialer(cfg.ICEServers, cfg.TURNTLS)
		if err != nil {
			return nil, err
		}
		s.SetICEProxyDialer(d)
	}
	// A lost handshake flight is repeated after dtlsRetransmit, then twice
	// that, and so on (pion's default starts at 1 s).
	s.SetDTLSRetransmissionInterval(dtlsRetransmit)
	if movable {
		failed := iceFailed
		if cfg.iceFailed > 0 {
			failed = cfg.iceFailed
		}
		s.SetICETimeouts(movableDisconnected, failed, movableKeepalive)
	}
	if cfg.net != nil { // tests: a virtual network (pion's vnet) the test can cut
		s.SetNet(cfg.net)
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	} else if cfg.Loopback {
		s.SetIncludeLoopbackCandidate(true)
		s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	var ir interceptor.Registry
	ir.Add(traceFactory{trace})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s), webrtc.WithInterceptorRegistry(&ir)), nil
}

var opusCodec = webrtc.RTPCodecCapability{
	MimeType:    webrtc.MimeTypeOpus,
	ClockRate:   opusRate,
	Channels:    2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// trace returns the packet trace of the call in progress, or nil.
func (p *Phone) trace() func(TracePacket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return nil
	}
	return p.current.media.Trace
}

// Run sends the Phone's signals, in order, until ctx ends; then it ends the
// call in progress, if any. With a Signaller that can (a starter), a signal
// goes out without waiting for the answers to those before it: the server
// answers each once the peer's device has it, and trickled ICE candidates
// would otherwise wait for each other's round trips; a helper takes the
// answers, in order.
func (p *Phone) Run(ctx context.Context) error {
	st, pipelined := p.sig.(starter)
	answers := make(chan func(), signalQueue)
	defer close(answers)
	if pipelined {
		go func() {
			for settle := range answers {
				settle()
			}
		}()
	}
	for {
		select {
		case o := <-p.out:
			if !pipelined {
				p.sent(o, p.sig.SendCallSignal(ctx, o.peer, o.sig))
				continue
			}
			wait, err := st.StartCallSignal(ctx, o.peer, o.sig)
			if err != nil {
				p.sent(o, err)
				continue
			}
			answers <- func() { p.sent(o, wait()) }
		case <-ctx.Done():
			p.mu.Lock()
			c := p.current
			p.mu.Unlock()
			if c != nil {
				c.end(fmt.Errorf("signalling stopped: %w", ctx.Err()), false, false)
			}
			return ctx.Err()
		}
	}
}

// sent reports the result of sending o.
func (p *Phone) sent(o outgoing, err error) {
	if o.done != nil {
		o.done(err)
	} else if err != nil {
		p.log.Debug("call signal not sent", "call", o.sig.CallID, "type", o.sig.Type, "err", err)
	}
}

// send queues sig for peer; done, if not nil, is called with the result.
func (p *Phone) send(peer parley.UserID, sig client.CallSignal, done func(error)) {
	select {
	case p.out <- outgoing{peer, sig, done}:
	default:
		p.log.Warn("call signal dropped: the signalling queue is full", "call", sig.CallID, "type", sig.Type)
		if done != nil {
			done(fmt.Errorf("call signal %s dropped: the signalling queue is full", sig.Type))
		}
	}
}

// sendWait queues sig and waits until it is sent.
func (p *Phone) sendWait(ctx context.Context, peer parley.UserID, sig client.CallSignal) error {
	res := make(chan error, 1)
	p.send(peer, sig, func(err error) { res <- err })
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Rings returns the channel of incoming calls. Each one rings until it is
// accepted or declined, or the caller gives up (Incoming.Gone).
func (p *Phone) Rings() <-chan *Incoming { return p.rings }

// Handle takes one received call signal. It does not block on the network.
func (p *Phone) Handle(sig client.CallSignal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.current; c != nil && c.id == sig.CallID {
		c.handle(sig)
		return
	}
	if in := p.ringing; in != nil && in.offer.CallID == sig.CallID {
		if in.handle(sig) {
			p.ringing = nil
		}
		return
	}
	if sig.Type == client.CallICE {
		if p.early == nil || len(p.early) >= earlyCalls && p.early[sig.CallID] == nil {
			p.early = make(map[string][]client.CallSignal)
		}
		if len(p.early[sig.CallID]) < maxQueuedCandidates {
			p.early[sig.CallID] = append(p.early[sig.CallID], sig)
		}
		return
	}
	if sig.Type != client.CallOffer {
		p.log.Debug("call signal for no current call ignored", "call", sig.CallID, "type", sig.Type, "from", sig.From)
		return
	}
	early := p.early[sig.CallID]
	delete(p.early, sig.CallID)
	if !sig.SentAt.IsZero() && p.cfg.Now().Sub(sig.SentAt) > p.cfg.RingTimeout {
		p.log.Debug("stale call offer ignored", "call", sig.CallID, "from", sig.From, "sent", sig.SentAt)
		return
	}
	busy := client.CallSignal{CallID: sig.CallID, Type: client.CallBusy}
	if p.current != nil || p.ringing != nil {
		p.send(sig.From.User, busy, nil)
		return
	}
	in := &Incoming{p: p, offer: sig, gone: make(chan struct{})}
	for _, e := range early {
		in.handle(e)
	}
	select {
	case p.rings <- in:
		p.ringing = in
	default:
		p.send(sig.From.User, busy, nil)
	}
}

// release forgets c, which has ended.
func (p *Phone) release(c *Call) {
	p.mu.Lock()
	if p.current == c {
		p.current = nil
	}
	p.mu.Unlock()
}

// Dial calls peer: it sends the offer and returns the ringing call once the
// offer is sent (Run must be running). Wait for the call with Call.Wait.
func (p *Phone) Dial(ctx context.Context, peer parley.UserID, m Media) (*Call, error) {
	rec, err := newMediaRecorder(m)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.current != nil || p.ringing != nil {
		p.mu.Unlock()
		return nil, ErrInCall
	}
	c := p.newCall(client.NewCallID(), peer, true, m, rec)
	c.tunnel = p.cfg.Path == PathTunnel
	c.recTunnel = c.tunnel
	p.current = c
	p.mu.Unlock()
	if err := c.dial(ctx); err != nil {
		c.end(err, false, false)
		<-c.closed
		return nil, err
	}
	return c, nil
}

// Incoming is a call that rings.
type Incoming struct {
	p     *Phone
	offer client.CallSignal

	// guarded by p.mu
	ice  []client.CallSignal // candidates that came before the answer
	gone chan struct{}       // closed when the caller hangs up
	done bool                // accepted, declined or gone
}

// From returns the caller's device.
func (in *Incoming) From() parley.Address { return in.offer.From }

// Gone is closed when the caller hangs up before the call is answered.
func (in *Incoming) Gone() <-chan struct{} { return in.gone }

// handle takes a signal for this ringing call; it reports whether the
// ringing has ended. Called with p.mu held.
func (in *Incoming) handle(sig client.CallSignal) bool {
	if sig.From != in.offer.From {
		return false // another device of the caller's account
	}
	switch sig.Type {
	case client.CallICE:
		if len(in.ice) < maxQueuedCandidates {
			in.ice = append(in.ice, sig)
		}
	case client.CallHangup:
		in.done = true
		close(in.gone)
		return true
	}
	return false
}

// maxQueuedCandidates bounds the ICE candidates kept for a description that
// has not arrived; a real call has a few dozen at most.
const maxQueuedCandidates = 100

// Accept answers the call, m being what to send and where to record, and
// returns once the answer is sent (Run must be running).
func (in *Incoming) Accept(ctx context.Context, m Media) (*Call, error) {
	p := in.p
	rec, err := newMediaRecorder(m)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if in.done {
		p.mu.Unlock()
		return nil, ErrCallerGone
	}
	in.done = true
	p.ringing = nil
	if p.current != nil {
		p.mu.Unlock()
		p.send(in.offer.From.User, client.CallSignal{CallID: in.offer.CallID, Type: client.CallBusy}, nil)
		return nil, ErrInCall
	}
	c := p.newCall(in.offer.CallID, in.offer.From.User, false, m, rec)
	c.remote = in.offer.From
	c.tunnel = in.offer.SDP == "" && in.offer.TunnelKey != nil
	c.recTunnel = c.tunnel
	p.current = c
	queued := in.ice
	p.mu.Unlock()
	if err := c.accept(ctx, in.offer, queued); err != nil {
		c.end(err, false, true)
		<-c.closed
		return nil, err
	}
	return c, nil
}

// Decline refuses the call and tells the caller.
func (in *Incoming) Decline(ctx context.Context) error {
	p := in.p
	p.mu.Lock()
	if in.done {
		p.mu.Unlock()
		return ErrCallerGone
	}
	in.done = true
	if p.ringing == in {
		p.ringing = nil
	}
	p.mu.Unlock()
	return p.sendWait(ctx, in.offer.From.User, client.CallSignal{CallID: in.offer.CallID, Type: client.CallDecline})
}
