package signal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

// memStore is an in-memory Store: trust on first use, then only the same
// key. Sessions are stored encoded, so every test also exercises
// SessionRecord's storage encoding.
type memStore struct {
	identity KeyPair
	regID    uint32

	mu         sync.Mutex // guards everything below
	identities map[parley.Address]PublicKey
	sessions   map[parley.Address][]byte
	preKeys    map[uint32]PreKeyRecord
	signed     map[uint32]SignedPreKeyRecord
	kyber      map[uint32]KyberPreKeyRecord
	distrust   bool // IsTrustedIdentity says no to everything
}

var _ Store = (*memStore)(nil)

func newMemStore(t testing.TB, regID uint32) *memStore {
	t.Helper()
	id, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &memStore{
		identity: id, regID: regID,
		identities: map[parley.Address]PublicKey{},
		sessions:   map[parley.Address][]byte{},
		preKeys:    map[uint32]PreKeyRecord{},
		signed:     map[uint32]SignedPreKeyRecord{},
		kyber:      map[uint32]KyberPreKeyRecord{},
	}
}

// bundle makes fresh prekeys with the given ids (preKeyID 0: none) and
// returns the bundle for them.
func (s *memStore) bundle(t testing.TB, preKeyID, signedID, kyberID uint32) *PreKeyBundle {
	t.Helper()
	now := time.Now()
	b := &PreKeyBundle{RegistrationID: s.regID, DeviceID: 1, IdentityKey: s.identity.Public}
	s.mu.Lock()
	defer s.mu.Unlock()
	if preKeyID != 0 {
		pk, err := GeneratePreKey(preKeyID)
		if err != nil {
			t.Fatal(err)
		}
		s.preKeys[preKeyID] = pk
		b.HasPreKey, b.PreKeyID, b.PreKey = true, preKeyID, pk.Key.Public
	}
	spk, err := GenerateSignedPreKey(s.identity, signedID, now)
	if err != nil {
		t.Fatal(err)
	}
	s.signed[signedID] = spk
	b.SignedPreKeyID, b.SignedPreKey, b.SignedPreKeySignature = signedID, spk.Key.Public, spk.Signature
	kpk, err := GenerateKyberPreKey(s.identity, kyberID, now, false)
	if err != nil {
		t.Fatal(err)
	}
	s.kyber[kyberID] = kpk
	b.KyberPreKeyID, b.KyberPreKey, b.KyberPreKeySignature = kyberID, kpk.Key.Public, kpk.Signature
	return b
}

func (s *memStore) IdentityKeyPair(context.Context) (KeyPair, error) { return s.identity, nil }
func (s *memStore) LocalRegistrationID(context.Context) (uint32, error) {
	return s.regID, nil
}

func (s *memStore) SaveIdentity(_ context.Context, a parley.Address, k PublicKey) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[a]
	s.identities[a] = k
	return ok && !old.Equal(k), nil
}

func (s *memStore) IsTrustedIdentity(_ context.Context, a parley.Address, k PublicKey, _ Direction) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.distrust {
		return false, nil
	}
	old, ok := s.identities[a]
	return !ok || old.Equal(k), nil
}

func (s *memStore) Identity(_ context.Context, a parley.Address) (PublicKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.identities[a]
	return k, ok, nil
}

func (s *memStore) LoadSession(_ context.Context, a parley.Address) (*SessionRecord, error) {
	s.mu.Lock()
	b, ok := s.sessions[a]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return UnmarshalSessionRecord(b)
}

func (s *memStore) StoreSession(_ context.Context, a parley.Address, r *SessionRecord) error {
	b, err := r.MarshalBinary()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[a] = b
	return nil
}

func (s *memStore) LoadPreKey(_ context.Context, id uint32) (PreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.preKeys[id]
	if !ok {
		return r, fmt.Errorf("prekey %d: %w", id, ErrNoPreKey)
	}
	return r, nil
}

func (s *memStore) RemovePreKey(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.preKeys, id)
	return nil
}

func (s *memStore) LoadSignedPreKey(_ context.Context, id uint32) (SignedPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.signed[id]
	if !ok {
		return r, fmt.Errorf("signed prekey %d: %w", id, ErrNoPreKey)
	}
	return r, nil
}

func (s *memStore) LoadKyberPreKey(_ context.Context, id uint32) (KyberPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.kyber[id]
	if !ok {
		return r, fmt.Errorf("kyber prekey %d: %w", id, ErrNoPreKey)
	}
	return r, nil
}

func (s *memStore) MarkKyberPreKeyUsed(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.kyber[id]; ok && !r.LastResort {
		delete(s.kyber, id)
	}
	return nil
}
