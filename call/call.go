package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/tunnel"
)

// Media is what a call sends and where it records what it receives.
type Media struct {
	// Send is the audio to send, paced in real time from the moment the
	// call connects; nil sends nothing. At its end the call goes on, silent.
	Send *OggReader
	// SendLower are the same audio encoded at lower bitrates (opusenc
	// --bitrate), read whole when the call connects. A call through the
	// tunnel sends each frame from the version that fits the bitrate its
	// sender chooses for the path, as a browser sets its encoder; Send
	// still paces the call, and is sent where the versions end. A WebRTC
	// call sends Send alone.
	SendLower []*OggReader
	// Record receives the audio that arrives, as an Ogg Opus stream; nil
	// records nothing. It is complete when Wait returns.
	Record io.Writer
	// Trace, if set, is called with every audio packet sent and received
	// (from the media goroutines, one packet at a time per direction),
	// until Wait returns.
	Trace func(TracePacket)
}

// Stats are the measurements of one call.
type Stats struct {
	Setup    time.Duration // from dialling (or answering) to the first audio packet received; 0 if none came
	Connect  time.Duration // from dialling (or answering) to the media path being up; 0 if it never was
	Duration time.Duration // from connecting to the end
	Sent     int           // audio packets sent
	Received int           // distinct audio packets received
	Lost     int           // packets missing between those received, by RTP sequence number
	Late     int           // packets that came twice, or after the recording had given them up
	Gaps     int           // runs of lost packets, concealed in the recording
	SendDone bool          // the whole file was sent
	Path     string        // the ICE candidate types in use, local/remote: "host/host", "relay/srflx"...
	Relay    string        // with a local relay candidate, how it reaches the TURN server: "udp", "tcp", "tls"
	Remote   bool          // the other side hung up
	Tunnel   *TunnelStats  // a call through the server's tunnel: what its jitter buffer and sender did
	Moves    []Move        // the call's moves between tiers
	Race     *Race         // a call that raced the tiers: how each did
}

// Move is a call's move from one tier to another without hanging up: from
// the tunnel up to WebRTC when WebRTC comes up over UDP after the call
// started in the tunnel, or from WebRTC to the tunnel when WebRTC breaks.
type Move struct {
	At     time.Duration // since dialling or answering
	From   string        // PathWebRTC or PathTunnel
	To     string        // the other one
	Reason string
	// Up is when the call could be heard on To (since dialling or
	// answering: WebRTC was up, or the other device was in the tunnel's
	// room); 0 if not (yet).
	Up time.Duration
	// FromConnect is when From had come up (0: it never did), FromPath and
	// FromRelay what Stats.Path and Stats.Relay said of it then.
	FromConnect         time.Duration
	FromPath, FromRelay string
}

// Race is what a call that raced WebRTC and the tunnel (Config.Fallback)
// saw of each, whichever carried it: when each came up, since dialling or
// answering (0: it did not).
type Race struct {
	WebRTC                  time.Duration
	WebRTCPath, WebRTCRelay string        // Stats.Path and Stats.Relay of WebRTC when it came up
	Tunnel                  time.Duration // the other device was in the tunnel's room
}

// Call is one call, placed by Phone.Dial or accepted with Incoming.Accept.
type Call struct {
	p        *Phone
	id       string
	peer     parley.UserID
	outgoing bool
	media    Media
	start    time.Time
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticSample
	rec      *recorder
	tunnel   bool         // the media goes through the server's tunnel, not WebRTC
	share    []byte       // with tunnel, or a call that may race it: our share of the tunnel secret
	moved    atomic.Bool  // the call has moved from WebRTC to the tunnel, and not back up (set under mu)
	movedAt  atomic.Int64 // when it last moved down (UnixNano)
	onTunnel atomic.Bool  // a call that races the tiers sends through the tunnel: it started there, or moved (set under mu)
	sent     atomic.Int64
	sendDone atomic.Bool

	mu           sync.Mutex // guards the fields below
	remote       parley.Address
	described    bool                // our offer or answer is queued; candidates may follow
	localICE     []client.CallSignal // our candidates found before that
	haveRemote   bool                // the remote description is set
	pendingICE   []client.CallSignal // candidates waiting for it
	connectedAt  time.Time
	firstAudioAt time.Time
	endedAt      time.Time
	err          error // how the call ended: nil for a hang-up
	remoteHangup bool
	pathUsed     string // see Stats.Path
	relayUsed    string // see Stats.Relay
	hangupErr    error  // sending our hang-up failed
	tornDown     bool   // no more media goroutines may start
	timer        *time.Timer
	leg          *tunnelLeg // once the tunnel is open
	moves        []Move
	// A call that races WebRTC and the tunnel (Config.Fallback):
	keys       *tunnel.Keys // once both shares are known
	graceTimer *time.Timer  // starts it in the tunnel when WebRTC has not come up within RaceGrace
	graceOver  bool
	rtcFailed  bool      // ICE failed before WebRTC came up
	rtcUp      time.Time // when WebRTC came up, carrying the call or not
	rtcPath    string    // pathUsed and relayUsed then
	rtcRelay   string
	tunnelUp   time.Time // when the other device was first in the tunnel's room
	peerIn     bool      // it is there now
	opening    bool      // the tunnel is being opened
	tunnelErr  error     // opening it failed
	// After a move down (see moveBackUp):
	downs        int         // moves down so far
	backTimer    *time.Timer // moves the call back up when WebRTC has stayed up for a while
	restartTimer *time.Timer // the caller's next ICE restart
	restarts     int         // ICE restarts sent (caller) or answered

	recMu     sync.Mutex // serializes the recording, which takes WebRTC's packets or the tunnel's frames; guards the fields below
	recTunnel bool       // the recording takes the tunnel's frames
	lastRTP   time.Time  // when the last WebRTC audio packet recorded came
	lastTun   time.Time  // when the last tunnel frame came while the recording took the tunnel's
	lastRec   time.Time  // when the recording last took audio, from either
	fillFrom  time.Time  // set when the recording switched to the tunnel: its first frame follows silence since then

	wg        sync.WaitGroup // media goroutines
	endOnce   sync.Once
	audioOnce sync.Once
	connected chan struct{} // closed when the media path is up
	audio     chan struct{} // closed when the first audio packet arrives
	ended     chan struct{} // closed when the call ends
	closed    chan struct{} // closed when everything is torn down and recorded
}

