package signal

import "errors"

// Sentinel errors. Functions wrap them with %w and the operation that
// failed; test for them with errors.Is.
var (
	// ErrInvalidKey: a key's encoding is malformed (wrong type byte or
	// length) or an agreement produced the all-zero secret.
	ErrInvalidKey = errors.New("signal: invalid key")
	// ErrInvalidSignature: an XEdDSA signature on a prekey does not verify.
	ErrInvalidSignature = errors.New("signal: invalid signature")
	// ErrInvalidMessage: a message is malformed, has a bad MAC, or cannot be
	// decrypted by any session state.
	ErrInvalidMessage = errors.New("signal: invalid message")
	// ErrUnsupportedVersion: a message's version is not 4 (libsignal's
	// CIPHERTEXT_MESSAGE_CURRENT_VERSION; PQXDH needs it).
	ErrUnsupportedVersion = errors.New("signal: unsupported message version")
	// ErrNoSession: there is no session with the peer (or none that is
	// usable for sending).
	ErrNoSession = errors.New("signal: no session")
	// ErrDuplicateMessage: the message's key was already used, so the
	// message was decrypted before.
	ErrDuplicateMessage = errors.New("signal: duplicate message")
	// ErrUntrustedIdentity: the IdentityKeyStore does not trust the peer's
	// identity key.
	ErrUntrustedIdentity = errors.New("signal: untrusted identity")
	// ErrNoPreKey: a prekey named by a message is not in the store.
	ErrNoPreKey = errors.New("signal: no such prekey")
	// ErrTooFarInFuture: a message's counter is more than MaxForwardJumps
	// ahead of its chain.
	ErrTooFarInFuture = errors.New("signal: message too far in the future")
	// ErrInvalidRecord: a stored record cannot be decoded.
	ErrInvalidRecord = errors.New("signal: invalid stored record")
)
