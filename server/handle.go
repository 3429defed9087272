package server

import (
	"context"
	"slices"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
	"github.com/parleychat/parley/wire"
)

// Key encodings, as libsignal (and package signal).
const (
	djbType           = 0x05
	djbKeySize        = 33 // djbType || 32 bytes
	kyberType         = 0x08
	kyberKeySize      = 1569 // kyberType || 1568 bytes
	signatureSize     = 64
	maxRegistrationID = 16380
)

// handle answers one request of an authenticated connection.
func (c *conn) handle(ctx context.Context, f *wire.Frame) (any, error) {
	switch body := f.Body.(type) {
	case *wire.UploadKeys:
		return c.s.uploadKeys(ctx, c.addr, body)
	case *wire.GetBundles:
		return c.s.getBundles(ctx, c.addr, body)
	case *wire.GetKeyCounts:
		k, err := c.s.store.KeyCounts(ctx, c.addr)
		if err != nil {
			return nil, err
		}
		return wireCounts(k), nil
	case *wire.Send:
		return c.s.startSend(ctx, c.addr, body)()
	case *wire.Ping:
		return &wire.Ping{Nonce: body.Nonce}, nil
	case *wire.GetTURNCredentials:
		return c.s.turnCredentials(c.addr)
	case *wire.GetTunnelTicket:
		return c.s.tunnelTicket(c.addr)
	case *wire.Register, *wire.Login:
		return nil, parley.Errorf(parley.KindInvalid, "%s: this connection is already authenticated as %s", f.Op, c.addr)
	}
	return nil, parley.Errorf(parley.KindUnsupported, "%s is not a request a client may make", f.Op)
}

func wireCounts(k directory.KeyCounts) *wire.KeyCounts {
	return &wire.KeyCounts{PreKeys: uint32(k.PreKeys), KyberPreKeys: uint32(k.KyberPreKeys)}
}

// checkAuth verifies a device's signature over the connection's
// AuthPayload. The username is taken as sent or in its canonical form, so
// that clients may sign either.
func (s *Server) checkAuth(c *conn, key []byte, sent string, user parley.UserID, device parley.DeviceID, sig []byte) bool {
	if s.verify(key, wire.AuthPayload(c.challenge, sent, device), sig) {
		return true
	}
	return sent != string(user) && s.verify(key, wire.AuthPayload(c.challenge, string(user), device), sig)
}

func (s *Server) register(ctx context.Context, c *conn, r *wire.Register) (*wire.Session, directory.KeyCounts, error) {
	if r.Version != wire.ProtocolVersion {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindUnsupported, "register: protocol version %d, want %d", r.Version, wire.ProtocolVersion)
	}
	user, err := parley.ParseUserID(r.Username)
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	if !s.registerLimit.allow(c.ip) {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindRateLimited, "register: too many registrations from this address; try again later")
	}
	if err := checkDJB(r.DeviceKey, "device key"); err != nil {
		return nil, directory.KeyCounts{}, err
	}
	if !s.checkAuth(c, r.DeviceKey, r.Username, user, 0, r.Signature) {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindUnauthorized, "register: the signature does not verify with the device key")
	}
	if err := checkDJB(r.IdentityKey, "identity key"); err != nil {
		return nil, directory.KeyCounts{}, err
	}
	if r.RegistrationID < 1 || r.RegistrationID > maxRegistrationID {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindInvalid, "register: registration id %d is outside 1..%d", r.RegistrationID, maxRegistrationID)
	}
	keys, err := s.checkKeys(r.IdentityKey, &r.Keys)
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	if keys.Signed == nil || keys.LastResort == nil {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindInvalid, "register: a signed prekey and a last-resort Kyber prekey are required")
	}
	now := s.now()
	dev := directory.Device{User: user, ID: parley.PrimaryDevice, AuthKey: r.DeviceKey, RegistrationID: r.RegistrationID, Created: now}
	if err := s.store.CreateAccount(ctx, directory.Account{User: user, IdentityKey: r.IdentityKey, Created: now}, dev, keys); err != nil {
		return nil, directory.KeyCounts{}, err
	}
	counts, err := s.store.KeyCounts(ctx, dev.Addr())
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	s.log.Info("registered", "user", user, "ip", c.ip)
	return &wire.Session{User: user, Device: dev.ID, Counts: *wireCounts(counts)}, counts, nil
}