// newCall returns a call that has not started; rec records into m.Record.
func (p *Phone) newCall(id string, peer parley.UserID, outgoing bool, m Media, rec *recorder) *Call {
	return &Call{
		p: p, id: id, peer: peer, outgoing: outgoing, media: m, start: p.cfg.Now(), rec: rec,
		connected: make(chan struct{}), audio: make(chan struct{}),
		ended: make(chan struct{}), closed: make(chan struct{}),
	}
}

// newRecorder starts the recording of m, if any: it writes the Ogg headers.
func newMediaRecorder(m Media) (*recorder, error) {
	if m.Record == nil {
		return newRecorder(nil), nil
	}
	w, err := NewOggWriter(m.Record, 2)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	return newRecorder(w), nil
}

// ID returns the call's id.
func (c *Call) ID() string { return c.id }

// Peer returns the other party.
func (c *Call) Peer() parley.UserID { return c.peer }

// Outgoing says whether this side placed the call.
func (c *Call) Outgoing() bool { return c.outgoing }

// Connected is closed when the media path is up.
func (c *Call) Connected() <-chan struct{} { return c.connected }

// Audio is closed when the first audio packet has arrived.
func (c *Call) Audio() <-chan struct{} { return c.audio }

// Done is closed when the call has ended and its recording is complete.
func (c *Call) Done() <-chan struct{} { return c.closed }

// Hangup ends the call and tells the other side; it returns once the
// hang-up is sent (or could not be) and the recording is complete, or when
// ctx ends.
func (c *Call) Hangup(ctx context.Context) error {
	c.end(nil, false, true)
	select {
	case <-c.closed:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hangupErr
}

// Wait waits for the call to end and returns its statistics and how it
// ended: nil for a hang-up by either side, else an error wrapping ErrBusy,
// ErrDeclined, ErrNoAnswer, ErrConnectionFailed, or the error that kept the
// offer from being sent.
func (c *Call) Wait(ctx context.Context) (Stats, error) {
	select {
	case <-c.closed:
	case <-ctx.Done():
		return c.Stats(), ctx.Err()
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	return c.Stats(), err
}

// Stats returns the measurements so far.
func (c *Call) Stats() Stats {
	var s Stats
	s.Received, s.Lost, s.Late, s.Gaps = c.rec.counts()
	c.mu.Lock()
	leg := c.leg
	c.mu.Unlock()
	if leg != nil {
		leg.stats(&s)
	}
	s.Sent = int(c.sent.Load())
	s.SendDone = c.sendDone.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.firstAudioAt.IsZero() {
		s.Setup = c.firstAudioAt.Sub(c.start)
	}
	if up := c.connectedAt; !up.IsZero() {
		// The first audio can come a moment before the connection state
		// says the path is up (see the hang-up in handle): then the path
		// was up by the time it came.
		if !c.firstAudioAt.IsZero() && c.firstAudioAt.Before(up) {
			up = c.firstAudioAt
		}
		s.Connect = up.Sub(c.start)
		end := c.endedAt
		if end.IsZero() {
			end = c.p.cfg.Now()
		}
		s.Duration = end.Sub(up)
	}
	s.Remote = c.remoteHangup
	if !c.tunnel && !c.onTunnel.Load() {
		s.Path, s.Relay = c.pathUsed, c.relayUsed
	}
	s.Moves = slices.Clone(c.moves)
	if c.keys != nil {
		r := &Race{WebRTCPath: c.rtcPath, WebRTCRelay: c.rtcRelay}
		if !c.rtcUp.IsZero() {
			r.WebRTC = c.rtcUp.Sub(c.start)
		}
		if !c.tunnelUp.IsZero() {
			r.Tunnel = c.tunnelUp.Sub(c.start)
		}
		s.Race = r
	}
	return s
}

// path describes the selected candidate pair: the candidate types,
// local/remote, and the transport to the TURN server of a local relay
// candidate. It must not be called with c.mu held: pion's agent, whose
// callbacks take c.mu, answers it.
func (c *Call) path() (types, relay string) {
	for _, t := range c.pc.GetTransceivers() {
		s := t.Sender()
		if s == nil || s.Transport() == nil {
			continue
		}
		ice := s.Transport().ICETransport()
		pair, err := ice.GetSelectedCandidatePair()
		if err != nil || pair == nil {
			continue
		}
		types = pair.Local.Typ.String() + "/" + pair.Remote.Typ.String()
		if pair.Local.Typ == webrtc.ICECandidateTypeRelay {
			relay = c.relayProtocol(ice)
		}
		return types, relay
	}
	return "", ""
}

// relayProtocol returns the relay protocol of the local candidate of the
// selected pair, from the stats: webrtc.ICECandidate does not carry it.
func (c *Call) relayProtocol(t *webrtc.ICETransport) string {
	pair, ok := t.GetSelectedCandidatePairStats()
	if !ok {
		return ""
	}
	if cs, ok := c.pc.GetStats()[pair.LocalCandidateID].(webrtc.ICECandidateStats); ok {
		return cs.RelayProtocol
	}
	return ""
}

// newPeerConnection creates the PeerConnection with one local Opus track and
// its callbacks.
func (c *Call) newPeerConnection() error {
	cfg := webrtc.Configuration{ICEServers: c.p.cfg.ICEServers}
	if c.p.cfg.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	api := c.p.api
	if c.share != nil { // it may move to the tunnel
		api = c.p.mapi
	}
	pc, err := api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("creating the peer connection: %w", err)
	}
	c.mu.Lock()
	c.pc = pc
	c.mu.Unlock()
	c.track, err = webrtc.NewTrackLocalStaticSample(opusCodec, "audio", "parley")
	if err != nil {
		return err
	}
	if _, err := pc.AddTrack(c.track); err != nil {
		return fmt.Errorf("adding the audio track: %w", err)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return // gathering is complete; the signals have no end-of-candidates
		}
		b, err := json.Marshal(cand.ToJSON())
		if err != nil {
			return
		}
		sig := client.CallSignal{CallID: c.id, Type: client.CallICE, Candidate: string(b)}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.described {
			c.localICE = append(c.localICE, sig)
			return
		}
		c.p.send(c.peer, sig, nil)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		c.p.log.Debug("call connection state", "call", c.id, "state", s)
		if c.moved.Load() {
			c.whileMoved(s) // WebRTC carries nothing; it may come back
			return
		}
		onTunnel := c.onTunnel.Load() // it raced, and the tunnel carries it
		switch s {
		case webrtc.PeerConnectionStateConnected:
			c.webrtcUp()
		case webrtc.PeerConnectionStateDisconnected:
			if connected(c) && !onTunnel {
				c.move(fmt.Sprintf("nothing came over WebRTC for %v", movableDisconnected), true)
			}
		case webrtc.PeerConnectionStateFailed:
			reason := c.failure()
			switch {
			case onTunnel:
				c.p.log.Info("WebRTC failed; the call stays in the tunnel", "call", c.id, "reason", reason)
			case connected(c) && c.move("WebRTC failed: "+reason, true):
			case !connected(c) && c.raced() && c.rtcFailedBeforeUp():
			default:
				c.end(fmt.Errorf("%w: %s", ErrConnectionFailed, reason), false, true)
			}
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() != webrtc.RTPCodecTypeAudio || !c.startMedia() {
			return
		}
		go c.receive(t)
	})
	return nil
}

