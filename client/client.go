package client

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

// Config configures a Client.
type Config struct {
	Store  Store        // required
	Dialer Dialer       // nil: WebSocketDialer{}
	Logger *slog.Logger // nil: discard
	Now    func() time.Time
	// MinBackoff and MaxBackoff bound the wait between reconnects (defaults
	// 250ms and 30s); the wait doubles after each failed connection.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how often an idle connection is checked (default 25s).
	PingInterval time.Duration
}

// MaxTextSize is the longest text a message may carry, in bytes, so that its
// padded ciphertext fits in parley.MaxMessageSize.
const MaxTextSize = 32 << 10

// eventQueue is the capacity of the Events channel.
const eventQueue = 256

// Client is one device of one account. Create it with New; Register it
// once; then Run keeps it connected.
type Client struct {
	st     Store
	dialer Dialer
	log    *slog.Logger
	now    func() time.Time
	minBO  time.Duration
	maxBO  time.Duration
	pingIv time.Duration

	events  chan Event
	kick    chan struct{} // the outbox has work; capacity 1
	running atomic.Int32  // Runs going on: a lost connection comes back

	// protoMu serialises protocol operations (encrypt, decrypt, processing
	// bundles) and account updates, each a read-modify-Apply of the Store.
	// Never held across a network round trip.
	protoMu sync.Mutex

	mu       sync.Mutex // guards the fields below
	acct     *Account
	identity signal.KeyPair
	devKey   signal.KeyPair
	conn     *session // the live connection, nil when disconnected
}

