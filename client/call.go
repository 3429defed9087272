package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley"
)

// Call signalling. Setting up a call (the WebRTC offer and answer, whose
// SDP carries the DTLS fingerprints, and the ICE candidates) and ending it
// travel as end-to-end encrypted messages of content type "call", so the
// server cannot read or change them and cannot sit in the middle of the
// media. They go to every device of the peer (a call rings on each) and are
// not kept in the history: what a call came to (missed, declined, its
// length) is for the calling code to record.

// CallSignalType says what a CallSignal does. The values are on the wire.
type CallSignalType string

const (
	CallOffer   CallSignalType = "offer"   // SDP: the caller's offer; rings the callee
	CallAnswer  CallSignalType = "answer"  // SDP: the callee's answer; the call is accepted
	CallICE     CallSignalType = "ice"     // Candidate: one more ICE candidate
	CallHangup  CallSignalType = "hangup"  // either side ends the call (or the caller gives up ringing)
	CallBusy    CallSignalType = "busy"    // the callee is in another call
	CallDecline CallSignalType = "decline" // the callee refused
	// CallMove: the sender's WebRTC path failed and its media now goes
	// through the server's tunnel; the other side moves too. Only in a
	// call whose offer and answer both carried a TunnelKey.
	CallMove CallSignalType = "move"
	// CallRestart: SDP: after a move to the tunnel, the caller's offer
	// with fresh ICE credentials (an ICE restart, RFC 8445 section 9),
	// to find a WebRTC path again; the callee answers with a CallRestart
	// carrying its answer.
	CallRestart CallSignalType = "restart"
)

// callEventWait is how long a call signal waits for room in a full events
// queue before it is dropped.
const callEventWait = 2 * time.Second

// maxCallSignal bounds the SDP or candidate of one signal, far above what
// an audio call needs and well inside MaxTextSize.
const maxCallSignal = 16 << 10

// CallSignal is one call signalling message.
type CallSignal struct {
	CallID    string         `json:"id"` // 32 hex digits, chosen by the caller
	Type      CallSignalType `json:"kind"`
	SDP       string         `json:"sdp,omitempty"`
	Candidate string         `json:"candidate,omitempty"` // JSON of an RTCIceCandidateInit
	// TunnelKey, in an offer or answer, is this side's share of the call's
	// tunnel secret (32 random bytes, base64): with it the call may carry
	// its media through the server's tunnel (tier 2), keyed end to end by
	// both shares (see package tunnel). An offer with no SDP offers the
	// tunnel only.
	TunnelKey []byte `json:"tunnel_key,omitempty"`
	// Set on signals received: the device that sent it and its clock.
	From   parley.Address `json:"-"`
	SentAt time.Time      `json:"-"`
}

// NewCallID returns a fresh random call id.
func NewCallID() string {
	id := parley.NewMessageID()
	return hex.EncodeToString(id[:])
}

func (s *CallSignal) valid() error {
	if b, err := hex.DecodeString(s.CallID); err != nil || len(b) != 16 {
		return parley.Errorf(parley.KindInvalid, "call id %q: want 32 hex digits", s.CallID)
	}
	switch s.Type {
	case CallOffer, CallAnswer:
		if s.SDP == "" && s.TunnelKey == nil {
			return parley.Errorf(parley.KindInvalid, "call %s without SDP or tunnel key", s.Type)
		}
		if s.TunnelKey != nil && len(s.TunnelKey) != 32 {
			return parley.Errorf(parley.KindInvalid, "call %s with a tunnel key of %d bytes, want 32", s.Type, len(s.TunnelKey))
		}
	case CallRestart:
		if s.SDP == "" {
			return parley.Errorf(parley.KindInvalid, "call restart without SDP")
		}
	case CallICE:
		if s.Candidate == "" {
			return parley.Errorf(parley.KindInvalid, "ICE signal without a candidate")
		}
	case CallHangup, CallBusy, CallDecline, CallMove:
	default:
		return parley.Errorf(parley.KindInvalid, "unknown call signal %q", s.Type)
	}
	if len(s.SDP) > maxCallSignal || len(s.Candidate) > maxCallSignal {
		return parley.Errorf(parley.KindTooLarge, "call signal over %d bytes", maxCallSignal)
	}
	return nil
}

