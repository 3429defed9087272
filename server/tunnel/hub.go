// Package tunnel is parleyd's side of tier 2 of calls (DESIGN.md, "Calls"):
// it forwards the opaque media of a call between the two devices' carrier
// connections, and never holds a media key.
//
// A device asks for a ticket over its session (wire.OpTunnelTicket), opens
// a carrier — a WebSocket at tunnel.Path, or a WebTransport session — and
// joins the call's room with the ticket and the room id both devices derive
// from the call's end-to-end encrypted signalling. A room holds two devices;
// each may have several carriers at once (one that is being replaced, or
// one over QUIC and one over TCP). The Hub sends a device's media on the
// carrier on which that device last sent media or Select, so a client moves
// its call between carriers make-before-break by sending on the new one.
// The carrier protocol is in package tunnel (proto.go).
//
// Media is never queued for long: each carrier holds a few dozen messages
// for its writer and drops the rest, as a lossy network would; the clients'
// redundancy and jitter buffers repair what is lost.
package tunnel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/tunnel"
)

// Config configures a Hub. Zero values mean the defaults.
type Config struct {
	// TicketTTL is how long a ticket may be used to join: 10 minutes. A
	// carrier that joined stays after its ticket expires.
	TicketTTL time.Duration
	// MediaRate bounds each device's media, in bytes per second (bursts of
	// one second): 64 KiB/s, over twice what a call with the deepest
	// redundancy sends.
	MediaRate int
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Limits of the Hub.
const (
	maxCarriers      = 4  // per device and room; a fifth replaces the oldest
	maxRoomsByDevice = 2  // rooms a device is in at once
	carrierQueue     = 64 // messages waiting for a carrier's writer
)

// Carrier is one connection of a device to the Hub: a WebSocket or a
// WebTransport session.
type Carrier interface {
	// Send queues msg (which the carrier may keep) for the device without
	// blocking; it reports false when the message was dropped.
	Send(msg []byte) bool
	// Close closes the carrier, telling the device why (kind is a
	// parley.Kind's name) when it can.
	Close(kind parley.Kind, msg string)
}

// Hub pairs the carriers of a call's two devices and forwards media
// between them. It is safe for concurrent use.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	secret [32]byte

	mu     sync.Mutex
	rooms  map[tunnel.RoomID]*room
	byAddr map[parley.Address]int // rooms each device is in

	carriers   atomic.Int64
	forwarded  atomic.Uint64
	dropped    atomic.Uint64
	duplicates atomic.Uint64
}

type room struct {
	id      tunnel.RoomID
	members [2]*member
}

type member struct {
	addr     parley.Address
	room     *room
	carriers []Carrier
	active   Carrier // where the device's media goes
	limit    *rate.Limiter
	// recent is the media last sent to the device, replayed when it moves
	// to another carrier: what went into a carrier that froze is lost, and
	// the device's jitter buffer may still play it.
	recent [replayDepth]sent
	next   int
	// all: the device tries its carriers (a Select with all): its media
	// goes to every one of them and its own media does not move active.
	all bool
	// tags are the last packets forwarded from the device: of the copies
	// it sends of a packet during a trial, the first is forwarded and the
	// rest are known by their tags and dropped, also when they come after
	// the trial has ended (a late copy must neither reach the peer twice
	// nor move active back to the carrier that was slower).
	tags  [recentTags]tunnel.Tag
	nextT int
}

// recentTags is how many packets of a device are remembered to drop their
// second copies: the two carriers' delays may differ by this many packets.
const recentTags = 32

// seen reports whether media with tag t was forwarded lately, and
// remembers it if not. Called with h.mu held.
func (m *member) seen(t tunnel.Tag) bool {
	for _, x := range m.tags {
		if x == t {
			return true
		}
	}
	m.tags[m.nextT] = t
	m.nextT = (m.nextT + 1) % recentTags
	return false
}

type sent struct {
	msg []byte
	at  time.Time
}

// Replay on a move: at most replayDepth messages of the last replayAge.
const (
	replayDepth = 16
	replayAge   = 500 * time.Millisecond
)

// NewHub returns a Hub whose tickets are signed with a fresh random key
// (they do not outlive the process).
func NewHub(cfg Config) *Hub {
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = 10 * time.Minute
	}
	if cfg.MediaRate <= 0 {
		cfg.MediaRate = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, log: log, rooms: make(map[tunnel.RoomID]*room), byAddr: make(map[parley.Address]int)}
	rand.Read(h.secret[:])
	return h
}

// Ticket returns a ticket for the device addr and how long it is valid.
// Its form is "EXPIRY:user.device:MAC", MAC being the first 16 bytes of
// HMAC-SHA256 under the Hub's key, base64url.
func (h *Hub) Ticket(addr parley.Address) (string, time.Duration) {
	now := h.cfg.Now()
	exp := now.Add(h.cfg.TicketTTL).Truncate(time.Second)
	body := strconv.FormatInt(exp.Unix(), 10) + ":" + addr.String()
	return body + ":" + h.mac(body), exp.Sub(now)
}

