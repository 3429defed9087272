package client_test

// A fake parleyd for the client's tests: in memory, one goroutine per
// connection, frames passed through the real wire codec.

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

type fakeServer struct {
	mu       sync.Mutex // guards the fields below
	down     bool       // Dial fails
	accounts map[parley.UserID]*fakeAccount
	live     map[parley.Address]*fakeConn
	seq      uint64
	seen     map[string]bool // From.String()+ID: accepted sends
	// ignoreAcks makes the server forget this many acknowledgements, so
	// that it delivers those messages again on the next connection.
	ignoreAcks int
	// cutSends ends the connection of this many Send requests before
	// taking them, as a connection that stalled and was given up.
	cutSends int
	// holdSends holds the answers to a connection's Send requests until
	// this many wait, then gives them all, in order: a client that waits
	// for each answer before its next send gets none.
	holdSends int
}

type fakeAccount struct {
	identity []byte
	devices  map[parley.DeviceID]*fakeDevice
}

type fakeDevice struct {
	regID      uint32
	authKey    []byte
	spk        wire.SignedPreKey
	lastResort wire.KyberPreKey
	prekeys    []wire.PreKey
	kyber      []wire.KyberPreKey
	mailbox    []parley.Envelope
}

func newFakeServer() *fakeServer {
	return &fakeServer{accounts: map[parley.UserID]*fakeAccount{}, live: map[parley.Address]*fakeConn{}, seen: map[string]bool{}}
}

func (s *fakeServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if down {
		for _, c := range s.live {
			c.close()
		}
	}
}

// pipe is one direction of a connection.
type pipe struct {
	ch     chan []byte
	closed chan struct{}
	once   *sync.Once
}

type pipeConn struct{ in, out pipe }