// failure says why the media path did not come up or broke.
func (c *Call) failure() string {
	c.mu.Lock()
	connected, raced := !c.connectedAt.IsZero(), c.keys != nil
	c.mu.Unlock()
	switch {
	case connected:
		return "the media path broke and did not recover"
	case c.tunnel:
		return c.peer.String() + " did not come into the server's tunnel"
	case raced:
		return "neither WebRTC nor the server's tunnel came up"
	case c.p.cfg.RelayOnly:
		return "ICE found no path through the TURN relay (is the relay reachable, and the credentials valid?)"
	case len(c.p.cfg.ICEServers) == 0:
		return "ICE found no direct path between the devices, and no TURN relay is configured"
	default:
		return "ICE found no path between the devices, direct or relayed"
	}
}

// raced says whether the call races WebRTC and the tunnel.
func (c *Call) raced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys != nil
}

// startMedia counts one media goroutine in, unless the call is being torn
// down.
func (c *Call) startMedia() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return false
	}
	c.wg.Add(1)
	return true
}

// connectLocked notes that the media path is up, the first time: WebRTC's
// (tunnel false) or the tunnel's. Called with c.mu held; if it reports
// true, the caller calls started once c.mu is released.
func (c *Call) connectLocked(now time.Time, tunnel bool) bool {
	if !c.connectedAt.IsZero() || !c.endedAt.IsZero() {
		return false
	}
	c.connectedAt = now
	if tunnel && !c.tunnel {
		c.onTunnel.Store(true) // it raced, and the tunnel came first
	}
	for _, t := range []*time.Timer{c.timer, c.graceTimer} {
		if t != nil {
			t.Stop()
		}
	}
	return true
}

// startInTunnelLocked connects the call in the tunnel if it has not
// connected, the other device is in the room, and the call may start
// there: a tunnel call, or one that raced and gave WebRTC its grace, saw
// ICE fail, or moved. Called with c.mu held; if it reports true, the
// caller calls started once c.mu is released.
func (c *Call) startInTunnelLocked(now time.Time) bool {
	return c.peerIn && (c.tunnel || c.graceOver || c.rtcFailed || c.moved.Load()) && c.connectLocked(now, true)
}

// started announces that the call is connected and starts sending.
func (c *Call) started() {
	c.mu.Lock()
	send := c.tunnel || c.keys != nil || c.media.Send != nil
	c.mu.Unlock()
	close(c.connected)
	if send && c.startMedia() {
		go c.send()
	}
}