func (h *Hub) mac(body string) string {
	m := hmac.New(sha256.New, h.secret[:])
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// verify returns the device a ticket was issued to.
func (h *Hub) verify(ticket string) (parley.Address, error) {
	i := strings.LastIndexByte(ticket, ':')
	if i < 0 || !hmac.Equal([]byte(ticket[i+1:]), []byte(h.mac(ticket[:i]))) {
		return parley.Address{}, parley.Errorf(parley.KindUnauthorized, "tunnel: the ticket is not one of this server's (it restarted?): ask for another")
	}
	exp, holder, ok := strings.Cut(ticket[:i], ":")
	sec, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil {
		return parley.Address{}, parley.Errorf(parley.KindUnauthorized, "tunnel: malformed ticket")
	}
	if h.cfg.Now().After(time.Unix(sec, 0)) {
		return parley.Address{}, parley.Errorf(parley.KindUnauthorized, "tunnel: the ticket has expired: ask for another")
	}
	j := strings.LastIndexByte(holder, '.')
	dev, err := strconv.ParseUint(holder[j+1:], 10, 32)
	if j <= 0 || err != nil {
		return parley.Address{}, parley.Errorf(parley.KindUnauthorized, "tunnel: malformed ticket")
	}
	return parley.Address{User: parley.UserID(holder[:j]), Device: parley.DeviceID(dev)}, nil
}

// join takes a carrier's first message, which must be a Join; when it is
// not, or the join fails, it closes c saying why and returns nil.
func (h *Hub) join(msg []byte, c Carrier) *Session {
	id, ticket, err := tunnel.ParseJoin(msg)
	if err != nil {
		c.Close(parley.KindInvalid, "the first message must be a join")
		return nil
	}
	s, err := h.Join(ticket, id, c)
	if err != nil {
		c.Close(parley.ErrorKind(err), err.Error())
		return nil
	}
	return s
}

// Session is one carrier's membership of a room.
type Session struct {
	h *Hub
	m *member
	c Carrier
}

// Join adds carrier c of the ticket's holder to the room and tells it
// whether the other device is there (a Joined message). It fails when the
// ticket is not valid, the room has two other devices, or the device has
// too many carriers or rooms.
func (h *Hub) Join(ticket string, id tunnel.RoomID, c Carrier) (*Session, error) {
	addr, err := h.verify(ticket)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		r = &room{id: id}
		h.rooms[id] = r
	}
	var m *member
	free := -1
	for i, x := range r.members {
		switch {
		case x == nil:
			if free < 0 {
				free = i
			}
		case x.addr == addr:
			m = x
		}
	}
	if m == nil {
		if free < 0 {
			return nil, parley.Errorf(parley.KindConflict, "tunnel: this call has two devices already")
		}
		if h.byAddr[addr] >= maxRoomsByDevice {
			h.dropEmpty(r)
			return nil, parley.Errorf(parley.KindRateLimited, "tunnel: %s is in %d calls already", addr, maxRoomsByDevice)
		}
		burst := h.cfg.MediaRate
		m = &member{addr: addr, room: r, limit: rate.NewLimiter(rate.Limit(h.cfg.MediaRate), burst)}
		r.members[free] = m
		h.byAddr[addr]++
		if p := r.peer(m); p != nil {
			p.broadcast([]byte{byte(tunnel.MsgPeer), 1})
		}
	}
	if len(m.carriers) >= maxCarriers {
		// The oldest carrier that is not the active one goes: a client
		// replaces carriers that froze, which the server cannot tell
		// from quiet ones until they time out.
		i := 0
		if m.carriers[0] == m.active {
			i = 1
		}
		old := m.carriers[i]
		m.carriers = append(m.carriers[:i], m.carriers[i+1:]...)
		h.carriers.Add(-1)
		go old.Close(parley.KindRateLimited, "tunnel: replaced by a newer carrier")
	}
	m.carriers = append(m.carriers, c)
	if m.active == nil {
		m.active = c
	}
	h.carriers.Add(1)
	present := byte(0)
	if r.peer(m) != nil {
		present = 1
	}
	c.Send([]byte{byte(tunnel.MsgJoined), present})
	h.log.Debug("tunnel carrier joined", "device", addr, "carriers", len(m.carriers), "peer", present == 1)
	return &Session{h: h, m: m, c: c}, nil
}

func (r *room) peer(m *member) *member {
	for _, x := range r.members {
		if x != nil && x != m {
			return x
		}
	}
	return nil
}

func (m *member) broadcast(msg []byte) {
	for _, c := range m.carriers {
		c.Send(msg)
	}
}

