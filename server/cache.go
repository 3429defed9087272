package server

import (
	"context"
	"sync"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
)

// accountCache is a Store that keeps accounts and their device lists in
// memory, so that a send does not read the database to check the
// recipient's devices. It is correct while this process is the only writer
// of accounts and devices, which holds for the embedded store; a shared
// backend (PostgreSQL with several parleyd) must invalidate it across nodes
// or go without it.
type accountCache struct {
	Store

	mu      sync.RWMutex // guards entries and gen
	entries map[parley.UserID]cachedAccount
	// gen counts invalidations, so that a read that raced with a change
	// does not cache what it read before the change.
	gen uint64
}

type cachedAccount struct {
	acct directory.Account
	devs []directory.Device // shared: callers must not modify it
}

// maxCachedAccounts bounds the cache; past it the cache starts over.
const maxCachedAccounts = 200_000

func newAccountCache(st Store) *accountCache {
	return &accountCache{Store: st, entries: make(map[parley.UserID]cachedAccount)}
}

func (c *accountCache) Account(ctx context.Context, user parley.UserID) (directory.Account, []directory.Device, error) {
	c.mu.RLock()
	e, ok := c.entries[user]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return e.acct, e.devs, nil
	}
	a, devs, err := c.Store.Account(ctx, user)
	if err != nil {
		return a, devs, err // unknown users are not cached: they may register
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.entries) >= maxCachedAccounts {
			clear(c.entries)
		}
		c.entries[user] = cachedAccount{acct: a, devs: devs}
	}
	c.mu.Unlock()
	return a, devs, nil
}

func (c *accountCache) forget(user parley.UserID) {
	c.mu.Lock()
	delete(c.entries, user)
	c.gen++
	c.mu.Unlock()
}

func (c *accountCache) CreateAccount(ctx context.Context, a directory.Account, d directory.Device, k directory.Keys) error {
	defer c.forget(a.User)
	return c.Store.CreateAccount(ctx, a, d, k)
}

func (c *accountCache) AddDevice(ctx context.Context, d directory.Device, k directory.Keys) (parley.DeviceID, error) {
	defer c.forget(d.Addr().User)
	return c.Store.AddDevice(ctx, d, k)
}
