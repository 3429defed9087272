package client

import (
	"context"
	"time"

	"github.com/parleychat/parley"
)

// Store is the client's durable state. Implementations: client/clientstore
// (SQLite, native) and client/clientmem (memory, for tests); the web client
// brings one over IndexedDB. A Store must be safe for concurrent use.
//
// Reads see every Batch that Apply has returned from. Apply is atomic: after
// a crash either all of a Batch is there or none of it is, and Apply returns
// only once the Batch is durable.
type Store interface {
	// Account returns the local account, or nil and no error before
	// Register has stored one.
	Account(ctx context.Context) (*Account, error)
	// Record returns the record of kind with key, or nil and no error if
	// there is none.
	Record(ctx context.Context, kind RecordKind, key string) ([]byte, error)
	// Messages returns the messages that match q, oldest first (by Seq).
	Messages(ctx context.Context, q Query) ([]Message, error)
	// Apply writes b atomically and durably.
	Apply(ctx context.Context, b *Batch) error
}

// Account is the local account and device. It holds private keys: never log
// or print it.
type Account struct {
	Server         string // base URL of parleyd, e.g. http://127.0.0.1:8080
	User           parley.UserID
	Device         parley.DeviceID // 0 until the server has confirmed the registration
	RegistrationID uint32          // libsignal registration id, 1..16380
	IdentityKey    []byte          // the identity key pair, in the encoding of record.go
	DeviceKey      []byte          // the device authentication key pair, likewise
	// Next ids to use for new prekeys; ids are never reused.
	NextPreKeyID       uint32
	NextKyberPreKeyID  uint32
	NextSignedPreKeyID uint32
	// The signed prekey and last-resort Kyber prekey on the server, and when
	// they were uploaded; they are replaced every KeyRotation.
	SignedPreKeyID    uint32
	LastResortKyberID uint32
	RotatedAt         time.Time
	Created           time.Time
}

// Registered reports whether the server has confirmed the account.
func (a *Account) Registered() bool { return a != nil && a.Device != 0 }

// RecordKind names a family of Signal protocol records in the Store. The
// values are stored: never change one.
type RecordKind string

const (
	RecordSession      RecordKind = "session"       // key: address "user.device"
	RecordIdentity     RecordKind = "identity"      // key: user; the remote identity key (33 bytes)
	RecordPreKey       RecordKind = "prekey"        // key: decimal id
	RecordSignedPreKey RecordKind = "signed_prekey" // key: decimal id
	RecordKyberPreKey  RecordKind = "kyber_prekey"  // key: decimal id
	RecordDevices      RecordKind = "devices"       // key: user; the devices we have sessions with (JSON)

	// Records of this client, not of the Signal protocol.
	RecordReceipts        RecordKind = "receipts"         // key: ""; delivery receipts not yet sent (JSON: user -> message ids)
	RecordVerified        RecordKind = "verified"         // key: user; the identity key the user marked verified
	RecordIdentityChanged RecordKind = "identity_changed" // key: user; present while a key change is unacknowledged
	RecordPaths           RecordKind = "paths"            // key: ""; how calls went on each network (JSON, see paths.go)
)

// MessageState is where a message is in its life. The values are stored:
// never change one.
type MessageState uint8

const (
	StateSending MessageState = 1 // outgoing, not yet acknowledged by the server: the outbox
	StateSent    MessageState = 2 // outgoing, durable on the server
	StateFailed  MessageState = 3 // outgoing, refused for good (e.g. no such user)
	StateUnread  MessageState = 4 // incoming, not yet shown to the user
	StateRead    MessageState = 5 // incoming, shown
	// StateDelivered: outgoing, stored on a device of the recipient (a
	// delivery receipt came back).
	StateDelivered MessageState = 6
)

func (s MessageState) String() string {
	switch s {
	case StateSending:
		return "sending"
	case StateSent:
		return "sent"
	case StateFailed:
		return "failed"
	case StateUnread:
		return "unread"
	case StateRead:
		return "read"
	case StateDelivered:
		return "delivered"
	}
	return "unknown"
}

// Message is one entry of the local history: a text sent or received, or a
// notice (a safety number change, a message that could not be read).
type Message struct {
	Seq      uint64           // local order, set by the Store on insert
	ID       parley.MessageID // end to end; unique with Peer and Outgoing
	Peer     parley.UserID    // the other party
	Outgoing bool
	From     parley.Address // the sending device (incoming only)
	Notice   bool           // Text is a notice from this client, not from Peer
	Text     string
	SentAt   time.Time // the sender's clock
	At       time.Time // when this client stored (incoming) or the server stored (sent) it
	State    MessageState
	Error    string // why a send failed (StateFailed)
}

// Query selects messages. Zero fields do not filter.
type Query struct {
	ID       *parley.MessageID
	Peer     parley.UserID
	Outgoing *bool
	State    MessageState
	AfterSeq uint64
	Limit    int
}

// Batch is a set of writes that Apply makes atomically.
type Batch struct {
	Account  *Account      // replaces the account if not nil
	Records  []Record      // written in order; a nil Value deletes
	Messages []Message     // inserted; one whose (Peer, Outgoing, ID) exists is ignored
	States   []StateChange // applied after Messages
}

// Record is one Signal protocol record.
type Record struct {
	Kind  RecordKind
	Key   string
	Value []byte // nil deletes
}

// StateChange moves one message to a new state.
type StateChange struct {
	Peer     parley.UserID
	Outgoing bool
	ID       parley.MessageID
	State    MessageState
	At       time.Time // replaces At if not zero
	Error    string
}

// Matches reports whether m is selected by q (for Store implementations).
func (q Query) Matches(m *Message) bool {
	switch {
	case q.ID != nil && m.ID != *q.ID,
		q.Peer != "" && m.Peer != q.Peer,
		q.Outgoing != nil && m.Outgoing != *q.Outgoing,
		q.State != 0 && m.State != q.State,
		m.Seq <= q.AfterSeq:
		return false
	}
	return true
}