// RaceGrace is how long a call that races the tiers gives WebRTC to come
// up, from the answer, before it starts in the tunnel: ICE connects within
// a second on a network that lets UDP through, directly or through the
// TURN relay, and a call that starts on WebRTC need not move.
const RaceGrace = time.Second

// webrtcUp takes WebRTC's coming up: the call connects on it, or, when
// it started in the tunnel, moves up to it if it runs over UDP. Over TCP
// (TURN over TCP or TLS) it is no better than the tunnel, and the call
// stays there.
func (c *Call) webrtcUp() {
	now := c.p.cfg.Now()
	types, relay := c.path()
	c.mu.Lock()
	if c.rtcUp.IsZero() {
		c.rtcUp, c.rtcPath, c.rtcRelay = now, types, relay
	}
	switch {
	case c.moved.Load():
	case c.connectedAt.IsZero():
		c.pathUsed, c.relayUsed = types, relay
		if c.connectLocked(now, false) {
			c.mu.Unlock()
			c.started()
			return
		}
	case !c.onTunnel.Load():
	case overUDP(relay):
		c.moveUpLocked(now, types, relay, "WebRTC came up over UDP", c.connectedAt)
	default:
		c.p.log.Info("WebRTC came up through the relay over "+relay+"; the call stays in the tunnel", "call", c.id)
	}
	c.mu.Unlock()
}

// overUDP says whether WebRTC's path, whose local candidate reaches the
// TURN relay over relay ("" for none), runs over UDP: through the relay
// over TCP or TLS it is no better than the tunnel.
func overUDP(relay string) bool { return relay == "" || relay == "udp" }

// moveUpLocked moves the call's media from the tunnel to WebRTC, which is
// up on path types through relay: our audio goes there from the next
// frame; the other side hears it there (the recording follows the audio
// that comes), and moves up itself when its WebRTC is up. from is when
// the tunnel had come up. Called with c.mu held.
func (c *Call) moveUpLocked(now time.Time, types, relay, reason string, from time.Time) {
	var fromPath string
	if l := c.leg; l != nil {
		fromPath = "tunnel/" + l.s.Path()
	}
	c.moves = append(c.moves, Move{
		At: now.Sub(c.start), From: PathTunnel, To: PathWebRTC, Up: now.Sub(c.start),
		Reason: reason, FromConnect: from.Sub(c.start), FromPath: fromPath,
	})
	c.pathUsed, c.relayUsed = types, relay
	c.moved.Store(false)
	c.onTunnel.Store(false)
	for _, t := range []**time.Timer{&c.backTimer, &c.restartTimer} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
	c.p.log.Info("the call moves up to WebRTC", "call", c.id, "path", types, "reason", reason)
}

// moveBackAfter is how long WebRTC must stay up after a call moved down
// before the call moves back up to it: long enough to tell a path that
// came back from one that flickers. Each further move down doubles it, up
// to maxMoveBackAfter: a path that keeps breaking costs a gap each time.
const (
	moveBackAfter    = 2 * time.Second
	maxMoveBackAfter = 32 * time.Second
)

// restartAfter is how long after a move down the caller first restarts
// ICE if WebRTC has not come back by itself (ICE fails only after
// iceFailed, and a device whose address changed needs fresh candidates);
// each restart that does not bring it back doubles the wait, up to
// maxRestartAfter.
const (
	restartAfter    = 4 * time.Second
	maxRestartAfter = time.Minute
)

// whileMoved follows WebRTC's connection state after a move down: when it
// is up again, the call moves back up once it has stayed up for a while
// (moveBackUp); when it fails, the caller restarts ICE.
func (c *Call) whileMoved(s webrtc.PeerConnectionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.endedAt.IsZero() || !c.moved.Load() {
		return
	}
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if c.backTimer == nil {
			d := min(moveBackAfter<<max(c.downs-1, 0), maxMoveBackAfter)
			c.backTimer = time.AfterFunc(d, c.moveBackUp)
		}
	case webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateFailed:
		if c.backTimer != nil {
			c.backTimer.Stop()
			c.backTimer = nil
		}
		if s == webrtc.PeerConnectionStateFailed {
			c.scheduleRestartLocked(0)
		}
	}
}

// moveBackUp moves a call that moved down back up to WebRTC, which has
// stayed up since it came back, if it runs over UDP.
func (c *Call) moveBackUp() { c.moveBack("") }

// followUp moves a call that moved down back up to WebRTC when the other
// side did (its audio comes that way again), if WebRTC is up here too.
func (c *Call) followUp() { c.moveBack(c.peer.String() + " moved the call back up to WebRTC") }

// moveBack moves a call that moved down back up to WebRTC if it is up and
// runs over UDP; reason "" says that it came back.
func (c *Call) moveBack(reason string) {
	now := c.p.cfg.Now()
	types, relay := c.path()
	c.mu.Lock()
	defer c.mu.Unlock()
	if reason == "" {
		c.backTimer = nil
	}
	if !c.moved.Load() || !c.endedAt.IsZero() || c.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		return
	}
	if !overUDP(relay) {
		c.p.log.Info("WebRTC came back through the relay over "+relay+"; the call stays in the tunnel", "call", c.id)
		return
	}
	if reason == "" {
		reason = "WebRTC came back over UDP"
		if c.restarts > 0 {
			reason += " after an ICE restart"
		}
	}
	var from time.Time
	if n := len(c.moves); n > 0 {
		from = c.start.Add(c.moves[n-1].Up)
	}
	c.moveUpLocked(now, types, relay, reason, from)
}

