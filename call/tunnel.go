package call

// Tier 2: the call's audio through the server's call tunnel (package
// tunnel). Each side sends its share of the tunnel secret in its offer or
// answer, inside the end-to-end encrypted signalling; both derive the room
// they meet in and one SFrame key per direction (tunnel.DeriveKeys). The
// audio goes as packets of package tunnel/audio (each repeats the previous
// frames, as deep as the loss the other side reports), encrypted with SFrame
// (RFC 9605, cipher suite AES_128_CTR_HMAC_SHA256_80, made for media), and
// the receiver plays them out through an adaptive jitter buffer that
// conceals what did not come in time. The server sees the room id and
// opaque packets.

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/sframe"
	"github.com/parleychat/parley/tunnel"
	"github.com/parleychat/parley/tunnel/audio"
)

// The values of Config.Path.
const (
	PathWebRTC = "webrtc" // tier 1: WebRTC, direct or through TURN
	PathTunnel = "tunnel" // tier 2: the server's call tunnel
)

// TunnelConfig is how a Phone reaches the server's call tunnel.
type TunnelConfig struct {
	// Ticket returns a ticket to the tunnel (client.Client.TunnelTicket).
	Ticket func(ctx context.Context) (*tunnel.Ticket, error)
	// Dial opens a carrier; nil opens WebSockets (and WebTransport
	// where the ticket offers it).
	Dial tunnel.DialFunc
}

// suite is the SFrame cipher suite of the tunnel's media.
const suite = sframe.Suite(1) // AES_128_CTR_HMAC_SHA256_80, RFC 9605 section 8.1

// The sender's redundancy bound on a reliable carrier (a WebSocket) and a
// lossy one (WebTransport datagrams).
const (
	reliableDepth = 1
	lossyDepth    = 12
)

// frameDuration is the duration of one Opus frame in the tunnel; the files
// opusenc writes, and browsers' encoders, use 20 ms.
const frameDuration = 20 * time.Millisecond

// frameTS is the RTP-style timestamp (48 kHz) of frame seq, for traces.
func frameTS(seq uint64) uint32 { return uint32(seq * uint64(frameDuration*opusRate/time.Second)) }

func newShare() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// PathSwitch is one move of a tunnelled call between carriers.
type PathSwitch = tunnel.Switch

// tunnelLeg carries a call's audio through the tunnel.
type tunnelLeg struct {
	c      *Call
	link   *tunnel.Link
	sf     *sframe.Context
	me     uint64 // our SFrame KID
	ctr    uint64 // our SFrame counter: guarded by mu
	cancel context.CancelFunc

	mu  sync.Mutex // guards the fields below and snd and jb
	snd *audio.Sender
	jb  *audio.JitterBuffer
	seq uint64 // of the next frame we send
	// the jitter buffer's counts at the last loss report (run's goroutine only)
	lastPlayed, lastConcealed int
	carrier                   string // the link's carrier when the last frame was sent
	first                     bool   // a frame has arrived
}

// acceptTunnel answers a tunnel-only offer: it derives the keys, opens the
// link and sends our answer.
func (c *Call) acceptTunnel(ctx context.Context, offer client.CallSignal) error {
	if c.p.cfg.Tunnel == nil {
		return fmt.Errorf("%w: %s called through the server's tunnel, %w", ErrConnectionFailed, c.peer, ErrNoTunnel)
	}
	c.share = newShare()
	keys, err := tunnel.DeriveKeys(offer.TunnelKey, c.share, c.id)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConnectionFailed, err)
	}
	c.mu.Lock()
	c.haveRemote = true
	c.mu.Unlock()
	c.startConnectTimer()
	go c.openTunnel(keys)
	return c.waitSent(ctx, c.describe(client.CallAnswer, ""))
}

// answeredTunnel takes the callee's answer to a tunnel-only offer.
func (c *Call) answeredTunnel(sig client.CallSignal) {
	keys, err := tunnel.DeriveKeys(c.share, sig.TunnelKey, c.id)
	if err != nil {
		c.end(fmt.Errorf("%w: the answer of %s has no tunnel key", ErrConnectionFailed, sig.From), false, true)
		return
	}
	c.mu.Lock()
	c.remote, c.haveRemote = sig.From, true
	c.mu.Unlock()
	c.startConnectTimer()
	go c.openTunnel(keys)
}