func (c *pipeConn) ReadFrame(ctx context.Context) (*wire.Frame, error) {
	select {
	case b := <-c.in.ch:
		return wire.DecodeFrame(b)
	case <-c.in.closed:
		return nil, errors.New("closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *pipeConn) WriteFrame(ctx context.Context, f *wire.Frame) error {
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	select {
	case c.out.ch <- b:
		return nil
	case <-c.out.closed:
		return errors.New("closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *pipeConn) Close() error {
	c.in.once.Do(func() { close(c.in.closed) })
	return nil
}

// Dial implements client.Dialer.
func (s *fakeServer) Dial(ctx context.Context, server string) (client.Conn, error) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return nil, parley.Errorf(parley.KindUnavailable, "cannot reach the server")
	}
	closed, once := make(chan struct{}), &sync.Once{}
	c2s := pipe{ch: make(chan []byte, 16), closed: closed, once: once}
	s2c := pipe{ch: make(chan []byte, 16), closed: closed, once: once}
	fc := &fakeConn{s: s, conn: &pipeConn{in: c2s, out: s2c}, pending: map[uint64]uint64{}}
	go fc.serve()
	return &pipeConn{in: s2c, out: c2s}, nil
}

type fakeConn struct {
	s    *fakeServer
	conn *pipeConn
	addr parley.Address

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]uint64 // Deliver request id → ServerSeq
	held    []*wire.Frame     // answers to sends, held (holdSends)
}

func (c *fakeConn) close() { c.conn.Close() }

func (c *fakeConn) send(f *wire.Frame) { c.conn.WriteFrame(context.Background(), f) }

func (c *fakeConn) respond(req *wire.Frame, body any, err error) { c.send(response(req, body, err)) }

// response is the answer to req.
func response(req *wire.Frame, body any, err error) *wire.Frame {
	f := &wire.Frame{Type: wire.TypeResponse, ID: req.ID, Op: req.Op, Body: body}
	if err != nil {
		var pe *parley.Error
		if !errors.As(err, &pe) {
			pe = &parley.Error{Kind: parley.KindInternal, Message: err.Error()}
		}
		f.Err = pe
		if pe.Kind != parley.KindStaleDevices {
			f.Body = nil
		}
	}
	return f
}

func (c *fakeConn) deliver(env parley.Envelope) {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	c.pending[id] = env.ServerSeq
	c.mu.Unlock()
	c.send(&wire.Frame{Type: wire.TypeRequest, ID: id, Op: wire.OpDeliver, Body: &wire.Deliver{Envelope: env}})
}

func (c *fakeConn) serve() {
	defer c.close()
	var challenge [32]byte
	rand.Read(challenge[:])
	c.send(&wire.Frame{Type: wire.TypePush, Op: wire.OpHello, Body: &wire.Hello{Version: wire.ProtocolVersion, Challenge: challenge, ServerTime: time.Now()}})
	for {
		f, err := c.conn.ReadFrame(context.Background())
		if err != nil {
			c.s.mu.Lock()
			if c.s.live[c.addr] == c {
				delete(c.s.live, c.addr)
			}
			c.s.mu.Unlock()
			return
		}
		if f.Type == wire.TypeResponse {
			c.mu.Lock()
			seq, ok := c.pending[f.ID]
			delete(c.pending, f.ID)
			c.mu.Unlock()
			if ok && f.Err == nil {
				c.s.ack(c.addr, seq)
			}
			continue
		}
		if f.Type != wire.TypeRequest {
			continue
		}
		if c.addr.User == "" && f.Op != wire.OpRegister && f.Op != wire.OpLogin {
			c.respond(f, nil, parley.Errorf(parley.KindUnauthorized, "log in first"))
			continue
		}
		switch b := f.Body.(type) {
		case *wire.Register:
			sess, err := c.s.register(challenge, b)
			if err == nil {
				c.addr = parley.Address{User: sess.User, Device: sess.Device}
			}
			c.respond(f, sess, err)
		case *wire.Login:
			sess, err := c.s.login(challenge, b)
			if err != nil {
				c.respond(f, nil, err)
				continue
			}
			c.addr = parley.Address{User: sess.User, Device: sess.Device}
			c.respond(f, sess, nil)
			for _, env := range c.s.online(c) {
				c.deliver(env)
			}
			c.send(&wire.Frame{Type: wire.TypePush, Op: wire.OpQueueEmpty, Body: &wire.QueueEmpty{}})
		case *wire.UploadKeys:
			c.respond(f, c.s.upload(c.addr, b), nil)
		case *wire.GetBundles:
			bs, err := c.s.bundles(b)
			c.respond(f, bs, err)
		case *wire.Send:
			c.s.mu.Lock()
			cut := c.s.cutSends > 0
			if cut {
				c.s.cutSends--
			}
			c.s.mu.Unlock()
			if cut {
				return
			}
			res, sd, err := c.s.sendMsg(c.addr, b)
			var body any = res
			if sd != nil {
				body = sd
			}
			c.s.mu.Lock()
			hold := c.s.holdSends
			c.s.mu.Unlock()
			if hold == 0 {
				c.respond(f, body, err)
				continue
			}
			c.held = append(c.held, response(f, body, err))
			if len(c.held) >= hold {
				for _, r := range c.held {
					c.send(r)
				}
				c.held = nil
			}
		case *wire.Ping:
			c.respond(f, b, nil)
		default:
			c.respond(f, nil, parley.Errorf(parley.KindUnsupported, "op %v", f.Op))
		}
	}
}

func (s *fakeServer) register(challenge [32]byte, r *wire.Register) (*wire.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, err := parley.ParseUserID(r.Username)
	if err != nil {
		return nil, err
	}
	if _, ok := s.accounts[user]; ok {
		return nil, parley.Errorf(parley.KindConflict, "username %s is taken", user)
	}
	dk, err := signal.DecodePublicKey(r.DeviceKey)
	if err != nil || !dk.VerifySignature(wire.AuthPayload(challenge, r.Username, 0), r.Signature) {
		return nil, parley.Errorf(parley.KindUnauthorized, "bad signature")
	}
	d := &fakeDevice{regID: r.RegistrationID, authKey: r.DeviceKey}
	d.addKeys(&r.Keys)
	s.accounts[user] = &fakeAccount{identity: r.IdentityKey, devices: map[parley.DeviceID]*fakeDevice{1: d}}
	return &wire.Session{User: user, Device: 1, Counts: d.counts()}, nil
}

func (d *fakeDevice) addKeys(k *wire.UploadKeys) {
	if k.SignedPreKey != nil {
		d.spk = *k.SignedPreKey
	}
	if k.LastResortKyber != nil {
		d.lastResort = *k.LastResortKyber
	}
	d.prekeys = append(d.prekeys, k.PreKeys...)
	d.kyber = append(d.kyber, k.KyberPreKeys...)
}

func (d *fakeDevice) counts() wire.KeyCounts {
	return wire.KeyCounts{PreKeys: uint32(len(d.prekeys)), KyberPreKeys: uint32(len(d.kyber))}
}

func (s *fakeServer) login(challenge [32]byte, l *wire.Login) (*wire.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[parley.UserID(l.Username)]
	if a == nil || a.devices[l.Device] == nil {
		return nil, parley.Errorf(parley.KindUnauthorized, "unknown device")
	}
	d := a.devices[l.Device]
	dk, _ := signal.DecodePublicKey(d.authKey)
	if !dk.VerifySignature(wire.AuthPayload(challenge, l.Username, l.Device), l.Signature) {
		return nil, parley.Errorf(parley.KindUnauthorized, "bad signature")
	}
	return &wire.Session{User: parley.UserID(l.Username), Device: l.Device, Counts: d.counts()}, nil
}

// online registers c as live and returns its mailbox.
func (s *fakeServer) online(c *fakeConn) []parley.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.live[c.addr]; old != nil {
		old.close()
	}
	s.live[c.addr] = c
	return slices.Clone(s.accounts[c.addr.User].devices[c.addr.Device].mailbox)
}

