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
}

// acceptTunnel answers a tunnel-only offer: it derives the keys, opens the
// link and sends our answer.
func (c *Call) acceptTunnel(ctx context.Context, offer client.CallSignal) error {
	if c.p.cfg.Tunnel == nil {
		return fmt.Errorf("%w: %s called through the server's tunnel, %w", ErrConnectionFailed, c.peer, ErrNoTunnel)
	}
	keys, err := tunnel.DeriveKeys(offer.TunnelKey, c.setShare(), c.id)
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
		Play: leg.play, Arrived: leg.arrived, Peer: leg.peer, Resume: leg.resume,
		Logger: c.p.log.With("call", c.id),
	})
	ocancel()
	if err != nil {
		cancel()
		err = fmt.Errorf("%w: the server's call tunnel: %w", ErrConnectionFailed, err)
		c.mu.Lock()
		c.opening, c.tunnelErr = false, err
		// A call that races the tiers goes on while WebRTC may come up.
		fatal := c.tunnel || c.onTunnel.Load() || c.rtcFailed
		c.mu.Unlock()
		if fatal {
			c.end(err, false, true)
		} else {
			c.p.log.Info("the tunnel did not open; the call waits for WebRTC", "call", c.id, "err", err)
		}
		return
	}
	leg.s = s
	if !c.tunnel {
		// The recording takes WebRTC's audio until the other side's
		// comes this way (resume).
		s.Hold()
	}
	c.mu.Lock()
	c.opening = false
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
// tunnel (tier 2) rather than WebRTC now: the caller's choice, which the
// one answering follows, or the race's outcome, or since a move
// (Stats.Moves).
func (c *Call) Tunnel() bool { return c.tunnel || c.onTunnel.Load() }

// peer follows the other device in and out of the room.
func (l *tunnelLeg) peer(present bool) {
	c := l.c
	c.tunnelPeer(present)
	switch {
	case present:
		if l.left != nil {
			l.left.Stop()
			l.left = nil
		}
	case connected(c) && c.Tunnel() && l.left == nil:
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
		tr(TracePacket{Seq: uint16(f.Seq), Timestamp: frameTS(f.Seq), Size: len(f.Data), At: now, Resent: f.Resent})
	}
	l.c.audioOnce.Do(func() {
		l.c.mu.Lock()
		l.c.firstAudioAt = l.c.p.cfg.Now()
		l.c.mu.Unlock()
		close(l.c.audio)
	})
	l.c.recMu.Lock()
	l.c.lastTun = now
	l.c.recMu.Unlock()
}

// resumeAfter is how long nothing must have come over WebRTC before the
// tunnel's audio, while the recording takes WebRTC's, is taken for the
// other side's going back to the tunnel rather than for the stragglers of
// its move up to WebRTC.
const resumeAfter = 200 * time.Millisecond

// resume decides whether the tunnel's Session, held while the recording
// takes WebRTC's audio, takes a packet that came: yes when nothing has
// come over WebRTC for resumeAfter, or once the call has moved down
// (unless the other side moved back up since: its WebRTC audio came after
// the move). Then the recording switches to the tunnel.
func (l *tunnelLeg) resume(now time.Time) bool {
	c := l.c
	c.recMu.Lock()
	defer c.recMu.Unlock()
	recent := !c.lastRTP.IsZero() && now.Sub(c.lastRTP) < resumeAfter
	if recent && (!c.moved.Load() || c.lastRTP.UnixNano() > c.movedAt.Load()) {
		return false
	}
	c.recTunnel = true
	c.rec.flush() // what WebRTC left waiting
	c.fillFrom = c.lastRec
	return true
}

// recordWebRTC switches the recording from the tunnel to WebRTC, whose
// audio has come (the other side moved up): the tunnel is held, what its
// jitter buffer still held is recorded at once, then silence for the rest
// of the time since the tunnel's last frame. Called with c.recMu held.
func (c *Call) recordWebRTC(now time.Time) {
	c.recTunnel = false
	c.mu.Lock()
	leg := c.leg
	c.mu.Unlock()
	var rest [][]byte
	if leg != nil {
		rest = leg.s.Hold()
	}
	for _, f := range rest {
		c.recordFrame(f)
	}
	c.recordSilence(c.lastRec, now, len(rest))
	c.rec.restart()
}

// recordSilence records silence for the time between the last audio
// recorded, at last (if any), and the next, now, less the frames recorded
// since, so that the recording keeps time across a switch between tiers.
// Called with c.recMu held.
func (c *Call) recordSilence(last, now time.Time, frames int) {
	if last.IsZero() {
		return
	}
	if gap := now.Sub(last) - time.Duration(frames+1)*frameDuration; gap > 0 {
		for _, p := range concealment(min(int(gap*opusRate/time.Second), maxGapSamples)) {
			c.rec.write(p)
		}
	}
}

// recordFrame records one frame of the tunnel: empty for a concealed one,
// or the sender's silence.
func (c *Call) recordFrame(f []byte) {
	if len(f) == 0 {
		for _, p := range concealment(int(frameDuration * opusRate / time.Second)) {
			c.rec.write(p)
		}
		return
	}
	c.rec.write(f)
}

// play takes the frame due now from the jitter buffer into the recording,
// while it takes the tunnel's: the frame, or a concealment frame for one
// that did not come. After a switch from WebRTC, the first one follows
// silence for the time between WebRTC's last audio and now.
func (l *tunnelLeg) play(seq uint64, frame []byte, st audio.FrameStatus, now time.Time) {
	c := l.c
	c.recMu.Lock()
	defer c.recMu.Unlock()
	if !c.recTunnel {
		return
	}
	c.lastRec = now
	if !c.fillFrom.IsZero() {
		c.recordSilence(c.fillFrom, now, 0)
		c.fillFrom = time.Time{}
	}
	if st == audio.Concealed {
		frame = nil
	}
	if tr := c.media.Trace; tr != nil && len(frame) > 0 {
		tr(TracePacket{Played: true, Seq: uint16(seq), Timestamp: frameTS(seq), Size: len(frame), At: now})
	}
	c.recordFrame(frame)
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
