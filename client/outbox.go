package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

// maxSendAttempts bounds how often one send is retried after
// KindStaleDevices answers.
const maxSendAttempts = 4

// device is one device of a contact that we keep a session with.
type device struct {
	ID    parley.DeviceID `json:"device"`
	RegID uint32          `json:"reg"`
}

// outboxWindow is how many of the outbox's messages are in flight at once.
// They are encrypted and written one after another without waiting for
// each other's answers (the server takes a connection's sends in order and
// answers them in order): the server answers a send once the message is
// durable, which for a recipient online is once its device has stored it,
// so a sender that waited for each answer in turn would wait a round trip
// through the recipient, over its network, per message.
const outboxWindow = 32

// outboxLoop sends every message in StateSending, then waits for more. It
// returns (ending the connection, so that Run reconnects later) on errors a
// retry may fix; a message refused for good is marked StateFailed.
func (c *Client) outboxLoop(ctx context.Context, s *session) error {
	for {
		msgs, err := c.Outbox(ctx)
		if err != nil {
			return err
		}
		for len(msgs) > 0 {
			n, err := c.sendSome(ctx, s, msgs[:min(len(msgs), outboxWindow)])
			if err != nil {
				return err
			}
			msgs = msgs[n:]
		}
		if err := c.sendReceipts(ctx, s); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		}
	}
}