// dropEmpty forgets r if no one is in it. Called with h.mu held.
func (h *Hub) dropEmpty(r *room) {
	if r.members[0] == nil && r.members[1] == nil && h.rooms[r.id] == r {
		delete(h.rooms, r.id)
	}
}

// Receive handles one message the device sent on this carrier; an error
// means the carrier should close.
func (s *Session) Receive(msg []byte) error {
	if err := tunnel.Check(msg, true); err != nil {
		return parley.Errorf(parley.KindInvalid, "%v", err)
	}
	h := s.h
	switch tunnel.MsgType(msg[0]) {
	case tunnel.MsgMedia:
		now := h.cfg.Now()
		h.mu.Lock()
		if s.m.seen(tunnel.TagOf(msg[1:])) {
			h.mu.Unlock()
			h.duplicates.Add(1)
			return nil
		}
		var replay [][]byte
		if !s.m.all {
			replay = s.move(now, false)
		}
		p := s.m.room.peer(s.m)
		var to Carrier
		var all []Carrier // the peer's carriers, when it tries them
		ok := s.m.limit.AllowN(now, len(msg))
		if p != nil && ok {
			if p.all {
				all = slices.Clone(p.carriers)
			} else {
				to = p.active
			}
			p.recent[p.next] = sent{msg, now}
			p.next = (p.next + 1) % replayDepth
		}
		h.mu.Unlock()
		s.replay(replay)
		sent := to != nil && to.Send(msg)
		for _, c := range all {
			sent = c.Send(msg) || sent
		}
		if sent {
			h.forwarded.Add(1)
		} else {
			h.dropped.Add(1)
		}
	case tunnel.MsgSelect:
		h.mu.Lock()
		replay := s.move(h.cfg.Now(), tunnel.SelectReplays(msg))
		s.m.all = tunnel.SelectAll(msg)
		h.mu.Unlock()
		s.replay(replay)
	case tunnel.MsgPing:
		pong := append([]byte(nil), msg...)
		pong[0] = byte(tunnel.MsgPong)
		s.c.Send(pong)
	case tunnel.MsgJoin:
		return parley.Errorf(parley.KindInvalid, "tunnel: this carrier has joined already")
	}
	return nil
}

// move makes this carrier the device's active one and, if it was not and
// replay is set, returns the recent media to send on it. Called with h.mu
// held.
func (s *Session) move(now time.Time, replay bool) [][]byte {
	m := s.m
	if m.active == s.c {
		return nil
	}
	m.active = s.c
	if !replay {
		return nil
	}
	var out [][]byte
	for i := range replayDepth {
		r := m.recent[(m.next+i)%replayDepth]
		if r.msg != nil && now.Sub(r.at) <= replayAge {
			out = append(out, r.msg)
		}
	}
	return out
}

// replay sends msgs (Media) again on this carrier, as Replay.
func (s *Session) replay(msgs [][]byte) {
	for _, m := range msgs {
		r := append([]byte{byte(tunnel.MsgReplay)}, m[1:]...)
		s.c.Send(r)
	}
}

// Leave removes the carrier; when it was the device's last, the device
// leaves the room and the other is told.
func (s *Session) Leave() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	m := s.m
	i := 0
	for _, c := range m.carriers {
		if c != s.c {
			m.carriers[i] = c
			i++
		}
	}
	if i == len(m.carriers) {
		return // left already
	}
	clear(m.carriers[i:])
	m.carriers = m.carriers[:i]
	h.carriers.Add(-1)
	if m.active == s.c {
		m.active = nil
		if i > 0 {
			m.active = m.carriers[i-1]
		}
	}
	if i > 0 {
		return
	}
	r := m.room
	for j := range r.members {
		if r.members[j] == m {
			r.members[j] = nil
		}
	}
	if h.byAddr[m.addr]--; h.byAddr[m.addr] <= 0 {
		delete(h.byAddr, m.addr)
	}
	if p := r.peer(m); p != nil {
		p.broadcast([]byte{byte(tunnel.MsgPeer), 0})
	}
	h.dropEmpty(r)
	h.log.Debug("tunnel device left", "device", m.addr)
}

// Stats are the Hub's counters, for metrics.
type Stats struct {
	Carriers  int    // carriers joined now
	Forwarded uint64 // media messages forwarded
	Dropped   uint64 // media messages dropped: no peer, over the rate, or a full carrier
	// Duplicates counts second copies of packets dropped (a device in a
	// trial sends each on two carriers).
	Duplicates uint64
}

// Stats returns the counters.
func (h *Hub) Stats() Stats {
	return Stats{Carriers: int(h.carriers.Load()), Forwarded: h.forwarded.Load(), Dropped: h.dropped.Load(), Duplicates: h.duplicates.Load()}
}
