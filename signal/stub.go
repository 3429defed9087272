package signal

// Placeholders: the signal-core work replaces every function in this file
// with the real implementation (and deletes the file).

import (
	"context"
	"errors"
	"time"

	"github.com/parleychat/parley"
)

var errTODO = errors.New("signal: not implemented yet")

// SessionRecord holds the current session state with a peer and up to 40
// archived ones (libsignal's ARCHIVED_STATES_MAX_LENGTH).
type SessionRecord struct{}

func GenerateKeyPair() (KeyPair, error)                     { return KeyPair{}, errTODO }
func GenerateKyberKeyPair() (KyberKeyPair, error)           { return KyberKeyPair{}, errTODO }
func DecodePublicKey(b []byte) (PublicKey, error)           { return PublicKey{}, errTODO }
func DecodeKyberPublicKey(b []byte) (KyberPublicKey, error) { return KyberPublicKey{}, errTODO }
func (k PublicKey) Bytes() []byte                           { return nil }
func (k KyberPublicKey) Bytes() []byte                      { return nil }
func (k PublicKey) VerifySignature(msg, sig []byte) bool    { return false }
func (k PrivateKey) Sign(msg []byte) ([]byte, error)        { return nil, errTODO }
func GenerateSignedPreKey(identity KeyPair, id uint32, now time.Time) (SignedPreKeyRecord, error) {
	return SignedPreKeyRecord{}, errTODO
}
func GenerateKyberPreKey(identity KeyPair, id uint32, now time.Time, lastResort bool) (KyberPreKeyRecord, error) {
	return KyberPreKeyRecord{}, errTODO
}
func ProcessPreKeyBundle(ctx context.Context, s Store, remote parley.Address, b *PreKeyBundle, now time.Time) error {
	return errTODO
}
func Encrypt(ctx context.Context, s Store, remote parley.Address, plaintext []byte, now time.Time) (CiphertextMessage, error) {
	return CiphertextMessage{}, errTODO
}
func DecryptPreKey(ctx context.Context, s Store, remote parley.Address, msg []byte) ([]byte, error) {
	return nil, errTODO
}
func Decrypt(ctx context.Context, s Store, remote parley.Address, msg []byte) ([]byte, error) {
	return nil, errTODO
}

// SafetyNumber returns libsignal's displayable fingerprint (60 digits, version
// 2, 5200 iterations) for two identities, each given as a stable identifier
// (the username's bytes) and identity key, and the scannable encoding.
func SafetyNumber(localID []byte, localKey PublicKey, remoteID []byte, remoteKey PublicKey) (digits string, scannable []byte, err error) {
	return "", nil, errTODO
}