// sendSome sends msgs, in order, each without waiting for the answers to
// those before it, then takes the answers in order. It stops starting
// messages at the first that cannot be sent (so that none overtakes it)
// and reports how many messages it dealt with: sent, or failed for good.
func (c *Client) sendSome(ctx context.Context, s *session, msgs []Message) (int, error) {
	waits := make([]func() (*wire.Frame, error), 0, len(msgs))
	var startErr error
	for _, m := range msgs {
		w, err := c.startOne(ctx, s, m)
		if err != nil {
			startErr = err
			break
		}
		waits = append(waits, w)
	}
	for i, w := range waits {
		f, err := w()
		if err := c.settleSend(ctx, msgs[i], f, err); err != nil {
			for _, w := range waits[i+1:] {
				go w() // the connection ends with err: these are sent again on the next
			}
			return i, err
		}
	}
	n := len(waits)
	if startErr != nil {
		if err := c.settleSend(ctx, msgs[n], nil, startErr); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// settleSend takes the outcome of sending m: the server's answer f, or the
// error. It returns an error only when a retry may fix it.
func (c *Client) settleSend(ctx context.Context, m Message, f *wire.Frame, err error) error {
	if err == nil {
		err = c.markSent(ctx, m, f)
	}
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if retryable(err) {
		return fmt.Errorf("send %s: %w", m.ID, err)
	}
	c.log.Info("send failed", "id", m.ID, "to", m.Peer, "err", err)
	if err := c.st.Apply(ctx, &Batch{States: []StateChange{{Peer: m.Peer, Outgoing: true, ID: m.ID, State: StateFailed, Error: err.Error()}}}); err != nil {
		return err
	}
	m.State, m.Error = StateFailed, err.Error()
	c.emit(Event{Type: EventSendFailed, Message: &m, Peer: m.Peer, Err: err})
	return nil
}

// retryable reports whether a send that failed with err may succeed later.
func retryable(err error) bool {
	if isStoreError(err) {
		return true
	}
	switch parley.ErrorKind(err) {
	case parley.KindUnavailable, parley.KindRateLimited, parley.KindInternal, parley.KindUnauthorized:
		return true
	}
	return false
}

// startOne encrypts and sends m; wait returns the server's answer.
func (c *Client) startOne(ctx context.Context, s *session, m Message) (wait func() (*wire.Frame, error), err error) {
	pt, err := encodeContent(textContent(m.ID, m.Text, m.SentAt))
	if err != nil {
		return nil, parley.Errorf(parley.KindInvalid, "encode: %w", err)
	}
	return c.startContent(ctx, s, m.Peer, m.ID, m.SentAt, pt)
}

// markSent records that the server answered f to m's send: m is durable.
func (c *Client) markSent(ctx context.Context, m Message, f *wire.Frame) error {
	at := c.now()
	if r, ok := f.Body.(*wire.SendResult); ok && !r.ServerAt.IsZero() {
		at = r.ServerAt
	}
	// A receipt may have come first (the answer to this send was lost, or
	// the server answered once the recipient had stored the message, which
	// it may do before its own disk has: see server.Store): never move a
	// delivered message back to sent, but say that the send is done.
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	out := true
	cur, err := c.st.Messages(ctx, Query{ID: &m.ID, Peer: m.Peer, Outgoing: &out, Limit: 1})
	if err != nil {
		return &storeError{err}
	}
	if len(cur) == 1 && cur[0].State == StateDelivered {
		c.emit(Event{Type: EventSent, Message: &cur[0], Peer: m.Peer})
		return nil
	}
	if err := c.st.Apply(ctx, &Batch{States: []StateChange{{Peer: m.Peer, Outgoing: true, ID: m.ID, State: StateSent, At: at}}}); err != nil {
		return &storeError{err}
	}
	m.State, m.At = StateSent, at
	c.emit(Event{Type: EventSent, Message: &m, Peer: m.Peer})
	return nil
}

// sendContent encrypts the padded content pt for every device of peer and
// sends it as message id, mending the device list when the server says it
// is stale. It returns the server's answer.
func (c *Client) sendContent(ctx context.Context, s *session, peer parley.UserID, id parley.MessageID, sentAt time.Time, pt []byte) (*wire.Frame, error) {
	wait, err := c.startContent(ctx, s, peer, id, sentAt, pt)
	if err != nil {
		return nil, err
	}
	return wait()
}

// startContent is sendContent in two halves: it encrypts pt and sends it,
// and returns once it is queued for the connection; wait returns the
// server's answer, mending the device list and sending the message again
// (waiting for that answer) when the server says the list is stale.
func (c *Client) startContent(ctx context.Context, s *session, peer parley.UserID, id parley.MessageID, sentAt time.Time, pt []byte) (wait func() (*wire.Frame, error), err error) {
	send := func() (func() (*wire.Frame, error), error) {
		devs, err := c.devices(ctx, peer)
		if err != nil {
			return nil, err
		}
		if len(devs) == 0 {
			if devs, err = c.fetchSessions(ctx, s, peer, 0); err != nil {
				return nil, err
			}
		}
		msgs, err := c.encryptAll(ctx, s, peer, devs, pt)
		if err != nil {
			return nil, err
		}
		return s.start(ctx, wire.OpSend, &wire.Send{To: peer, ID: id, SentAt: sentAt, Messages: msgs})
	}
	first, err := send()
	if err != nil {
		return nil, err
	}
	return func() (*wire.Frame, error) {
		w := first
		for attempt := 0; ; attempt++ {
			f, err := w()
			if err == nil {
				return f, nil
			}
			if parley.ErrorKind(err) == parley.KindNotFound {
				return nil, parley.Errorf(parley.KindNotFound, "no user named %s on this server", peer)
			}
			if parley.ErrorKind(err) != parley.KindStaleDevices || attempt+1 >= maxSendAttempts {
				return nil, err
			}
			var sd *wire.StaleDevices
			if f != nil {
				sd, _ = f.Body.(*wire.StaleDevices)
			}
			if err := c.fixDevices(ctx, s, peer, sd); err != nil {
				return nil, err
			}
			if w, err = send(); err != nil {
				return nil, err
			}
		}
	}, nil
}

// encryptAll encrypts pt for every device in devs, first fetching a bundle
// for each device without a session.
func (c *Client) encryptAll(ctx context.Context, s *session, peer parley.UserID, devs []device, pt []byte) ([]wire.OutgoingMessage, error) {
	for _, d := range devs {
		rec, err := c.st.Record(ctx, RecordSession, parley.Address{User: peer, Device: d.ID}.String())
		if err != nil {
			return nil, &storeError{err}
		}
		if rec == nil {
			if _, err := c.fetchSessions(ctx, s, peer, d.ID); err != nil {
				return nil, err
			}
		}
	}
	devs, err := c.devices(ctx, peer) // fetching may have changed registration ids
	if err != nil {
		return nil, err
	}
	a, id, err := c.account()
	if err != nil {
		return nil, err
	}
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	t := newTxn(c.st, id, a.RegistrationID)
	var out []wire.OutgoingMessage
	for _, d := range devs {
		addr := parley.Address{User: peer, Device: d.ID}
		ct, err := signal.Encrypt(ctx, t, addr, pt, c.now())
		if err != nil {
			if isStoreError(err) {
				return nil, err
			}
			return nil, parley.Errorf(parley.KindInvalid, "encrypt for %s.%d: %w", peer, d.ID, err)
		}
		reg := d.RegID
		if rec, err := t.LoadSession(ctx, addr); err == nil && rec != nil {
			if r, ok := rec.RemoteRegistrationID(); ok {
				reg = r
			}
		}
		out = append(out, wire.OutgoingMessage{Device: d.ID, RegistrationID: reg, Type: ct.Type, Content: ct.Serialized})
	}
	if err := c.st.Apply(ctx, &t.batch); err != nil {
		return nil, &storeError{err}
	}
	return out, nil
}

// fixDevices brings the device list of peer in line with a StaleDevices
// answer: it forgets extra devices, drops the sessions of stale ones and
// fetches bundles for missing and stale ones.
func (c *Client) fixDevices(ctx context.Context, s *session, peer parley.UserID, sd *wire.StaleDevices) error {
	if sd == nil { // no details: start over with every device
		sd = &wire.StaleDevices{}
		devs, err := c.devices(ctx, peer)
		if err != nil {
			return err
		}
		for _, d := range devs {
			sd.Extra = append(sd.Extra, d.ID)
		}
	}
	c.protoMu.Lock()
	devs, err := c.devices(ctx, peer)
	if err != nil {
		c.protoMu.Unlock()
		return err
	}
	b := &Batch{}
	devs = slices.DeleteFunc(devs, func(d device) bool {
		drop := slices.Contains(sd.Extra, d.ID) || slices.Contains(sd.Stale, d.ID)
		if drop {
			b.Records = append(b.Records, Record{Kind: RecordSession, Key: parley.Address{User: peer, Device: d.ID}.String()})
		}
		return drop
	})
	b.Records = append(b.Records, devicesRecord(peer, devs))
	err = c.st.Apply(ctx, b)
	c.protoMu.Unlock()
	if err != nil {
		return &storeError{err}
	}
	fetch := append(slices.Clone(sd.Missing), sd.Stale...)
	if len(sd.Missing) == 0 && len(sd.Stale) == 0 && len(devs) == 0 {
		fetch = []parley.DeviceID{0}
	}
	for _, d := range fetch {
		if _, err := c.fetchSessions(ctx, s, peer, d); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) devices(ctx context.Context, peer parley.UserID) ([]device, error) {
	b, err := c.st.Record(ctx, RecordDevices, string(peer))
	if err != nil {
		return nil, &storeError{err}
	}
	var devs []device
	if b != nil {
		if err := json.Unmarshal(b, &devs); err != nil {
			return nil, fmt.Errorf("devices of %s: %w", peer, err)
		}
	}
	return devs, nil
}

func devicesRecord(peer parley.UserID, devs []device) Record {
	slices.SortFunc(devs, func(a, b device) int { return int(a.ID) - int(b.ID) })
	b, _ := json.Marshal(devs)
	return Record{Kind: RecordDevices, Key: string(peer), Value: b}
}

// fetchSessions fetches the prekey bundles of one device of peer (all of
// them when dev is 0), starts a session with each and records the devices.
func (c *Client) fetchSessions(ctx context.Context, s *session, peer parley.UserID, dev parley.DeviceID) ([]device, error) {
	f, err := s.request(ctx, wire.OpGetBundles, &wire.GetBundles{User: peer, Device: dev})
	if err != nil {
		if parley.ErrorKind(err) == parley.KindNotFound {
			if dev == 0 {
				return nil, parley.Errorf(parley.KindNotFound, "no user named %s on this server", peer)
			}
			return nil, parley.Errorf(parley.KindNotFound, "%s has no device %d", peer, dev)
		}
		return nil, err
	}
	bs, ok := f.Body.(*wire.Bundles)
	if !ok {
		return nil, parley.Errorf(parley.KindUnsupported, "odd answer to GetBundles: %T", f.Body)
	}
	if len(bs.Devices) == 0 {
		return nil, parley.Errorf(parley.KindNotFound, "%s has no devices", peer)
	}
	a, id, err := c.account()
	if err != nil {
		return nil, err
	}
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	devs, err := c.devices(ctx, peer)
	if err != nil {
		return nil, err
	}
	t := newTxn(c.st, id, a.RegistrationID)
	for i := range bs.Devices {
		wb := &bs.Devices[i]
		pb, err := bundleFromWire(bs.IdentityKey, wb)
		if err != nil {
			return nil, parley.Errorf(parley.KindInvalid, "keys of %s.%d: %w", peer, wb.Device, err)
		}
		addr := parley.Address{User: peer, Device: wb.Device}
		if err := signal.ProcessPreKeyBundle(ctx, t, addr, pb, c.now()); err != nil {
			if isStoreError(err) {
				return nil, err
			}
			return nil, parley.Errorf(parley.KindInvalid, "keys of %s: %w", addr, err)
		}
		devs = slices.DeleteFunc(devs, func(d device) bool { return d.ID == wb.Device })
		devs = append(devs, device{ID: wb.Device, RegID: wb.RegistrationID})
	}
	t.batch.Records = append(t.batch.Records, devicesRecord(peer, devs))
	c.identityNotices(t)
	if err := c.st.Apply(ctx, &t.batch); err != nil {
		return nil, &storeError{err}
	}
	c.emitIdentityChanges(t)
	return devs, nil
}

func bundleFromWire(identity []byte, b *wire.Bundle) (*signal.PreKeyBundle, error) {
	ik, err := signal.DecodePublicKey(identity)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	spk, err := signal.DecodePublicKey(b.SignedPreKey.Key)
	if err != nil {
		return nil, fmt.Errorf("signed prekey: %w", err)
	}
	kpk, err := signal.DecodeKyberPublicKey(b.KyberPreKey.Key)
	if err != nil {
		return nil, fmt.Errorf("kyber prekey: %w", err)
	}
	pb := &signal.PreKeyBundle{
		RegistrationID:        b.RegistrationID,
		DeviceID:              b.Device,
		SignedPreKeyID:        b.SignedPreKey.ID,
		SignedPreKey:          spk,
		SignedPreKeySignature: b.SignedPreKey.Signature,
		KyberPreKeyID:         b.KyberPreKey.ID,
		KyberPreKey:           kpk,
		KyberPreKeySignature:  b.KyberPreKey.Signature,
		IdentityKey:           ik,
	}
	if b.PreKey != nil {
		pk, err := signal.DecodePublicKey(b.PreKey.Key)
		if err != nil {
			return nil, fmt.Errorf("prekey: %w", err)
		}
		pb.HasPreKey, pb.PreKeyID, pb.PreKey = true, b.PreKey.ID, pk
	}
	return pb, nil
}

// identityNotices adds a history notice to t's batch for every identity key
// change seen during t.
func (c *Client) identityNotices(t *txn) {
	now := c.now()
	for _, u := range t.changed {
		t.put(RecordIdentityChanged, string(u), []byte{1})
		t.batch.Messages = append(t.batch.Messages, Message{
			ID: parley.NewMessageID(), Peer: u, Notice: true, State: StateUnread, At: now, SentAt: now,
			Text: fmt.Sprintf("your safety number with %s changed: they may have reinstalled, or someone may be intercepting; compare it again (parley safety-number %s)", u, u),
		})
	}
}

func (c *Client) emitIdentityChanges(t *txn) {
	for _, u := range t.changed {
		c.emit(Event{Type: EventIdentityChanged, Peer: u})
	}
}
