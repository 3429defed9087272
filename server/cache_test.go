package server

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
)

// countingStore counts Account reads and serves one account from memory.
type countingStore struct {
	Store
	reads int
	devs  []directory.Device
}

func (s *countingStore) Account(ctx context.Context, user parley.UserID) (directory.Account, []directory.Device, error) {
	s.reads++
	if user != "bob" {
		return directory.Account{}, nil, parley.Errorf(parley.KindNotFound, "no user %s", user)
	}
	return directory.Account{User: user}, s.devs, nil
}

func (s *countingStore) AddDevice(ctx context.Context, d directory.Device, k directory.Keys) (parley.DeviceID, error) {
	s.devs = append(s.devs, d)
	return d.ID, nil
}

func (s *countingStore) CreateAccount(ctx context.Context, a directory.Account, d directory.Device, k directory.Keys) error {
	return nil
}

func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{devs: []directory.Device{{User: "bob", ID: 1, Created: time.Unix(1, 0)}}}
	c := newAccountCache(st)
	for range 3 {
		if _, devs, err := c.Account(ctx, "bob"); err != nil || len(devs) != 1 {
			t.Fatalf("Account(bob) = %v, %v", devs, err)
		}
	}
	if st.reads != 1 {
		t.Errorf("3 lookups read the store %d times, want 1", st.reads)
	}
	// Unknown users are not cached: they may register later.
	for range 2 {
		if _, _, err := c.Account(ctx, "carol"); parley.ErrorKind(err) != parley.KindNotFound {
			t.Fatalf("Account(carol) = %v", err)
		}
	}
	if st.reads != 3 {
		t.Errorf("reads = %d, want 3 (unknown users read each time)", st.reads)
	}
	// A new device is seen at once.
	if _, err := c.AddDevice(ctx, directory.Device{User: "bob", ID: 2}, directory.Keys{}); err != nil {
		t.Fatal(err)
	}
	if _, devs, _ := c.Account(ctx, "bob"); len(devs) != 2 {
		t.Errorf("after AddDevice: %d devices, want 2", len(devs))
	}
	// A read that raced with a change does not cache its stale answer.
	gen := c.gen
	c.forget("bob")
	if c.gen == gen {
		t.Error("forget did not advance the generation")
	}
}