func (s *Server) login(ctx context.Context, c *conn, r *wire.Login) (*wire.Session, directory.KeyCounts, error) {
	if r.Version != wire.ProtocolVersion {
		return nil, directory.KeyCounts{}, parley.Errorf(parley.KindUnsupported, "login: protocol version %d, want %d", r.Version, wire.ProtocolVersion)
	}
	user, err := parley.ParseUserID(r.Username)
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	denied := parley.Errorf(parley.KindUnauthorized, "login: unknown device or a signature that does not verify")
	addr := parley.Address{User: user, Device: r.Device}
	dev, err := s.store.Device(ctx, addr)
	if parley.ErrorKind(err) == parley.KindNotFound {
		return nil, directory.KeyCounts{}, denied
	}
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	if !s.checkAuth(c, dev.AuthKey, r.Username, user, r.Device, r.Signature) {
		return nil, directory.KeyCounts{}, denied
	}
	counts, err := s.store.KeyCounts(ctx, addr)
	if err != nil {
		return nil, directory.KeyCounts{}, err
	}
	return &wire.Session{User: user, Device: r.Device, Counts: *wireCounts(counts)}, counts, nil
}

func checkDJB(b []byte, what string) error {
	if len(b) != djbKeySize || b[0] != djbType {
		return parley.Errorf(parley.KindInvalid, "%s: want %d bytes starting with 0x%02x", what, djbKeySize, djbType)
	}
	return nil
}

func checkKyber(b []byte, what string) error {
	if len(b) != kyberKeySize || b[0] != kyberType {
		return parley.Errorf(parley.KindInvalid, "%s: want %d bytes starting with 0x%02x", what, kyberKeySize, kyberType)
	}
	return nil
}

// checkKeys checks an upload: key encodings, list lengths, and every
// signature against the identity key. It changes nothing.
func (s *Server) checkKeys(identity []byte, u *wire.UploadKeys) (directory.Keys, error) {
	var k directory.Keys
	if len(u.PreKeys) > parley.MaxPreKeysPerUpload || len(u.KyberPreKeys) > parley.MaxPreKeysPerUpload {
		return k, parley.Errorf(parley.KindTooLarge, "upload keys: at most %d keys per list", parley.MaxPreKeysPerUpload)
	}
	signed := func(key, sig []byte, what string, id uint32) error {
		if len(sig) != signatureSize || !s.verify(identity, key, sig) {
			return parley.Errorf(parley.KindInvalid, "upload keys: %s %d: the signature does not verify with the identity key", what, id)
		}
		return nil
	}
	if p := u.SignedPreKey; p != nil {
		if err := checkDJB(p.Key, "signed prekey"); err != nil {
			return k, err
		}
		if err := signed(p.Key, p.Signature, "signed prekey", p.ID); err != nil {
			return k, err
		}
		k.Signed = &directory.PreKey{ID: p.ID, Key: p.Key, Signature: p.Signature}
	}
	if p := u.LastResortKyber; p != nil {
		if err := checkKyber(p.Key, "last-resort Kyber prekey"); err != nil {
			return k, err
		}
		if err := signed(p.Key, p.Signature, "last-resort Kyber prekey", p.ID); err != nil {
			return k, err
		}
		k.LastResort = &directory.PreKey{ID: p.ID, Key: p.Key, Signature: p.Signature}
	}
	for _, p := range u.PreKeys {
		if err := checkDJB(p.Key, "one-time prekey"); err != nil {
			return k, err
		}
		k.OneTime = append(k.OneTime, directory.PreKey{ID: p.ID, Key: p.Key})
	}
	for _, p := range u.KyberPreKeys {
		if err := checkKyber(p.Key, "Kyber prekey"); err != nil {
			return k, err
		}
		if err := signed(p.Key, p.Signature, "Kyber prekey", p.ID); err != nil {
			return k, err
		}
		k.KyberOneTime = append(k.KyberOneTime, directory.PreKey{ID: p.ID, Key: p.Key, Signature: p.Signature})
	}
	return k, nil
}