// New returns a Client over cfg.Store, loading its account if there is one.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Store == nil {
		return nil, parley.Errorf(parley.KindInvalid, "client: no store")
	}
	c := &Client{
		st:     cfg.Store,
		dialer: cfg.Dialer,
		log:    cfg.Logger,
		now:    cfg.Now,
		minBO:  cfg.MinBackoff,
		maxBO:  cfg.MaxBackoff,
		pingIv: cfg.PingInterval,
		events: make(chan Event, eventQueue),
		kick:   make(chan struct{}, 1),
	}
	if c.dialer == nil {
		c.dialer = WebSocketDialer{}
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.minBO <= 0 {
		c.minBO = 250 * time.Millisecond
	}
	if c.maxBO <= 0 {
		c.maxBO = 30 * time.Second
	}
	if c.pingIv <= 0 {
		c.pingIv = 25 * time.Second
	}
	acct, err := c.st.Account(ctx)
	if err != nil {
		return nil, err
	}
	if acct != nil {
		if err := c.setAccount(acct); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) setAccount(a *Account) error {
	id, err := unmarshalKeyPair(a.IdentityKey)
	if err != nil {
		return parley.Errorf(parley.KindInternal, "stored identity key: %w", err)
	}
	dk, err := unmarshalKeyPair(a.DeviceKey)
	if err != nil {
		return parley.Errorf(parley.KindInternal, "stored device key: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acct, c.identity, c.devKey = a, id, dk
	return nil
}

// account returns a copy of the account and the identity key pair, or an
// error if the client is not registered.
func (c *Client) account() (Account, signal.KeyPair, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.acct.Registered() {
		return Account{}, signal.KeyPair{}, ErrNotRegistered
	}
	return *c.acct, c.identity, nil
}

// ErrNotRegistered is returned by operations that need an account before
// Register has succeeded.
var ErrNotRegistered = &parley.Error{Kind: parley.KindNotFound, Message: "this device is not registered yet"}

// Whoami returns the registered user, device and server.
func (c *Client) Whoami() (user parley.UserID, device parley.DeviceID, server string, err error) {
	a, _, err := c.account()
	return a.User, a.Device, a.Server, err
}

// IdentityKey returns the account's public identity key.
func (c *Client) IdentityKey() (signal.PublicKey, error) {
	_, id, err := c.account()
	return id.Public, err
}

// EventType says what an Event reports.
type EventType int

const (
	EventConnected       EventType = iota + 1 // logged in; Err is nil
	EventDisconnected                         // the connection ended or could not be made; Err says why
	EventQueueEmpty                           // every message stored on the server at login has arrived
	EventMessage                              // Message arrived and is in the history
	EventSent                                 // Message is durable (on the server, or delivered: then its State says so)
	EventSendFailed                           // Message was refused for good; Err says why
	EventIdentityChanged                      // Peer's identity key (safety number) changed
	EventDelivered                            // Message reached a device of its recipient
	EventCall                                 // Call is a call signal from Peer
)

// Event is something that happened, for a user interface to show. Events are
// hints: the Store has the truth. When the Events channel is full (nobody
// reads it) new events are dropped.
type Event struct {
	Type    EventType
	Message *Message
	Peer    parley.UserID
	Call    *CallSignal
	Err     error
}

// Events returns the channel of events; read it or lose them.
func (c *Client) Events() <-chan Event { return c.events }

func (c *Client) emit(e Event) {
	select {
	case c.events <- e:
	default:
		c.log.Debug("event dropped: queue full", "type", e.Type)
	}
}

// emitWait is emit, waiting up to d for room in a full queue.
func (c *Client) emitWait(e Event, d time.Duration) {
	select {
	case c.events <- e:
		return
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case c.events <- e:
	case <-t.C:
		c.log.Warn("event dropped: queue full", "type", e.Type)
	}
}

// Send puts a text message to user to in the outbox and returns at once; Run
// sends it. Its state goes from StateSending to StateSent or StateFailed.
func (c *Client) Send(ctx context.Context, to parley.UserID, text string) (*Message, error) {
	a, _, err := c.account()
	if err != nil {
		return nil, err
	}
	if to == a.User {
		return nil, parley.Errorf(parley.KindInvalid, "sending to yourself is not supported yet")
	}
	if len(text) > MaxTextSize {
		return nil, parley.Errorf(parley.KindTooLarge, "message too long: %d bytes, at most %d", len(text), MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return nil, parley.Errorf(parley.KindInvalid, "message is not valid UTF-8")
	}
	now := c.now().Truncate(time.Millisecond)
	m := Message{ID: parley.NewMessageID(), Peer: to, Outgoing: true, Text: text, SentAt: now, At: now, State: StateSending}
	if err := c.st.Apply(ctx, &Batch{Messages: []Message{m}}); err != nil {
		return nil, err
	}
	c.kickOutbox()
	c.fillSeq(ctx, &m)
	return &m, nil
}

// fillSeq sets m.Seq, which the Store assigned when it stored m, so that a
// user interface can order m among the history. It leaves 0 if the Store
// cannot say.
func (c *Client) fillSeq(ctx context.Context, m *Message) {
	out := m.Outgoing
	if stored, err := c.st.Messages(ctx, Query{ID: &m.ID, Peer: m.Peer, Outgoing: &out, Limit: 1}); err == nil && len(stored) == 1 {
		m.Seq = stored[0].Seq
	}
}

func (c *Client) kickOutbox() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Messages returns the history that matches q.
func (c *Client) Messages(ctx context.Context, q Query) ([]Message, error) {
	return c.st.Messages(ctx, q)
}

// MarkRead moves incoming messages to StateRead.
func (c *Client) MarkRead(ctx context.Context, msgs []Message) error {
	b := &Batch{}
	for _, m := range msgs {
		if !m.Outgoing && m.State == StateUnread {
			b.States = append(b.States, StateChange{Peer: m.Peer, ID: m.ID, State: StateRead})
		}
	}
	if len(b.States) == 0 {
		return nil
	}
	return c.st.Apply(ctx, b)
}

// Outbox returns the messages not yet acknowledged by the server.
func (c *Client) Outbox(ctx context.Context) ([]Message, error) {
	out := true
	return c.st.Messages(ctx, Query{Outgoing: &out, State: StateSending})
}

// SafetyNumber returns the 60-digit safety number with peer and its
// scannable form. If no identity key of peer is known yet, it fetches peer's
// keys (which needs a live connection; see Run) and starts sessions with them.
func (c *Client) SafetyNumber(ctx context.Context, peer parley.UserID) (digits string, scannable []byte, err error) {
	a, id, err := c.account()
	if err != nil {
		return "", nil, err
	}
	remote, ok, err := c.remoteIdentity(ctx, peer)
	if err != nil {
		return "", nil, err
	}
	if !ok {
		s := c.live()
		if s == nil {
			return "", nil, parley.Errorf(parley.KindUnavailable, "not connected to the server")
		}
		if _, err := c.fetchSessions(ctx, s, peer, 0); err != nil {
			return "", nil, err
		}
		if remote, ok, err = c.remoteIdentity(ctx, peer); err != nil {
			return "", nil, err
		} else if !ok {
			return "", nil, parley.Errorf(parley.KindNotFound, "no identity key for %s", peer)
		}
	}
	return signal.SafetyNumber([]byte(a.User), id.Public, []byte(peer), remote)
}

func (c *Client) remoteIdentity(ctx context.Context, peer parley.UserID) (signal.PublicKey, bool, error) {
	b, err := c.st.Record(ctx, RecordIdentity, string(peer))
	if err != nil || b == nil {
		return signal.PublicKey{}, false, err
	}
	k, err := signal.DecodePublicKey(b)
	return k, err == nil, err
}
