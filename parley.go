package parley

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// UserID is a canonical username: lower case, 3 to 32 characters from
// a-z, 0-9, '.', '_' and '-', starting with a letter or digit. Usernames are
// unique without regard to case; ParseUserID folds case.
type UserID string

// Username rules, stated once for the server, the CLI and the web client.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
	UsernameRule   = "3 to 32 characters: letters a-z, digits, '.', '_' or '-', starting with a letter or digit (case does not matter)"
)

// ParseUserID checks s against the username rule and returns its canonical
// (lower-case) form.
func ParseUserID(s string) (UserID, error) {
	u := strings.ToLower(s)
	if len(u) < MinUsernameLen || len(u) > MaxUsernameLen {
		return "", Errorf(KindInvalid, "username %q: must be %s", s, UsernameRule)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return "", Errorf(KindInvalid, "username %q: must be %s", s, UsernameRule)
		}
	}
	return UserID(u), nil
}

func (u UserID) String() string { return string(u) }

// DeviceID numbers a user's devices, starting at 1 (libsignal's device ids are
// 1-127). The first registered device of an account is PrimaryDevice.
type DeviceID uint32

// PrimaryDevice is the device that created the account.
const PrimaryDevice DeviceID = 1

// Address is one device of one user: where a message goes and where it came
// from. Its text form is "user.device", as libsignal's ProtocolAddress.
type Address struct {
	User   UserID
	Device DeviceID
}

func (a Address) String() string {
	return string(a.User) + "." + strconv.FormatUint(uint64(a.Device), 10)
}

// MessageID identifies one message end to end. The sender picks it at random;
// the recipient de-duplicates on it. Its text form is 32 hex digits.
type MessageID [16]byte

// NewMessageID returns a random MessageID.
func NewMessageID() MessageID {
	var id MessageID
	if _, err := rand.Read(id[:]); err != nil {
		panic("parley: crypto/rand failed: " + err.Error())
	}
	return id
}

func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID parses the text form of a MessageID.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, Errorf(KindInvalid, "message id %q: want 32 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

// EnvelopeType says how an envelope's content is encrypted. The values are
// libsignal's CiphertextMessageType.
type EnvelopeType uint8

const (
	EnvelopeSignal EnvelopeType = 2 // a SignalMessage within an established session
	EnvelopePreKey EnvelopeType = 3 // a PreKeySignalMessage that starts a session
)

// Envelope is what the server routes: opaque ciphertext and the metadata it
// must have to deliver it. The server never sees what is inside Content.
type Envelope struct {
	ID      MessageID    // chosen by the sender; the recipient de-duplicates on it
	From    Address      // set by the server from the authenticated session
	To      Address      // one device of the recipient
	Type    EnvelopeType // how Content is encrypted
	Content []byte       // a serialized PreKeySignalMessage or SignalMessage
	SentAt  time.Time    // the sender's clock, millisecond precision
	// ServerSeq orders a device's mailbox; it is set by the server when the
	// message is stored and is what the recipient acknowledges.
	ServerSeq uint64
	// ServerAt is when the server stored the message.
	ServerAt time.Time
}

// Limits that client and server both enforce.
const (
	MaxMessageSize      = 64 << 10 // bytes of Content in one envelope
	MaxFrameSize        = 1 << 20  // bytes of one wire frame
	MaxDevicesPerUser   = 16
	MaxPreKeysPerUpload = 100
)

// Kind is an error kind: stable on the wire, mapped to HTTP and WebSocket
// status codes in exactly one place (package wire). New kinds may be added;
// existing ones are never renamed.
type Kind string

const (
	KindInvalid      Kind = "invalid"       // malformed or out-of-range input
	KindUnauthorized Kind = "unauthorized"  // no or wrong device authentication
	KindNotFound     Kind = "not_found"     // unknown user, device or key
	KindConflict     Kind = "conflict"      // e.g. username taken
	KindStaleDevices Kind = "stale_devices" // the sender's device list for the recipient is out of date
	KindTooLarge     Kind = "too_large"     // a frame or message over its size limit
	KindRateLimited  Kind = "rate_limited"  // slow down and retry later
	KindUnavailable  Kind = "unavailable"   // the server is shutting down or overloaded
	KindUnsupported  Kind = "unsupported"   // unknown protocol version or operation
	KindInternal     Kind = "internal"      // a bug or a failed disk: not the caller's fault
)

// Error is an error with a Kind, as carried on the wire.
type Error struct {
	Kind    Kind
	Message string // readable, safe to show to a user; never holds a key or plaintext
	Err     error  // the wrapped cause, if any (not sent on the wire)
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Kind)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a formatted message. A %w verb wraps
// its operand as the cause.
func Errorf(k Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Message: err.Error(), Err: errors.Unwrap(err)}
}

// ErrorKind returns the Kind of the first *Error in err's chain, or
// KindInternal if there is none.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
