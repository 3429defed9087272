package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

// txn is a signal.Store over a Store for one protocol operation (one
// decrypt, one encrypt, one bundle): reads go to the Store, writes are kept
// in a Batch (and read back from it) until the caller applies the Batch,
// together with whatever else belongs to the operation, in one atomic write.
type txn struct {
	st       Store
	identity signal.KeyPair
	regID    uint32
	overlay  map[recordKey][]byte // written records; nil value: deleted
	batch    Batch
	changed  []parley.UserID // whose identity key changed during the operation
}

type recordKey struct {
	kind RecordKind
	key  string
}

var _ signal.Store = (*txn)(nil)

// storeError marks an error of the Store, as opposed to one of the protocol,
// so that a failed disk is never mistaken for a bad message.
type storeError struct{ err error }

func (e *storeError) Error() string { return "local store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func isStoreError(err error) bool {
	var se *storeError
	return errors.As(err, &se)
}

func newTxn(st Store, identity signal.KeyPair, regID uint32) *txn {
	return &txn{st: st, identity: identity, regID: regID, overlay: map[recordKey][]byte{}}
}

func (t *txn) get(ctx context.Context, kind RecordKind, key string) ([]byte, error) {
	if v, ok := t.overlay[recordKey{kind, key}]; ok {
		return v, nil
	}
	v, err := t.st.Record(ctx, kind, key)
	if err != nil {
		return nil, &storeError{err}
	}
	return v, nil
}

func (t *txn) put(kind RecordKind, key string, v []byte) {
	t.overlay[recordKey{kind, key}] = v
	t.batch.Records = append(t.batch.Records, Record{Kind: kind, Key: key, Value: v})
}

func idKey(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

func (t *txn) IdentityKeyPair(context.Context) (signal.KeyPair, error) { return t.identity, nil }

func (t *txn) LocalRegistrationID(context.Context) (uint32, error) { return t.regID, nil }

func (t *txn) SaveIdentity(ctx context.Context, addr parley.Address, key signal.PublicKey) (bool, error) {
	old, ok, err := t.Identity(ctx, addr)
	if err != nil {
		return false, err
	}
	if ok && old.Equal(key) {
		return false, nil
	}
	t.put(RecordIdentity, string(addr.User), key.Bytes())
	if ok {
		t.changed = append(t.changed, addr.User)
	}
	return ok, nil
}

// IsTrustedIdentity trusts on first use and accepts a changed key, which
// SaveIdentity then reports (see "Trust" in the package doc).
func (t *txn) IsTrustedIdentity(context.Context, parley.Address, signal.PublicKey, signal.Direction) (bool, error) {
	return true, nil
}

func (t *txn) Identity(ctx context.Context, addr parley.Address) (signal.PublicKey, bool, error) {
	b, err := t.get(ctx, RecordIdentity, string(addr.User))
	if err != nil || b == nil {
		return signal.PublicKey{}, false, err
	}
	k, err := signal.DecodePublicKey(b)
	if err != nil {
		return signal.PublicKey{}, false, fmt.Errorf("identity of %s: %w", addr.User, err)
	}
	return k, true, nil
}

func (t *txn) LoadSession(ctx context.Context, addr parley.Address) (*signal.SessionRecord, error) {
	b, err := t.get(ctx, RecordSession, addr.String())
	if err != nil || b == nil {
		return nil, err
	}
	return unmarshalSession(b)
}

func (t *txn) StoreSession(_ context.Context, addr parley.Address, rec *signal.SessionRecord) error {
	b, err := marshalSession(rec)
	if err != nil {
		return fmt.Errorf("store session %s: %w", addr, err)
	}
	t.put(RecordSession, addr.String(), b)
	return nil
}

// deleteSession drops the session with addr (a stale or removed device).
func (t *txn) deleteSession(addr parley.Address) { t.put(RecordSession, addr.String(), nil) }

func (t *txn) LoadPreKey(ctx context.Context, id uint32) (signal.PreKeyRecord, error) {
	b, err := t.get(ctx, RecordPreKey, idKey(id))
	if err != nil {
		return signal.PreKeyRecord{}, err
	}
	if b == nil {
		return signal.PreKeyRecord{}, fmt.Errorf("prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return unmarshalPreKey(b)
}

func (t *txn) RemovePreKey(_ context.Context, id uint32) error {
	t.put(RecordPreKey, idKey(id), nil)
	return nil
}

func (t *txn) LoadSignedPreKey(ctx context.Context, id uint32) (signal.SignedPreKeyRecord, error) {
	b, err := t.get(ctx, RecordSignedPreKey, idKey(id))
	if err != nil {
		return signal.SignedPreKeyRecord{}, err
	}
	if b == nil {
		return signal.SignedPreKeyRecord{}, fmt.Errorf("signed prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return unmarshalSignedPreKey(b)
}

func (t *txn) LoadKyberPreKey(ctx context.Context, id uint32) (signal.KyberPreKeyRecord, error) {
	b, err := t.get(ctx, RecordKyberPreKey, idKey(id))
	if err != nil {
		return signal.KyberPreKeyRecord{}, err
	}
	if b == nil {
		return signal.KyberPreKeyRecord{}, fmt.Errorf("kyber prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return unmarshalKyberPreKey(b)
}

func (t *txn) MarkKyberPreKeyUsed(ctx context.Context, id uint32) error {
	r, err := t.LoadKyberPreKey(ctx, id)
	if err != nil {
		return err
	}
	if !r.LastResort {
		t.put(RecordKyberPreKey, idKey(id), nil)
	}
	return nil
}