func (s *fakeServer) ack(addr parley.Address, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ignoreAcks > 0 {
		s.ignoreAcks--
		return
	}
	a := s.accounts[addr.User]
	if a == nil || a.devices[addr.Device] == nil {
		return
	}
	d := a.devices[addr.Device]
	d.mailbox = slices.DeleteFunc(d.mailbox, func(e parley.Envelope) bool { return e.ServerSeq == seq })
}

func (s *fakeServer) upload(addr parley.Address, k *wire.UploadKeys) *wire.KeyCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.accounts[addr.User].devices[addr.Device]
	d.addKeys(k)
	n := d.counts()
	return &n
}

func (s *fakeServer) bundles(g *wire.GetBundles) (*wire.Bundles, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[g.User]
	if a == nil {
		return nil, parley.Errorf(parley.KindNotFound, "no user %s", g.User)
	}
	bs := &wire.Bundles{IdentityKey: a.identity}
	for id, d := range a.devices {
		if g.Device != 0 && id != g.Device {
			continue
		}
		b := wire.Bundle{Device: id, RegistrationID: d.regID, SignedPreKey: d.spk, KyberPreKey: d.lastResort}
		if len(d.prekeys) > 0 {
			pk := d.prekeys[0]
			b.PreKey = &pk
			d.prekeys = d.prekeys[1:]
		}
		if len(d.kyber) > 0 {
			b.KyberPreKey = d.kyber[0]
			d.kyber = d.kyber[1:]
		}
		bs.Devices = append(bs.Devices, b)
	}
	if len(bs.Devices) == 0 {
		return nil, parley.Errorf(parley.KindNotFound, "no device %d", g.Device)
	}
	return bs, nil
}

func (s *fakeServer) sendMsg(from parley.Address, m *wire.Send) (*wire.SendResult, *wire.StaleDevices, error) {
	s.mu.Lock()
	a := s.accounts[m.To]
	if a == nil {
		s.mu.Unlock()
		return nil, nil, parley.Errorf(parley.KindNotFound, "no user %s", m.To)
	}
	sd := &wire.StaleDevices{}
	got := map[parley.DeviceID]bool{}
	for _, om := range m.Messages {
		got[om.Device] = true
		d := a.devices[om.Device]
		switch {
		case d == nil:
			sd.Extra = append(sd.Extra, om.Device)
		case d.regID != om.RegistrationID:
			sd.Stale = append(sd.Stale, om.Device)
		}
	}
	for id := range a.devices {
		if !got[id] {
			sd.Missing = append(sd.Missing, id)
		}
	}
	if len(sd.Extra)+len(sd.Stale)+len(sd.Missing) > 0 {
		s.mu.Unlock()
		return nil, sd, parley.Errorf(parley.KindStaleDevices, "stale devices")
	}
	now := time.Now()
	key := from.String() + m.ID.String()
	var deliveries []func()
	if !s.seen[key] {
		s.seen[key] = true
		for _, om := range m.Messages {
			s.seq++
			env := parley.Envelope{ID: m.ID, From: from, To: parley.Address{User: m.To, Device: om.Device}, Type: om.Type, Content: om.Content, SentAt: m.SentAt, ServerSeq: s.seq, ServerAt: now}
			d := a.devices[om.Device]
			d.mailbox = append(d.mailbox, env)
			if c := s.live[env.To]; c != nil {
				deliveries = append(deliveries, func() { c.deliver(env) })
			}
		}
	}
	s.mu.Unlock()
	for _, f := range deliveries {
		f()
	}
	return &wire.SendResult{ServerAt: now}, nil, nil
}

// resetAccount forgets user, as if the account had been deleted, so that
// it can be registered again with new keys.
func (s *fakeServer) resetAccount(user parley.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, user)
	for addr, c := range s.live {
		if addr.User == user {
			c.close()
		}
	}
}
