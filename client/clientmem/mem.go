// Package clientmem is an in-memory client.Store, for tests and for
// clients that keep nothing.
package clientmem

import (
	"context"
	"slices"
	"sync"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// Store is an in-memory client.Store. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex // guards the fields below
	acct    *client.Account
	records map[client.RecordKind]map[string][]byte
	msgs    []client.Message
	seq     uint64
}

var _ client.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{records: map[client.RecordKind]map[string][]byte{}}
}

// Account implements client.Store.
func (s *Store) Account(context.Context) (*client.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acct == nil {
		return nil, nil
	}
	a := cloneAccount(*s.acct)
	return &a, nil
}

// Record implements client.Store.
func (s *Store) Record(_ context.Context, kind client.RecordKind, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records[kind][key]), nil
}

// Messages implements client.Store.
func (s *Store) Messages(_ context.Context, q client.Query) ([]client.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []client.Message
	for i := range s.msgs {
		if q.Matches(&s.msgs[i]) {
			out = append(out, s.msgs[i])
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
	}
	return out, nil
}

type msgKey struct {
	peer     parley.UserID
	outgoing bool
	id       parley.MessageID
}

// Apply implements client.Store.
func (s *Store) Apply(_ context.Context, b *client.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Account != nil {
		a := cloneAccount(*b.Account)
		s.acct = &a
	}
	for _, r := range b.Records {
		m := s.records[r.Kind]
		if m == nil {
			m = map[string][]byte{}
			s.records[r.Kind] = m
		}
		if r.Value == nil {
			delete(m, r.Key)
		} else {
			m[r.Key] = slices.Clone(r.Value)
		}
	}
	for _, m := range b.Messages {
		if s.find(msgKey{m.Peer, m.Outgoing, m.ID}) >= 0 {
			continue
		}
		s.seq++
		m.Seq = s.seq
		s.msgs = append(s.msgs, m)
	}
	for _, c := range b.States {
		i := s.find(msgKey{c.Peer, c.Outgoing, c.ID})
		if i < 0 {
			continue
		}
		s.msgs[i].State = c.State
		if !c.At.IsZero() {
			s.msgs[i].At = c.At
		}
		if c.Error != "" {
			s.msgs[i].Error = c.Error
		}
	}
	return nil
}

func (s *Store) find(k msgKey) int {
	for i := range s.msgs {
		if m := &s.msgs[i]; m.Peer == k.peer && m.Outgoing == k.outgoing && m.ID == k.id {
			return i
		}
	}
	return -1
}

func cloneAccount(a client.Account) client.Account {
	a.IdentityKey = slices.Clone(a.IdentityKey)
	a.DeviceKey = slices.Clone(a.DeviceKey)
	return a
}
