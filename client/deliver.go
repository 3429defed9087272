package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

// deliver handles one Deliver request: it decrypts the envelope, stores the
// message and the new session state in one Batch, and only then
// acknowledges. A message already in the history is acknowledged at once. A
// message that cannot be decrypted or read is acknowledged too, and leaves a
// notice in the history. A Store failure is not acknowledged: it ends the
// connection, and the server delivers the message again later.
func (c *Client) deliver(ctx context.Context, s *session, f *wire.Frame) error {
	d, ok := f.Body.(*wire.Deliver)
	if !ok {
		return s.respond(ctx, f, nil, &parley.Error{Kind: parley.KindInvalid, Message: "deliver without an envelope"})
	}
	m, err := c.receive(ctx, &d.Envelope)
	if err != nil {
		c.log.Error("storing a delivered message failed", "err", err)
		return err
	}
	// The message is in the history now: announce it even if the
	// acknowledgement below fails (the redelivery that follows is then a
	// duplicate and announces nothing).
	if m != nil {
		c.emit(Event{Type: EventMessage, Message: m, Peer: m.Peer})
	}
	return s.respond(ctx, f, nil, nil)
}

// receive decrypts and stores env. It returns the new history entry, or nil
// if the message was there already; an error only when the Store failed.
func (c *Client) receive(ctx context.Context, env *parley.Envelope) (*Message, error) {
	from := env.From
	in := false
	old, err := c.st.Messages(ctx, Query{ID: &env.ID, Peer: from.User, Outgoing: &in, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(old) > 0 {
		c.log.Debug("duplicate delivery", "id", env.ID, "from", from)
		return nil, nil
	}
	a, id, err := c.account()
	if err != nil {
		return nil, err
	}

	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	t := newTxn(c.st, id, a.RegistrationID)
	var pt []byte
	switch env.Type {
	case parley.EnvelopePreKey:
		pt, err = signal.DecryptPreKey(ctx, t, from, env.Content)
	case parley.EnvelopeSignal:
		pt, err = signal.Decrypt(ctx, t, from, env.Content)
	default:
		err = fmt.Errorf("unknown envelope type %d", env.Type)
	}
	now := c.now()
	m := Message{ID: env.ID, Peer: from.User, From: from, SentAt: env.SentAt, At: now, State: StateUnread}
	switch {
	case isStoreError(err):
		return nil, err
	case errors.Is(err, signal.ErrDuplicateMessage):
		c.log.Info("message decrypted before", "id", env.ID, "from", from)
		return nil, nil
	case err != nil:
		c.log.Warn("cannot decrypt", "id", env.ID, "from", from, "err", err)
		t = newTxn(c.st, id, a.RegistrationID) // keep no state from a failed decryption
		m.Notice = true
		m.Text = fmt.Sprintf("a message from %s could not be decrypted", from)
	default:
		ct, err := decodeContent(pt)
		if err == nil && ct.V <= contentVersion {
			switch ct.Type {
			case contentReceipt:
				return nil, c.applyReceipt(ctx, t, from, ct)
			case contentCall:
				return nil, c.applyCall(ctx, t, from, ct)
			}
		}
		m.Text, m.SentAt = c.readContent(ct, err, env, &m)
	}
	if !m.Notice {
		r, err := c.noteDevice(ctx, from)
		if err != nil {
			return nil, err
		}
		if r != nil {
			t.batch.Records = append(t.batch.Records, *r)
		}
		if err := addReceipt(ctx, t, from.User, m.ID); err != nil {
			return nil, err
		}
	}
	c.identityNotices(t)
	t.batch.Messages = append(t.batch.Messages, m)
	if err := c.st.Apply(ctx, &t.batch); err != nil {
		return nil, err
	}
	c.emitIdentityChanges(t)
	if !m.Notice {
		c.kickOutbox() // to send the receipt
	}
	c.fillSeq(ctx, &m)
	return &m, nil
}

// readContent returns the text of a decoded plaintext ct (decoding failed
// with err if not nil), or explains in a notice why it cannot.
func (c *Client) readContent(ct *content, err error, env *parley.Envelope, m *Message) (string, time.Time) {
	switch {
	case err != nil:
		m.Notice = true
		return fmt.Sprintf("a message from %s could not be read", env.From), env.SentAt
	case ct.V > contentVersion || ct.Type != contentText:
		m.Notice = true
		return fmt.Sprintf("%s sent a kind of message this client cannot show (version %d, %q); please upgrade", env.From.User, ct.V, ct.Type), env.SentAt
	}
	if ct.ID != env.ID.String() {
		c.log.Warn("message id inside differs from the envelope's", "from", env.From)
	}
	return ct.Text, time.UnixMilli(ct.SentAt)
}

// noteDevice returns the record that adds from to the devices we send to,
// or nil if it is known. A device that started a session with us is one of
// them; its registration id stays 0 (unknown) until a bundle says it.
func (c *Client) noteDevice(ctx context.Context, from parley.Address) (*Record, error) {
	devs, err := c.devices(ctx, from.User)
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.ID == from.Device {
			return nil, nil
		}
	}
	r := devicesRecord(from.User, append(devs, device{ID: from.Device}))
	return &r, nil
}

// applyReceipt stores t (the session state after decrypting a delivery
// receipt) and moves the messages the receipt names from sent (or sending,
// if the server's answer was lost) to delivered. Called with protoMu held.
func (c *Client) applyReceipt(ctx context.Context, t *txn, from parley.Address, ct *content) error {
	out := true
	var delivered []Message
	for _, s := range ct.IDs[:min(len(ct.IDs), maxReceiptIDs)] {
		id, err := parley.ParseMessageID(s)
		if err != nil {
			c.log.Warn("receipt names a malformed message id", "from", from)
			continue
		}
		ms, err := c.st.Messages(ctx, Query{ID: &id, Peer: from.User, Outgoing: &out, Limit: 1})
		if err != nil {
			return &storeError{err}
		}
		if len(ms) == 0 || (ms[0].State != StateSent && ms[0].State != StateSending) {
			continue
		}
		m := ms[0]
		m.State = StateDelivered
		t.batch.States = append(t.batch.States, StateChange{Peer: m.Peer, Outgoing: true, ID: m.ID, State: StateDelivered})
		delivered = append(delivered, m)
	}
	c.identityNotices(t)
	if err := c.st.Apply(ctx, &t.batch); err != nil {
		return err
	}
	c.emitIdentityChanges(t)
	for i := range delivered {
		c.emit(Event{Type: EventDelivered, Message: &delivered[i], Peer: from.User})
	}
	return nil
}