func (s *Server) uploadKeys(ctx context.Context, addr parley.Address, u *wire.UploadKeys) (*wire.KeyCounts, error) {
	a, _, err := s.store.Account(ctx, addr.User)
	if err != nil {
		return nil, err
	}
	keys, err := s.checkKeys(a.IdentityKey, u)
	if err != nil {
		return nil, err
	}
	counts, err := s.store.AddKeys(ctx, addr, keys)
	if err != nil {
		return nil, err
	}
	return wireCounts(counts), nil
}

func (s *Server) getBundles(ctx context.Context, from parley.Address, g *wire.GetBundles) (*wire.Bundles, error) {
	if !s.bundleLimit.allow(from.String()) {
		return nil, parley.Errorf(parley.KindRateLimited, "get bundles: too many requests; try again later")
	}
	user, err := parley.ParseUserID(string(g.User))
	if err != nil {
		return nil, err
	}
	a, bundles, err := s.store.TakeBundles(ctx, user, g.Device)
	if err != nil {
		return nil, err
	}
	if len(bundles) == 0 {
		return nil, parley.Errorf(parley.KindNotFound, "get bundles: %s has no device ready for a session", user)
	}
	out := &wire.Bundles{IdentityKey: a.IdentityKey, Devices: make([]wire.Bundle, 0, len(bundles))}
	for _, b := range bundles {
		wb := wire.Bundle{
			Device:         b.Device.ID,
			RegistrationID: b.Device.RegistrationID,
			SignedPreKey:   wire.SignedPreKey{ID: b.Signed.ID, Key: b.Signed.Key, Signature: b.Signed.Signature},
			KyberPreKey:    wire.KyberPreKey{ID: b.Kyber.ID, Key: b.Kyber.Key, Signature: b.Kyber.Signature},
		}
		if b.OneTime != nil {
			wb.PreKey = &wire.PreKey{ID: b.OneTime.ID, Key: b.OneTime.Key}
		}
		out.Devices = append(out.Devices, wb)
		// Warn the device once, when a count crosses the threshold.
		crossed := b.OneTime != nil && b.Left.PreKeys == wire.LowKeyThreshold-1 ||
			!b.LastResort && b.Left.KyberPreKeys == wire.LowKeyThreshold-1
		if crossed {
			s.push(b.Device.Addr(), &wire.Frame{Type: wire.TypePush, Op: wire.OpLowKeys, Body: wireCounts(b.Left)})
		}
	}
	return out, nil
}

// push sends a push to a device if it is connected.
func (s *Server) push(addr parley.Address, f *wire.Frame) {
	s.mu.Lock()
	c := s.sessions[addr]
	s.mu.Unlock()
	if c != nil {
		c.push(f)
	}
}

// startSend checks a Send and hands its copies to the store, which offers
// them to their recipients as soon as it has accepted them (see
// Store.StartEnqueue); finish waits until they are durable and returns the
// answer. A send refused by its checks is answered by finish at once.
func (s *Server) startSend(ctx context.Context, from parley.Address, m *wire.Send) (finish func() (any, error)) {
	body, envs, err := s.checkSend(ctx, from, m)
	if err != nil || envs == nil {
		return func() (any, error) { return body, err }
	}
	wait := s.store.StartEnqueue(ctx, envs, s.offer)
	return func() (any, error) {
		dup, err := wait()
		if err != nil {
			return nil, err
		}
		if dup {
			s.log.Debug("replayed send", "from", from)
			return body, nil
		}
		s.metrics.accepted.Add(float64(len(envs)))
		return body, nil
	}
}