// SendCallSignal sends sig to every device of peer at once, end-to-end
// encrypted. It needs a live connection (see Run): a call cannot wait in an
// outbox, though while Run reconnects it waits for it. If the connection
// is lost under it (a lossy link stalls TCP), it sends sig again, with the
// same message id (which the server and the peer take once), once Run has
// reconnected, up to callSignalTries times.
func (c *Client) SendCallSignal(ctx context.Context, peer parley.UserID, sig CallSignal) error {
	wait, err := c.StartCallSignal(ctx, peer, sig)
	if err != nil {
		return err
	}
	return wait()
}

// StartCallSignal is SendCallSignal in two halves: it returns once sig is
// queued for the connection, so that signals started one after another go
// out in that order without waiting for each other's answers (the server
// answers a signal once the peer's device has stored it, a round trip
// through the peer's network); wait returns the server's answer, sending
// sig again after a lost connection as SendCallSignal does. wait must be
// called.
func (c *Client) StartCallSignal(ctx context.Context, peer parley.UserID, sig CallSignal) (wait func() error, err error) {
	if err := sig.valid(); err != nil {
		return nil, err
	}
	s := c.live()
	if s == nil && c.running.Load() > 0 { // Run is reconnecting
		s = c.awaitLive(ctx, nil, reconnectWait)
	}
	if s == nil {
		return nil, parley.Errorf(parley.KindUnavailable, "not connected to the server")
	}
	id, now := parley.NewMessageID(), c.now()
	pt, err := encodeContent(content{Type: contentCall, ID: id.String(), Call: &sig, SentAt: now.UnixMilli()})
	if err != nil {
		return nil, err
	}
	first, startErr := c.startContent(ctx, s, peer, id, now, pt)
	if startErr != nil && parley.ErrorKind(startErr) != parley.KindUnavailable {
		return nil, startErr
	}
	return func() error {
		err := startErr // the connection was lost under the first try: try again
		if err == nil {
			_, err = first()
		}
		for try := 2; err != nil && parley.ErrorKind(err) == parley.KindUnavailable && try <= callSignalTries; try++ {
			c.log.Info("call signal: connection lost; sending again", "type", sig.Type, "err", err)
			if s = c.awaitLive(ctx, s, reconnectWait); s == nil {
				return err
			}
			_, err = c.sendContent(ctx, s, peer, id, now, pt)
		}
		return err
	}, nil
}

// Resending a call signal: how many tries, and how long to wait for Run
// to reconnect before each.
const (
	callSignalTries = 3
	reconnectWait   = 20 * time.Second
)

