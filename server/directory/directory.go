// Package directory holds the records of parleyd's account and prekey
// directory: accounts, devices and the prekeys they upload. They are the
// types of server.Store, kept in a package of their own so that store
// backends (server/sqlite) need not import package server, which opens them.
package directory

import (
	"time"

	"github.com/parleychat/parley"
)

// Account is a user: a unique canonical username and the Signal identity
// key that its devices share.
type Account struct {
	User        parley.UserID
	IdentityKey []byte // 33 bytes, 0x05 || Curve25519
	Created     time.Time
}

// Device is one device of an account.
type Device struct {
	User           parley.UserID
	ID             parley.DeviceID
	AuthKey        []byte // 33 bytes, 0x05 || Curve25519: verifies Login signatures
	RegistrationID uint32
	Created        time.Time
}

// Addr returns the device's address.
func (d Device) Addr() parley.Address { return parley.Address{User: d.User, Device: d.ID} }

// PreKey is a public prekey as uploaded: a Curve25519 or Kyber key with, for
// signed and Kyber keys, the identity key's signature over it.
type PreKey struct {
	ID        uint32
	Key       []byte
	Signature []byte // nil for one-time Curve25519 keys
}

// Keys is a batch of prekeys for one device. Any part may be empty.
type Keys struct {
	Signed       *PreKey  // replaces the device's signed Curve25519 prekey
	LastResort   *PreKey  // replaces the device's last-resort Kyber prekey
	OneTime      []PreKey // one-time Curve25519 prekeys to add
	KyberOneTime []PreKey // one-time Kyber prekeys to add
}

// KeyCounts is how many one-time prekeys a device has left.
type KeyCounts struct {
	PreKeys      int
	KyberPreKeys int
}

// Bundle is what TakeBundles hands out for one device.
type Bundle struct {
	Device     Device
	Signed     PreKey
	OneTime    *PreKey // nil when the device has run out
	Kyber      PreKey  // a one-time Kyber key or, when none is left, the last-resort one
	LastResort bool    // Kyber is the last-resort key
	Left       KeyCounts
}