// scheduleRestartLocked has the caller restart ICE after d (0: the wait
// for the restarts so far), unless a restart is due already. Called with
// c.mu held.
func (c *Call) scheduleRestartLocked(d time.Duration) {
	if !c.outgoing || c.restartTimer != nil || c.pc == nil {
		return
	}
	if d == 0 {
		d = min(restartAfter<<c.restarts, maxRestartAfter)
	}
	c.restartTimer = time.AfterFunc(d, c.restartICE)
}

// restartICE sends an offer with fresh ICE credentials (RFC 8445 section
// 9; W3C WebRTC, "ICE restart"), unless WebRTC came back meanwhile; the
// callee answers it (restarted), and the candidates of both trickle as
// at the start. It schedules the next restart.
func (c *Call) restartICE() {
	c.mu.Lock()
	c.restartTimer = nil
	if !c.moved.Load() || !c.endedAt.IsZero() || c.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		c.mu.Unlock()
		return
	}
	c.restarts++
	c.described = false // the offer goes before the candidates it gathers
	c.scheduleRestartLocked(0)
	pc := c.pc
	c.mu.Unlock()
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.p.log.Info("could not restart ICE", "call", c.id, "err", err)
		c.mu.Lock()
		c.flushICELocked()
		c.mu.Unlock()
		return
	}
	c.p.log.Info("restarting ICE to find a WebRTC path again", "call", c.id)
	c.describe(client.CallRestart, offer.SDP)
}

// restarted takes a restart signal: the caller's offer, which the callee
// answers, or the callee's answer to ours.
func (c *Call) restarted(sig client.CallSignal) {
	if c.outgoing {
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sig.SDP}); err != nil {
			c.p.log.Info("the answer to our ICE restart was refused", "call", c.id, "err", err)
		}
		return
	}
	c.mu.Lock()
	c.restarts++
	c.described = false
	c.mu.Unlock()
	err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sig.SDP})
	var answer webrtc.SessionDescription
	if err == nil {
		answer, err = c.pc.CreateAnswer(nil)
	}
	if err == nil {
		err = c.pc.SetLocalDescription(answer)
	}
	if err != nil {
		c.p.log.Info("could not answer an ICE restart", "call", c.id, "err", err)
		c.mu.Lock()
		c.flushICELocked()
		c.mu.Unlock()
		return
	}
	c.describe(client.CallRestart, answer.SDP)
}

// tunnelPeer follows the other device in and out of the tunnel's room: a
// call that connects there connects when it comes in, one that moved
// there is up.
func (c *Call) tunnelPeer(present bool) {
	now := c.p.cfg.Now()
	c.mu.Lock()
	c.peerIn = present
	if !present {
		c.mu.Unlock()
		return
	}
	if c.tunnelUp.IsZero() {
		c.tunnelUp = now
	}
	if n := len(c.moves); n > 0 && c.moves[n-1].To == PathTunnel && c.moves[n-1].Up == 0 {
		c.moves[n-1].Up = now.Sub(c.start)
		if c.timer != nil {
			c.timer.Stop() // see move
		}
	}
	start := c.startInTunnelLocked(now)
	c.mu.Unlock()
	if start {
		c.started()
	}
}

// startRace opens the tunnel beside WebRTC, once both shares of its secret
// are known, and gives WebRTC RaceGrace to come up before the call may
// start in the tunnel.
func (c *Call) startRace(keys tunnel.Keys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.endedAt.IsZero() {
		return
	}
	c.keys = &keys
	c.graceTimer = time.AfterFunc(RaceGrace, func() {
		c.mu.Lock()
		c.graceOver = true
		start := c.startInTunnelLocked(c.p.cfg.Now())
		c.mu.Unlock()
		if start {
			c.started()
		}
	})
	c.openTunnelLocked()
}

// openTunnelLocked opens the tunnel, unless it is open or opening. Called
// with c.mu held.
func (c *Call) openTunnelLocked() {
	if c.leg != nil || c.opening || c.keys == nil {
		return
	}
	c.opening = true
	go c.openTunnel(*c.keys)
}

// rtcFailedBeforeUp takes ICE's failure in a call that races the tiers
// and had not connected: the tunnel carries it when it comes, at once.
// It reports false if the tunnel failed too.
func (c *Call) rtcFailedBeforeUp() bool {
	c.mu.Lock()
	c.rtcFailed = true
	failed := c.tunnelErr != nil && c.leg == nil && !c.opening
	start := c.startInTunnelLocked(c.p.cfg.Now())
	c.mu.Unlock()
	if start {
		c.started()
	}
	return !failed
}