// checkSend checks a Send against the recipient's devices and builds its
// envelopes. It returns the answer's body and, when there is something to
// store, the envelopes; or the error (with a *wire.StaleDevices body for
// KindStaleDevices).
func (s *Server) checkSend(ctx context.Context, from parley.Address, m *wire.Send) (any, []parley.Envelope, error) {
	if !s.sendLimit.allow(from.String()) {
		return nil, nil, parley.Errorf(parley.KindRateLimited, "send: too many messages; try again later")
	}
	to, err := parley.ParseUserID(string(m.To))
	if err != nil {
		return nil, nil, err
	}
	if m.ID == (parley.MessageID{}) {
		return nil, nil, parley.Errorf(parley.KindInvalid, "send: no message id")
	}
	_, devs, err := s.store.Account(ctx, to)
	if err != nil {
		return nil, nil, err
	}
	// A user has at most parley.MaxDevicesPerUser devices, so the checks
	// below search small arrays on the stack rather than build two maps
	// for every message; a send with more copies than that is refused.
	if len(m.Messages) > parley.MaxDevicesPerUser {
		return nil, nil, parley.Errorf(parley.KindInvalid, "send: %d copies, more than a user has devices", len(m.Messages))
	}
	var (
		wantBuf [parley.MaxDevicesPerUser]directory.Device
		seenBuf [parley.MaxDevicesPerUser]parley.DeviceID
	)
	want := wantBuf[:0]
	for _, d := range devs {
		if d.Addr() != from && len(want) < len(wantBuf) { // a user's own other devices get copies; the sender does not
			want = append(want, d)
		}
	}
	var stale wire.StaleDevices
	seen := seenBuf[:0]
	for _, o := range m.Messages {
		if slices.Contains(seen, o.Device) {
			return nil, nil, parley.Errorf(parley.KindInvalid, "send: two messages for device %d", o.Device)
		}
		seen = append(seen, o.Device)
		if o.Type != parley.EnvelopeSignal && o.Type != parley.EnvelopePreKey {
			return nil, nil, parley.Errorf(parley.KindInvalid, "send: message type %d for device %d", o.Type, o.Device)
		}
		if len(o.Content) == 0 {
			return nil, nil, parley.Errorf(parley.KindInvalid, "send: empty message for device %d", o.Device)
		}
		i := slices.IndexFunc(want, func(d directory.Device) bool { return d.ID == o.Device })
		switch {
		case i < 0:
			stale.Extra = append(stale.Extra, o.Device)
		case want[i].RegistrationID != o.RegistrationID:
			stale.Stale = append(stale.Stale, o.Device)
		}
	}
	for _, d := range want {
		if !slices.Contains(seen, d.ID) {
			stale.Missing = append(stale.Missing, d.ID)
		}
	}
	if len(stale.Missing)+len(stale.Extra)+len(stale.Stale) > 0 {
		slices.Sort(stale.Missing)
		slices.Sort(stale.Extra)
		slices.Sort(stale.Stale)
		return &stale, nil, parley.Errorf(parley.KindStaleDevices, "send: the device list of %s is out of date", to)
	}
	now := time.UnixMilli(s.now().UnixMilli()).UTC() // whole milliseconds, as stored
	if len(m.Messages) == 0 {
		return &wire.SendResult{ServerAt: now}, nil, nil // nobody to send to
	}
	envs := make([]parley.Envelope, len(m.Messages))
	for i, o := range m.Messages {
		envs[i] = parley.Envelope{
			ID:       m.ID,
			From:     from,
			To:       parley.Address{User: to, Device: o.Device},
			Type:     o.Type,
			Content:  o.Content,
			SentAt:   m.SentAt,
			ServerAt: now,
		}
	}
	return &wire.SendResult{ServerAt: now}, envs, nil
}

// offer hands a message the store has accepted to its recipient's
// connection, if any, and reports whether there was one. The store's
// writer calls it: it never waits.
func (s *Server) offer(e *parley.Envelope) bool {
	s.mu.Lock()
	c := s.sessions[e.To]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.offer(e)
	return true
}