// openTunnel joins the room and runs the leg; the call connects when the
// other device is in the room too.
func (c *Call) openTunnel(keys tunnel.Keys) {
	if !c.startMedia() {
		return
	}
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	leg, err := c.newLeg(ctx, keys)
	if err != nil {
		cancel()
		c.end(fmt.Errorf("%w: the server's call tunnel: %w", ErrConnectionFailed, err), false, true)
		return
	}
	leg.cancel = cancel
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		leg.close()
		return
	}
	c.leg = leg
	c.mu.Unlock()
	leg.run(ctx)
}

func (c *Call) newLeg(ctx context.Context, keys tunnel.Keys) (*tunnelLeg, error) {
	sf, err := sframe.NewContext(suite)
	if err != nil {
		return nil, err
	}
	me, peer, myKey, peerKey := uint64(tunnel.CallerKID), uint64(tunnel.CalleeKID), keys.Caller, keys.Callee
	if !c.outgoing {
		me, peer, myKey, peerKey = peer, me, peerKey, myKey
	}
	if err := sf.AddKey(me, myKey); err != nil {
		return nil, err
	}
	if err := sf.AddKey(peer, peerKey); err != nil {
		return nil, err
	}
	tc := c.p.cfg.Tunnel
	dial := tc.Dial
	if dial == nil {
		dial = tunnel.DefaultDial
	}
	lctx, cancel := context.WithTimeout(ctx, c.p.cfg.ConnectTimeout)
	defer cancel()
	link, err := tunnel.OpenLink(lctx, tunnel.LinkConfig{Room: keys.Room, Ticket: tc.Ticket, Dial: dial, Logger: c.p.log})
	if err != nil {
		return nil, err
	}
	return &tunnelLeg{
		c: c, link: link, sf: sf, me: me,
		snd: audio.NewSender(audio.SenderConfig{FrameDuration: frameDuration}),
		jb:  audio.NewJitterBuffer(audio.JitterConfig{FrameDuration: frameDuration}),
	}, nil
}

// run receives and plays out until the call ends.
func (l *tunnelLeg) run(ctx context.Context) {
	c := l.c
	tick := time.NewTicker(frameDuration)
	defer tick.Stop()
	var left <-chan time.Time
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return
		case present := <-l.link.Peer():
			if present {
				c.onConnected()
				left = nil
			} else if connected(c) {
				// It hung up and the hang-up is late, or lost: as with a
				// DTLS session that closes, wait a moment for the signal.
				left = time.After(3 * time.Second)
			}
		case <-left:
			c.end(nil, true, false)
			return
		case b := <-l.link.Media():
			l.receive(b)
		case now := <-tick.C:
			l.playout(now)
			if ticks++; ticks%lossEvery == 0 {
				l.reportLoss()
			}
		}
	}
}

// lossEvery is how often, in frames, the leg tells the Link the share of
// the frames it could not play: 1 s.
const lossEvery = 50

// reportLoss tells the Link what share of the frames due since the last
// report the jitter buffer had to conceal: loss its repairs could not
// make up for, a reason to try another carrier.
func (l *tunnelLeg) reportLoss() {
	l.mu.Lock()
	js := l.jb.Stats()
	l.mu.Unlock()
	played, concealed := js.Played-l.lastPlayed, js.Concealed-l.lastConcealed
	l.lastPlayed, l.lastConcealed = js.Played, js.Concealed
	if due := played + concealed; due > lossEvery/2 {
		l.link.ReportLoss(float64(concealed) / float64(due))
	}
}

func connected(c *Call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.connectedAt.IsZero()
}

