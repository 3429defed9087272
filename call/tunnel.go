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
	"time"

	"github.com/parleychat/parley/client"
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
	// Prefer is the carrier kind to try first (tunnel.LinkConfig.Prefer),
	// e.g. the one that worked on this network last time; "" prefers
	// WebTransport.
	Prefer string
}

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

// tunnelLeg carries a call's audio through the tunnel (a tunnel.Session,
// with the Ogg Opus file and recording of package call around it).
type tunnelLeg struct {
	c      *Call
	s      *tunnel.Session
	cancel context.CancelFunc
	left   *time.Timer // the peer left the room: end the call unless it comes back (run's goroutine only)
	played bool        // a frame has been recorded (run's goroutine only)
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
	leg := &tunnelLeg{c: c, cancel: cancel}
	tc := c.p.cfg.Tunnel
	dial := tc.Dial
	if dial == nil {
		dial = tunnel.DefaultDial
	}
	octx, ocancel := context.WithTimeout(ctx, c.p.cfg.ConnectTimeout)
	s, err := tunnel.OpenSession(octx, tunnel.SessionConfig{
		Keys: keys, Caller: c.outgoing, FrameDuration: frameDuration,
		Link: tunnel.LinkConfig{Ticket: tc.Ticket, Dial: dial},
		Play: leg.play, Arrived: leg.arrived, Peer: leg.peer,
		Logger: c.p.log.With("call", c.id),
	})
	ocancel()
	if err != nil {
		cancel()
		c.end(fmt.Errorf("%w: the server's call tunnel: %w", ErrConnectionFailed, err), false, true)
		return
	}
	leg.s = s
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		leg.close()
		return
	}
	c.leg = leg
	c.mu.Unlock()
	s.Run(ctx)
	if leg.left != nil {
		leg.left.Stop()
	}
}

// Tunnel reports whether the call carries its audio through the server's
// tunnel (tier 2) rather than WebRTC: the caller's choice, which the one
// answering follows, or since a move (Stats.Moves).
func (c *Call) Tunnel() bool { return c.tunnel || c.moved.Load() }

// peer follows the other device in and out of the room.
func (l *tunnelLeg) peer(present bool) {
	c := l.c
	switch {
	case present:
		c.onConnected()
		if l.left != nil {
			l.left.Stop()
			l.left = nil
		}
	case connected(c) && l.left == nil:
		// It hung up and the hang-up is late, or lost: as with a DTLS
		// session that closes, wait a moment for the signal.
		l.left = time.AfterFunc(3*time.Second, func() { c.end(nil, true, false) })
	}
}

func connected(c *Call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.connectedAt.IsZero()
}

// write sends one frame of the file (Call.send's writer).
func (l *tunnelLeg) write(frame []byte, _ time.Duration, version int) error {
	now := time.Now()
	seq, err := l.s.Send(frame)
	if tr := l.c.media.Trace; tr != nil && len(frame) > 0 {
		tr(TracePacket{Out: true, Seq: uint16(seq), Timestamp: frameTS(seq), Size: len(frame), At: now, Version: version})
	}
	return err
}

// arrived notes a frame that came in: for the trace, and the call's first
// audio.
func (l *tunnelLeg) arrived(f audio.Frame, now time.Time) {
	if tr := l.c.media.Trace; tr != nil && len(f.Data) > 0 { // empty: silence after the file
		tr(TracePacket{Seq: uint16(f.Seq), Timestamp: frameTS(f.Seq), Size: len(f.Data), At: now})
	}
	l.c.audioOnce.Do(func() {
		l.c.mu.Lock()
		l.c.firstAudioAt = l.c.p.cfg.Now()
		l.c.mu.Unlock()
		close(l.c.audio)
	})
}

// play takes the frame due now from the jitter buffer into the recording:
// the frame, or a concealment frame for one that did not come. After a
// move, the first one records first what WebRTC left waiting and then
// silence for the time between WebRTC's last audio and now, so that the
// recording keeps time.
func (l *tunnelLeg) play(seq uint64, frame []byte, st audio.FrameStatus, now time.Time) {
	c := l.c
	c.recMu.Lock()
	defer c.recMu.Unlock()
	if !l.played {
		l.played = true
		c.mu.Lock()
		last := c.lastRTP
		c.mu.Unlock()
		if !last.IsZero() {
			c.rec.flush()
			if gap := now.Sub(last) - frameDuration; gap > 0 {
				for _, p := range concealment(min(int(gap*opusRate/time.Second), maxGapSamples)) {
					c.rec.write(p)
				}
			}
		}
	}
	if st == audio.Concealed || len(frame) == 0 { // concealed, or the sender's silence
		for _, p := range concealment(int(frameDuration * opusRate / time.Second)) {
			c.rec.write(p)
		}
		return
	}
	if tr := c.media.Trace; tr != nil {
		tr(TracePacket{Played: true, Seq: uint16(seq), Timestamp: frameTS(seq), Size: len(frame), At: now})
	}
	c.rec.write(frame)
}

func (l *tunnelLeg) close() {
	if l.cancel != nil {
		l.cancel()
	}
	l.s.Close()
}

// stats fills the tunnel's part of s.
func (l *tunnelLeg) stats(s *Stats) {
	ts := l.s.Stats()
	s.Path = "tunnel/" + ts.Path
	// After a move, what WebRTC carried before counts too.
	s.Received += ts.Jitter.Received
	s.Lost += ts.Jitter.Concealed
	s.Late += ts.Jitter.Late
	s.Tunnel = &ts
}

// TunnelStats are the measurements of a tunnelled call: what its jitter
// buffer and sender did, and its moves between carriers.
type TunnelStats = tunnel.SessionStats
