package server

import (
	"context"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
	"github.com/parleychat/parley/server/sqlite"
)

// Store is the server's durable state: accounts and devices, the prekey
// directory and the mailbox. Implementations (server/sqlite, later
// PostgreSQL) pass the conformance suite in server/storetest.
//
// Every method is safe for concurrent use. A method that changes state
// returns only once the change is durable. Errors carry a parley.Kind
// (KindConflict, KindNotFound); anything else is KindInternal.
type Store interface {
	// CreateAccount creates an account with its first device and that
	// device's prekeys, all or nothing. A taken username is KindConflict.
	CreateAccount(ctx context.Context, a directory.Account, d directory.Device, k directory.Keys) error
	// AddDevice adds a device to an existing account with the next free
	// DeviceID, which it returns with its keys. An unknown user is
	// KindNotFound; an account with parley.MaxDevicesPerUser devices is
	// KindConflict. (No wire operation links devices yet.)
	AddDevice(ctx context.Context, d directory.Device, k directory.Keys) (parley.DeviceID, error)
	// Account returns an account and its devices, ordered by ID; an unknown
	// user is KindNotFound.
	Account(ctx context.Context, user parley.UserID) (directory.Account, []directory.Device, error)
	// Device returns one device; an unknown one is KindNotFound.
	Device(ctx context.Context, addr parley.Address) (directory.Device, error)

	// AddKeys adds one-time prekeys to a device and replaces its signed and
	// last-resort keys when given, all or nothing. A one-time key whose ID the
	// device already has is replaced.
	AddKeys(ctx context.Context, addr parley.Address, k directory.Keys) (directory.KeyCounts, error)
	// KeyCounts returns how many one-time prekeys a device has left.
	KeyCounts(ctx context.Context, addr parley.Address) (directory.KeyCounts, error)
	// TakeBundles returns the prekey bundles of one device of user, or of
	// every device when device is 0, and removes the one-time keys it hands
	// out, atomically: no two callers get the same one-time key. When the
	// Kyber one-time keys are gone the last-resort key stands in. Unknown
	// users and devices are KindNotFound.
	TakeBundles(ctx context.Context, user parley.UserID, device parley.DeviceID) (directory.Account, []directory.Bundle, error)

	// Enqueue stores the copies of one message, one envelope per recipient
	// device, all or nothing, and sets each envelope's ServerSeq. All
	// envelopes share From, ID and SentAt. If the store has already
	// accepted that message (the same From, ID and SentAt: a retry repeats
	// all three) within the retention period, it stores nothing and
	// reports dup. It returns once the message is durable: on disk, or,
	// for a copy that its device acknowledged (Ack) before the store wrote
	// it, on that device (a client acknowledges only what it has stored).
	Enqueue(ctx context.Context, envs []parley.Envelope) (dup bool, err error)
	// StartEnqueue is Enqueue in two halves: it queues the message and
	// returns at once; wait blocks until it is durable (or failed) and
	// answers as Enqueue would. Messages started by one goroutine are
	// accepted in the order they were started. This lets one connection
	// have many sends in flight, each answered only once it is durable.
	//
	// Once the store has accepted the message as new and given its copies
	// their seqs, and before it is durable, it calls accepted (unless nil)
	// with each copy, so that the server can deliver them at once; from
	// then until it is durable, Mailbox returns it too. accepted reports
	// whether it handed the copy to a connected device (a store may then
	// wait a moment for the acknowledgement before writing the copy) and
	// must not block. If the store then fails to make the message durable,
	// wait reports the failure and the sender retries: a recipient may get
	// the message twice (clients drop repeats by message id).
	StartEnqueue(ctx context.Context, envs []parley.Envelope, accepted func(*parley.Envelope) bool) (wait func() (dup bool, err error))
	// Mailbox returns up to limit envelopes for a device with ServerSeq
	// greater than after, in ServerSeq order: those stored and those
	// accepted but not yet durable, less those acknowledged. ServerSeq
	// grows with every message accepted and is never reused.
	Mailbox(ctx context.Context, to parley.Address, after uint64, limit int) ([]parley.Envelope, error)
	// Ack deletes delivered envelopes of a device; unknown seqs are
	// ignored. An envelope acknowledged before it was durable is never
	// written.
	Ack(ctx context.Context, to parley.Address, seqs []uint64) error
	// Expire deletes envelopes (and replay records) stored before the given
	// time and reports how many envelopes it deleted.
	Expire(ctx context.Context, before time.Time) (int, error)
	// CountMessages returns how many envelopes are stored.
	CountMessages(ctx context.Context) (int64, error)

	// Close finishes pending writes and releases the store.
	Close() error
}

var _ Store = (*sqlite.Store)(nil)
