package signaltest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

// MemStore is an in-memory signal.Store for tests: trust on first use for
// remote identities (then only the same key, as libsignal's in-memory store),
// one session record per address, kept serialised (MarshalBinary) as a real
// store keeps it, so that every load is a fresh copy, and prekeys in maps.
type MemStore struct {
	identity signal.KeyPair
	regID    uint32

	mu         sync.Mutex // guards the maps and KyberUsed
	identities map[parley.Address]signal.PublicKey
	sessions   map[parley.Address][]byte // SessionRecord.MarshalBinary
	preKeys    map[uint32]signal.PreKeyRecord
	signed     map[uint32]signal.SignedPreKeyRecord
	kyber      map[uint32]signal.KyberPreKeyRecord
	// KyberUsed lists the Kyber prekey ids passed to MarkKyberPreKeyUsed.
	KyberUsed []uint32
}

var _ signal.Store = (*MemStore)(nil)

// NewMemStore returns an empty store for the given identity.
func NewMemStore(identity signal.KeyPair, regID uint32) *MemStore {
	return &MemStore{
		identity:   identity,
		regID:      regID,
		identities: make(map[parley.Address]signal.PublicKey),
		sessions:   make(map[parley.Address][]byte),
		preKeys:    make(map[uint32]signal.PreKeyRecord),
		signed:     make(map[uint32]signal.SignedPreKeyRecord),
		kyber:      make(map[uint32]signal.KyberPreKeyRecord),
	}
}

// NewBundle generates a one-time prekey (unless preKeyID is 0), a signed
// prekey and a one-time Kyber prekey with package signal, stores them and
// returns the bundle a sender fetches for device.
func (s *MemStore) NewBundle(device parley.DeviceID, preKeyID, signedID, kyberID uint32, now time.Time) (*signal.PreKeyBundle, error) {
	b := &signal.PreKeyBundle{RegistrationID: s.regID, DeviceID: device, IdentityKey: s.identity.Public}
	if preKeyID != 0 {
		pk, err := signal.GenerateKeyPair()
		if err != nil {
			return nil, err
		}
		s.AddPreKey(signal.PreKeyRecord{ID: preKeyID, Key: pk})
		b.HasPreKey, b.PreKeyID, b.PreKey = true, preKeyID, pk.Public
	}
	spk, err := signal.GenerateSignedPreKey(s.identity, signedID, now)
	if err != nil {
		return nil, err
	}
	s.AddSignedPreKey(spk)
	b.SignedPreKeyID, b.SignedPreKey, b.SignedPreKeySignature = spk.ID, spk.Key.Public, spk.Signature
	kpk, err := signal.GenerateKyberPreKey(s.identity, kyberID, now, false)
	if err != nil {
		return nil, err
	}
	s.AddKyberPreKey(kpk)
	b.KyberPreKeyID, b.KyberPreKey, b.KyberPreKeySignature = kpk.ID, kpk.Key.Public, kpk.Signature
	return b, nil
}

// AddPreKey stores a one-time prekey.
func (s *MemStore) AddPreKey(r signal.PreKeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.preKeys[r.ID] = r
}

// AddSignedPreKey stores a signed prekey.
func (s *MemStore) AddSignedPreKey(r signal.SignedPreKeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signed[r.ID] = r
}

// AddKyberPreKey stores a Kyber prekey.
func (s *MemStore) AddKyberPreKey(r signal.KyberPreKeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kyber[r.ID] = r
}

// ForgetSession deletes the session record for addr.
func (s *MemStore) ForgetSession(addr parley.Address) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, addr)
}

func (s *MemStore) IdentityKeyPair(context.Context) (signal.KeyPair, error) { return s.identity, nil }

func (s *MemStore) LocalRegistrationID(context.Context) (uint32, error) { return s.regID, nil }

func (s *MemStore) SaveIdentity(_ context.Context, addr parley.Address, key signal.PublicKey) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	s.identities[addr] = key
	return ok && !old.Equal(key), nil
}

func (s *MemStore) IsTrustedIdentity(_ context.Context, addr parley.Address, key signal.PublicKey, _ signal.Direction) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	return !ok || old.Equal(key), nil
}

func (s *MemStore) Identity(_ context.Context, addr parley.Address) (signal.PublicKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.identities[addr]
	return k, ok, nil
}

func (s *MemStore) LoadSession(_ context.Context, addr parley.Address) (*signal.SessionRecord, error) {
	s.mu.Lock()
	b, ok := s.sessions[addr]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return signal.UnmarshalSessionRecord(b)
}

func (s *MemStore) StoreSession(_ context.Context, addr parley.Address, rec *signal.SessionRecord) error {
	b, err := rec.MarshalBinary()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[addr] = b
	return nil
}

// ArchiveSession archives the current state of the session with addr
// (SessionRecord.ArchiveCurrentState), as a session reset does. It is a no-op
// without a session.
func (s *MemStore) ArchiveSession(ctx context.Context, addr parley.Address) error {
	rec, err := s.LoadSession(ctx, addr)
	if err != nil || rec == nil {
		return err
	}
	rec.ArchiveCurrentState()
	return s.StoreSession(ctx, addr, rec)
}

func (s *MemStore) LoadPreKey(_ context.Context, id uint32) (signal.PreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.preKeys[id]
	if !ok {
		return signal.PreKeyRecord{}, fmt.Errorf("load prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return r, nil
}

func (s *MemStore) RemovePreKey(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.preKeys, id)
	return nil
}

func (s *MemStore) LoadSignedPreKey(_ context.Context, id uint32) (signal.SignedPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.signed[id]
	if !ok {
		return signal.SignedPreKeyRecord{}, fmt.Errorf("load signed prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return r, nil
}

func (s *MemStore) LoadKyberPreKey(_ context.Context, id uint32) (signal.KyberPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.kyber[id]
	if !ok {
		return signal.KyberPreKeyRecord{}, fmt.Errorf("load kyber prekey %d: %w", id, signal.ErrNoPreKey)
	}
	return r, nil
}

func (s *MemStore) MarkKyberPreKeyUsed(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.KyberUsed = append(s.KyberUsed, id)
	if r, ok := s.kyber[id]; ok && !r.LastResort {
		delete(s.kyber, id)
	}
	return nil
}