// write sends one frame of the file (Call.send's writer).
func (l *tunnelLeg) write(frame []byte, _ time.Duration) error {
	now := time.Now()
	carrier := l.link.Path()
	l.mu.Lock()
	if carrier != l.carrier {
		// Over TCP a packet arrives or the flow froze: repeating frames
		// repairs nothing there (the Link replays what a frozen flow
		// swallowed) and makes a censor counting bytes freeze it sooner.
		l.carrier = carrier
		if carrier == "websocket" {
			l.snd.SetMaxDepth(reliableDepth, "the carrier is a WebSocket: TCP repairs loss itself")
		} else {
			l.snd.SetMaxDepth(lossyDepth, "the carrier is "+carrier+": datagrams may be lost")
		}
	}
	seq := l.seq
	l.seq++
	pkt, ok := l.snd.Push(frame, now, l.jb.Feedback(now))
	var ct []byte
	var err error
	if ok {
		ct, err = l.sf.Encrypt(nil, l.me, l.ctr, nil, pkt)
		l.ctr++
	}
	l.mu.Unlock()
	if tr := l.c.media.Trace; tr != nil && len(frame) > 0 {
		tr(TracePacket{Out: true, Seq: uint16(seq), Timestamp: frameTS(seq), Size: len(frame), At: now})
	}
	if err != nil || !ok {
		return err
	}
	l.link.Send(ct)
	return nil
}

// receive takes one packet from the other device.
func (l *tunnelLeg) receive(b []byte) {
	now := time.Now()
	pt, kid, _, err := l.sf.Decrypt(nil, nil, b)
	if err != nil || kid == l.me {
		l.c.p.log.Debug("tunnel packet dropped", "call", l.c.id, "err", err)
		return
	}
	p, err := audio.ParsePacket(pt)
	if err != nil {
		l.c.p.log.Debug("tunnel packet malformed", "call", l.c.id, "err", err)
		return
	}
	l.mu.Lock()
	fresh := l.jb.Push(p, now)
	if p.Feedback != nil {
		l.snd.Feedback(p.Feedback, now)
	}
	first := !l.first
	l.first = true
	l.mu.Unlock()
	if tr := l.c.media.Trace; tr != nil {
		for _, f := range fresh {
			if len(f.Data) == 0 {
				continue // silence after the file
			}
			tr(TracePacket{Seq: uint16(f.Seq), Timestamp: frameTS(f.Seq), Size: len(f.Data), At: now})
		}
	}
	if first {
		l.c.audioOnce.Do(func() {
			l.c.mu.Lock()
			l.c.firstAudioAt = l.c.p.cfg.Now()
			l.c.mu.Unlock()
			close(l.c.audio)
		})
	}
}

// playout takes the frame due now from the jitter buffer into the
// recording: the frame, or a concealment frame for one that did not come.
func (l *tunnelLeg) playout(now time.Time) {
	l.mu.Lock()
	frame, st := l.jb.Pop(now)
	seq := l.jb.Next() - 1
	l.mu.Unlock()
	if tr := l.c.media.Trace; tr != nil && (st == audio.Played || st == audio.Repaired) && len(frame) > 0 {
		tr(TracePacket{Played: true, Seq: uint16(seq), Timestamp: frameTS(seq), Size: len(frame), At: now})
	}
	switch {
	case (st == audio.Played || st == audio.Repaired) && len(frame) > 0:
		l.c.rec.write(frame)
	case st != audio.Waiting: // concealed, or the sender's silence
		for _, p := range concealment(int(frameDuration * opusRate / time.Second)) {
			l.c.rec.write(p)
		}
	}
}

func (l *tunnelLeg) close() {
	if l.cancel != nil {
		l.cancel()
	}
	l.link.Close()
}

// stats fills the tunnel's part of s.
func (l *tunnelLeg) stats(s *Stats) {
	l.mu.Lock()
	js := l.jb.Stats()
	ss := l.snd.Stats()
	l.mu.Unlock()
	s.Path = "tunnel/" + l.link.Path()
	s.Received, s.Lost, s.Late = js.Received, js.Concealed, js.Late
	s.Tunnel = &TunnelStats{Jitter: js, Sender: ss, Switches: l.link.Switches(), RTT: l.link.RTT()}
	sent, dropped := l.link.Counts()
	s.Tunnel.PacketsSent, s.Tunnel.PacketsDropped = int(sent), int(dropped)
}

// TunnelStats are the measurements of a tunnelled call.
type TunnelStats struct {
	Jitter         audio.JitterStats // what the jitter buffer did
	Sender         audio.SenderStats // redundancy, bundling, the bitrate it would choose
	Switches       []PathSwitch      // moves between carriers
	RTT            time.Duration     // to the server, on the active carrier
	PacketsSent    int
	PacketsDropped int // the carrier could not take them in time
}
