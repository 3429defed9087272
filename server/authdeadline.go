package server

import (
	"io"
	"sync"
	"time"
)

// authMinRate is the slowest upload, in bytes a second, that the auth
// deadline waits for: a first Register carries some 170 KB of prekeys
// (a hundred Kyber-1024 keys), which takes 40 s on a 32 kbit/s link.
const authMinRate = 2 << 10

// authDeadline ends a connection that has not authenticated within its
// time: Config.AuthTimeout, plus the time the bytes it has sent so far take
// at authMinRate. A client on a slow link gets the time its upload needs;
// one that holds the connection open by trickling bytes must keep sending
// authMinRate on average to stay.
type authDeadline struct {
	start  time.Time
	base   time.Duration
	expire func()

	mu      sync.Mutex
	bytes   int64
	t       *time.Timer
	stopped bool
}

func startAuthDeadline(base time.Duration, expire func()) *authDeadline {
	d := &authDeadline{start: time.Now(), base: base, expire: expire}
	d.mu.Lock()
	d.t = time.AfterFunc(base, d.fire)
	d.mu.Unlock()
	return d
}

// read counts n more bytes received.
func (d *authDeadline) read(n int) {
	d.mu.Lock()
	d.bytes += int64(n)
	d.mu.Unlock()
}

// fire ends the connection, unless the bytes read since the timer was set
// moved the deadline on: then it waits again.
func (d *authDeadline) fire() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	due := d.start.Add(d.base + time.Duration(d.bytes)*time.Second/authMinRate)
	if left := time.Until(due); left > 0 {
		d.t.Reset(left)
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.mu.Unlock()
	d.expire()
}

func (d *authDeadline) stop() {
	d.mu.Lock()
	d.stopped = true
	d.t.Stop()
	d.mu.Unlock()
}

// progressReader counts what it reads against an auth deadline.
type progressReader struct {
	r io.Reader
	d *authDeadline
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.d.read(n)
	return n, err
}
