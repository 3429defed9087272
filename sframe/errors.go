package sframe

import "errors"

// Sentinel errors. Functions wrap them with %w and the operation that
// failed; test for them with errors.Is.
var (
	// ErrMalformed: a header or ciphertext is truncated or otherwise cannot
	// be parsed.
	ErrMalformed = errors.New("sframe: malformed input")
	// ErrUnknownKey: no key is installed for the KID named by the header.
	ErrUnknownKey = errors.New("sframe: unknown key id")
	// ErrAuth: the authentication tag does not verify (wrong key, or the
	// header, metadata or ciphertext was altered).
	ErrAuth = errors.New("sframe: authentication failed")
	// ErrUnsupportedSuite: the cipher suite is not one this package implements.
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
	// ErrInvalidKey: a base key is empty.
	ErrInvalidKey = errors.New("sframe: invalid base key")
	// ErrCounterExhausted: a Sender has used every counter value for its
	// KID; the caller must move to a new key (a new KID).
	ErrCounterExhausted = errors.New("sframe: counter exhausted")
)