// move takes the call's media from WebRTC to the server's tunnel if it
// can (both shares of the tunnel secret are known) and has not already:
// our audio goes there from the next frame (at once if the tunnel is open
// and the other device in it, as it is when the race left it standing
// by), what still comes over WebRTC is ignored until the other side moves
// back up (takeRTP), and with tell the other side is asked to move too.
// The PeerConnection stays open, and the call moves back up when it
// comes back (whileMoved). It reports whether the call moves (now or
// before).
func (c *Call) move(reason string, tell bool) bool {
	now := c.p.cfg.Now()
	c.mu.Lock()
	if c.keys == nil || !c.endedAt.IsZero() {
		c.mu.Unlock()
		return false
	}
	if c.moved.Load() {
		c.mu.Unlock()
		return true
	}
	c.moved.Store(true)
	c.movedAt.Store(time.Now().UnixNano()) // the clock of lastRTP and lastTun
	c.downs++
	if c.pc != nil && c.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		c.scheduleRestartLocked(restartAfter)
	}
	if c.onTunnel.Load() { // it is there already: it stays
		c.mu.Unlock()
		return true
	}
	c.onTunnel.Store(true)
	m := Move{At: now.Sub(c.start), From: PathWebRTC, To: PathTunnel, Reason: reason, FromPath: c.pathUsed, FromRelay: c.relayUsed}
	if !c.rtcUp.IsZero() {
		m.FromConnect = c.rtcUp.Sub(c.start)
	}
	if c.leg != nil && c.peerIn {
		m.Up = m.At
	}
	c.moves = append(c.moves, m)
	start := c.startInTunnelLocked(now) // the other side moved before we connected
	// The tunnel gets the time a new call gets to come up.
	if m.Up == 0 && !c.connectedAt.IsZero() {
		d := c.p.cfg.ConnectTimeout
		c.timer = time.AfterFunc(d, func() {
			c.end(fmt.Errorf("%w: WebRTC broke and the server's tunnel did not connect within %v", ErrConnectionFailed, d), false, true)
		})
	}
	c.openTunnelLocked()
	c.mu.Unlock()
	if start {
		c.started()
	}
	c.p.log.Info("the call moves to the server's tunnel", "call", c.id, "reason", reason)
	if tell {
		c.p.send(c.peer, client.CallSignal{CallID: c.id, Type: client.CallMove}, nil)
	}
	return true
}

// setShare sets and returns our share of the tunnel secret. Under c.mu:
// handle reads it from the signals' goroutine, which may already take
// the caller's candidates while accept runs.
func (c *Call) setShare() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.share = newShare()
	return c.share
}

// dial creates the offer and sends it; it returns once the offer is sent.
func (c *Call) dial(ctx context.Context) error {
	var sdp string
	if c.tunnel || c.p.cfg.Fallback {
		c.setShare()
	}
	if !c.tunnel {
		if err := c.newPeerConnection(); err != nil {
			return err
		}
		offer, err := c.pc.CreateOffer(nil)
		if err != nil {
			return fmt.Errorf("creating the offer: %w", err)
		}
		if err := c.pc.SetLocalDescription(offer); err != nil {
			return fmt.Errorf("setting the offer: %w", err)
		}
		sdp = offer.SDP
	}
	sent := c.describe(client.CallOffer, sdp)
	c.mu.Lock()
	if c.endedAt.IsZero() {
		c.timer = time.AfterFunc(c.p.cfg.RingTimeout, func() {
			c.end(fmt.Errorf("%w from %s within %v", ErrNoAnswer, c.peer, c.p.cfg.RingTimeout), false, true)
		})
	}
	c.mu.Unlock()
	var err error
	select {
	case err = <-sent:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("calling %s: %w", c.peer, err)
	}
	return nil
}

// accept answers offer, with the candidates that came with it; it returns
// once the answer is sent.
func (c *Call) accept(ctx context.Context, offer client.CallSignal, queued []client.CallSignal) error {
	if c.tunnel {
		return c.acceptTunnel(ctx, offer)
	}
	var keys *tunnel.Keys
	if offer.TunnelKey != nil && c.p.cfg.Tunnel != nil { // the call races the tunnel
		k, err := tunnel.DeriveKeys(offer.TunnelKey, c.setShare(), c.id)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConnectionFailed, err)
		}
		keys = &k
	}
	if err := c.newPeerConnection(); err != nil {
		return err
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		return fmt.Errorf("%w: the caller's offer: %w", ErrConnectionFailed, err)
	}
	c.mu.Lock()
	c.haveRemote = true
	c.mu.Unlock()
	for _, s := range queued {
		c.addCandidate(s)
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: creating the answer: %w", ErrConnectionFailed, err)
	}
	if err := c.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("setting the answer: %w", err)
	}
	sent := c.describe(client.CallAnswer, answer.SDP)
	c.startConnectTimer()
	if keys != nil {
		c.startRace(*keys)
	}
	return c.waitSent(ctx, sent)
}

// waitSent waits for our answer to be sent.
func (c *Call) waitSent(ctx context.Context, sent <-chan error) error {
	var err error
	select {
	case err = <-sent:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("answering %s: %w", c.peer, err)
	}
	return nil
}

// describe queues our offer or answer, then the candidates found so far
// (gathering starts with SetLocalDescription), so that the description goes
// out first. The channel gets the result of sending the description.
func (c *Call) describe(typ client.CallSignalType, sdp string) <-chan error {
	sent := make(chan error, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	sig := client.CallSignal{CallID: c.id, Type: typ, SDP: sdp, TunnelKey: c.share}
	if typ == client.CallRestart {
		sig.TunnelKey = nil // it was agreed at the start
	}
	c.p.send(c.peer, sig, func(err error) { sent <- err })
	c.flushICELocked()
	return sent
}

// flushICELocked sends our candidates as they come from now on, and those
// found so far now. Called with c.mu held.
func (c *Call) flushICELocked() {
	c.described = true
	for _, sig := range c.localICE {
		c.p.send(c.peer, sig, nil)
	}
	c.localICE = nil
}

func (c *Call) startConnectTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if !c.connectedAt.IsZero() || !c.endedAt.IsZero() {
		return
	}
	d := c.p.cfg.ConnectTimeout
	c.timer = time.AfterFunc(d, func() {
		c.end(fmt.Errorf("%w: no media path within %v: %s", ErrConnectionFailed, d, c.failure()), false, true)
	})
}

