package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds how many keys a limiters set tracks. When it is full,
// new keys share one limiter, so a flood of new IPs slows only itself.
const maxLimiters = 100_000

// limiters is a set of token buckets, one per key (a client IP or a device).
type limiters struct {
	r Rate

	mu       sync.Mutex
	m        map[string]*limiter // guarded by mu
	overflow *rate.Limiter       // guarded by mu: shared once m is full
}

type limiter struct {
	l    *rate.Limiter
	last time.Time // when it was last used
}

func newLimiters(r Rate) *limiters {
	return &limiters{r: r, m: make(map[string]*limiter), overflow: rate.NewLimiter(r.limit(), r.Burst)}
}

// allow reports whether key may act now, and takes a token if so.
func (ls *limiters) allow(key string) bool {
	now := time.Now()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.m[key]
	if !ok {
		if len(ls.m) >= maxLimiters {
			return ls.overflow.AllowN(now, 1)
		}
		l = &limiter{l: rate.NewLimiter(ls.r.limit(), ls.r.Burst)}
		ls.m[key] = l
	}
	l.last = now
	return l.l.AllowN(now, 1)
}

// prune forgets limiters that have refilled completely: keeping them would
// change nothing.
func (ls *limiters) prune(now time.Time) {
	full := ls.r.Every * time.Duration(ls.r.Burst)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, l := range ls.m {
		if now.Sub(l.last) > full {
			delete(ls.m, k)
		}
	}
}