// awaitLive waits up to d for a live connection other than old, and
// returns it, or nil.
func (c *Client) awaitLive(ctx context.Context, old *session, d time.Duration) *session {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s := c.live(); s != nil && s != old {
			return s
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// applyCall stores t (the session state after decrypting a call signal)
// and announces the signal; a malformed one is dropped. Called with protoMu
// held.
func (c *Client) applyCall(ctx context.Context, t *txn, from parley.Address, ct *content) error {
	c.identityNotices(t)
	if err := c.st.Apply(ctx, &t.batch); err != nil {
		return err
	}
	c.emitIdentityChanges(t)
	if ct.Call == nil || ct.Call.valid() != nil {
		c.log.Warn("malformed call signal dropped", "from", from)
		return nil
	}
	sig := *ct.Call
	sig.From, sig.SentAt = from, time.UnixMilli(ct.SentAt)
	// A call signal lost is a call that never rings or never connects:
	// rather than drop it when the events queue is full, wait a moment
	// for the reader.
	c.emitWait(Event{Type: EventCall, Peer: from.User, Call: &sig}, callEventWait)
	return nil
}

// CallOutcome says how a call ended, for the history.
type CallOutcome string

const (
	CallCompleted CallOutcome = "completed" // the two talked; Duration says how long
	CallMissed    CallOutcome = "missed"    // incoming, rang and was not answered
	CallRejected  CallOutcome = "declined"  // declined: by this user (incoming) or by the peer (outgoing)
	CallWasBusy   CallOutcome = "busy"      // outgoing: the peer was in another call; incoming: this user was
	CallNoAnswer  CallOutcome = "no_answer" // outgoing, nobody answered in time
	CallCancelled CallOutcome = "cancelled" // outgoing, this user hung up before an answer
	CallFailed    CallOutcome = "failed"    // the media path did not come up or broke; Reason says why
)

// CallRecord is what a call came to, written into the history with the
// peer (RecordCall).
type CallRecord struct {
	CallID   string // the call's id: one record per call
	Outgoing bool
	Outcome  CallOutcome
	Duration time.Duration // of the conversation (CallCompleted)
	Reason   string        // why it failed (CallFailed)
	At       time.Time     // when the call began; zero means now
}

// Text is how the history shows r.
func (r CallRecord) Text(peer parley.UserID) string {
	dir := "Incoming"
	if r.Outgoing {
		dir = "Outgoing"
	}
	switch r.Outcome {
	case CallCompleted:
		return fmt.Sprintf("%s call · %s", dir, CallDuration(r.Duration))
	case CallMissed:
		return fmt.Sprintf("Missed call from %s", peer)
	case CallRejected:
		if r.Outgoing {
			return fmt.Sprintf("%s declined the call", peer)
		}
		return fmt.Sprintf("You declined a call from %s", peer)
	case CallWasBusy:
		if r.Outgoing {
			return fmt.Sprintf("%s was busy in another call", peer)
		}
		return fmt.Sprintf("Missed call from %s while you were in another call", peer)
	case CallNoAnswer:
		return fmt.Sprintf("%s did not answer", peer)
	case CallCancelled:
		return "Cancelled call"
	case CallFailed:
		if r.Reason == "" {
			return fmt.Sprintf("%s call failed", dir)
		}
		return fmt.Sprintf("%s call failed: %s", dir, r.Reason)
	}
	return fmt.Sprintf("%s call (%s)", dir, r.Outcome)
}

// CallDuration formats d the way call screens do: 0:42, 12:05, 1:02:03.
func CallDuration(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// maxCallReason bounds a failure's reason in the history.
const maxCallReason = 300

// RecordCall writes r into the history with peer as a notice, once per
// call (a second record of the same call is ignored), and returns it. A
// missed call is unread, so that the conversation shows it; anything else
// is read. It needs no connection.
func (c *Client) RecordCall(ctx context.Context, peer parley.UserID, r CallRecord) (*Message, error) {
	if _, err := parley.ParseUserID(string(peer)); err != nil {
		return nil, err
	}
	id, err := parley.ParseMessageID(r.CallID)
	if err != nil {
		return nil, parley.Errorf(parley.KindInvalid, "call id %q: want 32 hex digits", r.CallID)
	}
	switch r.Outcome {
	case CallCompleted, CallMissed, CallRejected, CallWasBusy, CallNoAnswer, CallCancelled, CallFailed:
	default:
		return nil, parley.Errorf(parley.KindInvalid, "unknown call outcome %q", r.Outcome)
	}
	if len(r.Reason) > maxCallReason {
		r.Reason = strings.ToValidUTF8(r.Reason[:maxCallReason], "") + "…"
	}
	at := r.At
	if at.IsZero() {
		at = c.now()
	}
	at = at.Truncate(time.Millisecond)
	state := StateRead
	if !r.Outgoing && (r.Outcome == CallMissed || r.Outcome == CallWasBusy) {
		state = StateUnread
	}
	m := Message{ID: id, Peer: peer, Notice: true, Text: r.Text(peer), SentAt: at, At: at, State: state}
	if err := c.st.Apply(ctx, &Batch{Messages: []Message{m}}); err != nil {
		return nil, err
	}
	c.fillSeq(ctx, &m)
	c.emit(Event{Type: EventMessage, Message: &m, Peer: peer})
	return &m, nil
}