// handle takes a signal for this call. Called with p.mu held; it must not
// block for long.
func (c *Call) handle(sig client.CallSignal) {
	c.mu.Lock()
	haveRemote, remote, ready := c.haveRemote, c.remote, c.pc != nil || c.share != nil
	c.mu.Unlock()
	if !ready {
		return // not set up yet: nothing can be for this call
	}
	if c.outgoing && !haveRemote {
		// Ringing: any device of the callee may answer, decline or be busy.
		switch sig.Type {
		case client.CallAnswer:
			c.answered(sig)
		case client.CallICE: // only if the transport reordered the signals
			c.addCandidate(sig)
		case client.CallBusy:
			c.end(fmt.Errorf("%s is %w", c.peer, ErrBusy), true, false)
		case client.CallDecline:
			c.end(fmt.Errorf("%s %w the call", c.peer, ErrDeclined), true, false)
		case client.CallHangup: // the callee's device could not take the call
			c.end(fmt.Errorf("%w: %s ended the call before answering", ErrDeclined, c.peer), true, false)
		}
		return
	}
	if sig.From != remote {
		c.p.log.Debug("call signal from another device ignored", "call", c.id, "type", sig.Type, "from", sig.From)
		return
	}
	switch sig.Type {
	case client.CallICE:
		c.addCandidate(sig)
	case client.CallMove:
		go c.move(sig.From.User.String()+" moved the call to the tunnel", false)
	case client.CallRestart:
		// Here, not in a goroutine: the candidates that follow need
		// the new description first.
		if c.raced() && !c.tunnel {
			c.restarted(sig)
		}
	case client.CallHangup:
		c.mu.Lock()
		// Audio that came proves the path up too: the first packets may
		// come before the connection state says so.
		connected := !c.connectedAt.IsZero() || !c.firstAudioAt.IsZero()
		c.mu.Unlock()
		if !connected { // it timed out first, or could not take the call
			c.end(fmt.Errorf("%w: %s gave up before the media path came up", ErrConnectionFailed, c.peer), true, false)
			return
		}
		c.end(nil, true, false)
	}
}

// answered applies the callee's answer.
func (c *Call) answered(sig client.CallSignal) {
	if c.tunnel {
		c.answeredTunnel(sig)
		return
	}
	err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sig.SDP})
	if err != nil {
		c.end(fmt.Errorf("%w: the answer of %s: %w", ErrConnectionFailed, sig.From, err), false, true)
		return
	}
	c.mu.Lock()
	c.remote, c.haveRemote = sig.From, true
	queued := c.pendingICE
	c.pendingICE = nil
	c.mu.Unlock()
	for _, q := range queued {
		if q.From == sig.From { // not those of devices that did not answer
			c.addCandidate(q)
		}
	}
	c.startConnectTimer()
	if c.share != nil && sig.TunnelKey != nil { // the call races the tunnel
		if keys, err := tunnel.DeriveKeys(c.share, sig.TunnelKey, c.id); err == nil {
			c.startRace(keys)
		}
	}
}

// addCandidate adds a remote candidate, or queues it until the remote
// description is set.
func (c *Call) addCandidate(sig client.CallSignal) {
	if c.tunnel {
		return
	}
	c.mu.Lock()
	if !c.haveRemote {
		if len(c.pendingICE) < maxQueuedCandidates {
			c.pendingICE = append(c.pendingICE, sig)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	var cand webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(sig.Candidate), &cand); err != nil {
		c.p.log.Debug("malformed ICE candidate", "call", c.id, "err", err)
		return
	}
	if err := c.pc.AddICECandidate(cand); err != nil {
		c.p.log.Debug("ICE candidate refused", "call", c.id, "err", err)
	}
}

// end ends the call once: err says how (nil for a hang-up), remote whether
// the other side ended it, and notify whether to send a hang-up.
func (c *Call) end(err error, remote, notify bool) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		c.err, c.remoteHangup, c.endedAt = err, remote, c.p.cfg.Now()
		if c.timer != nil {
			c.timer.Stop()
		}
		if c.graceTimer != nil {
			c.graceTimer.Stop()
		}
		c.mu.Unlock()
		var sent chan error
		if notify {
			sent = make(chan error, 1)
			c.p.send(c.peer, client.CallSignal{CallID: c.id, Type: client.CallHangup}, func(err error) { sent <- err })
		}
		close(c.ended)
		go c.teardown(sent)
	})
}

// hangupTimeout bounds the wait for a hang-up to be sent when a call ends.
const hangupTimeout = 5 * time.Second

// teardown closes the connection, waits for the media goroutines, finishes
// the recording, and waits for the hang-up (if sent) to leave, so that the
// program may exit once Done is closed.
func (c *Call) teardown(sent <-chan error) {
	c.mu.Lock()
	c.tornDown = true
	pc, leg := c.pc, c.leg
	c.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			c.p.log.Debug("closing the peer connection", "call", c.id, "err", err)
		}
	}
	if leg != nil {
		leg.close()
	}
	c.wg.Wait()
	recErr := c.rec.finish()
	var sendErr error
	if sent != nil {
		select {
		case sendErr = <-sent:
		case <-time.After(hangupTimeout):
			sendErr = fmt.Errorf("the hang-up was not sent within %v", hangupTimeout)
		}
	}
	c.mu.Lock()
	if recErr != nil && c.err == nil {
		c.err = fmt.Errorf("recording: %w", recErr)
	}
	if sendErr != nil {
		c.hangupErr = fmt.Errorf("telling %s: %w", c.peer, sendErr)
	}
	c.mu.Unlock()
	c.p.release(c)
	close(c.closed)
}

// send paces the packets of the file to send in real time, writing each
// on the WebRTC track or, in a call through the tunnel (from the start or
// since a move), to the tunnel. A call that has or may have the tunnel
// goes on after the file (or without one) with empty frames, as a
// microphone's silence would: the tunnel's receiver then plays silence
// rather than concealing a loss.
func (c *Call) send() {
	defer c.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	c.mu.Lock()
	keepAlive := c.tunnel || c.keys != nil
	c.mu.Unlock()
	var lower *ladder
	if keepAlive && len(c.media.SendLower) > 0 {
		var err error
		if lower, err = loadLadder(c.media.SendLower); err != nil {
			c.p.log.Warn("the lower-bitrate audio is broken; sending the file as it is", "call", c.id, "err", err)
		}
	}
	next := time.Now()
	src := c.media.Send
	away := false // the last frame went over WebRTC
	for n := 0; ; n++ {
		leg, tunnelled := c.sendLeg()
		if leg != nil && away {
			leg.s.Resumed() // it moved up, then down again
		}
		away = !tunnelled
		var pkt []byte
		d := frameDuration
		version := 0 // Media.Send, or 1 + an index in Media.SendLower
		if src != nil {
			p, err := src.ReadPacket()
			switch {
			case errors.Is(err, io.EOF):
				c.sendDone.Store(true)
				src = nil
			case err != nil:
				c.p.log.Warn("the audio file to send is broken; sending stops", "call", c.id, "err", err)
				src = nil
			default:
				pkt = p
				d, _ = PacketDuration(pkt) // ReadPacket checked it
				if lower != nil && leg != nil && d == frameDuration {
					if alt, i, ok := lower.pick(n, leg.s.Bitrate()); ok {
						pkt, version = alt, i+1
					}
				}
			}
		}
		if pkt == nil && !keepAlive {
			return
		}
		var err error
		switch {
		case leg != nil:
			err = leg.write(pkt, d, version)
		case tunnelled: // moved, and the tunnel is still opening: the frame is lost
			pkt = nil
		case pkt != nil:
			err = c.writeRTP(pkt, d)
		}
		if err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				c.p.log.Debug("sending audio", "call", c.id, "err", err)
			}
			return
		}
		if pkt != nil {
			c.sent.Add(1)
		}
		next = next.Add(d)
		t.Reset(time.Until(next))
		select {
		case <-t.C:
		case <-c.ended:
			return
		}
	}
}

// sendLeg says where the next frame goes: the tunnel (tunnelled), through
// leg once it is open, or WebRTC.
func (c *Call) sendLeg() (leg *tunnelLeg, tunnelled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tunnel || c.onTunnel.Load() {
		return c.leg, true
	}
	return nil, false
}

// writeRTP sends one packet on the WebRTC track.
func (c *Call) writeRTP(pkt []byte, d time.Duration) error {
	return c.track.WriteSample(media.Sample{Data: pkt, Duration: d})
}

// receive records the audio of t until the connection closes.
func (c *Call) receive(t *webrtc.TrackRemote) {
	defer c.wg.Done()
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			// Our own teardown, or the other side closed the DTLS session
			// (it hung up, and the hang-up signal was lost or is late).
			select {
			case <-c.ended:
			default:
				if c.Tunnel() {
					return // the tunnel carries the call
				}
				c.p.log.Debug("the media ended without a hang-up", "call", c.id, "err", err)
				c.end(nil, true, false)
			}
			return
		}
		c.audioOnce.Do(func() {
			c.mu.Lock()
			c.firstAudioAt = c.p.cfg.Now()
			c.mu.Unlock()
			close(c.audio)
		})
		if tr := c.media.Trace; tr != nil {
			tr(TracePacket{Seq: pkt.SequenceNumber, Timestamp: pkt.Timestamp, Size: len(pkt.Payload), At: time.Now()})
		}
		c.recMu.Lock()
		now := time.Now()
		moved, follow := c.moved.Load(), false
		if c.takeRTP(now, moved) {
			if c.recTunnel { // the other side moved up
				c.recordWebRTC(now)
				follow = moved
			}
			c.rec.push(pkt)
			c.lastRTP, c.lastRec = now, now
		}
		c.recMu.Unlock()
		if follow {
			go c.followUp()
		}
	}
}

// takeRTP says whether the recording takes a WebRTC packet that came at
// now: always before a move down; after it, not the stragglers from
// before the move, but the other side's audio once it moved back up (its
// tunnel audio, which came after the move, stopped) and from then on.
// Called with c.recMu held.
func (c *Call) takeRTP(now time.Time, moved bool) bool {
	if !moved {
		return true
	}
	movedAt := c.movedAt.Load()
	if !c.recTunnel {
		return c.lastRTP.UnixNano() > movedAt
	}
	return c.lastTun.UnixNano() > movedAt && now.Sub(c.lastTun) >= resumeAfter
}
