package server

import (
	"testing"
	"time"
)

// TestAuthDeadline: bytes arriving at twice authMinRate keep a connection
// past its base timeout; at half that rate, it expires soon after.
func TestAuthDeadline(t *testing.T) {
	t.Parallel()
	const base, tick = 100 * time.Millisecond, 20 * time.Millisecond
	feed := func(rate int, d time.Duration) (expired chan time.Duration) {
		expired = make(chan time.Duration, 1)
		start := time.Now()
		ad := startAuthDeadline(base, func() { expired <- time.Since(start) })
		t.Cleanup(ad.stop)
		for time.Since(start) < d {
			select {
			case e := <-expired:
				expired <- e
				return expired
			case <-time.After(tick):
				ad.read(rate * int(tick) / int(time.Second))
			}
		}
		return expired
	}

	fast := feed(2*authMinRate, 10*base)
	select {
	case e := <-fast:
		t.Fatalf("uploading at %d B/s, the deadline expired after %v", 2*authMinRate, e)
	default:
	}
	// It has earned slack (bytes/authMinRate - elapsed) and then expires.
	select {
	case e := <-fast:
		if e < 10*base {
			t.Errorf("expired after %v", e)
		}
	case <-time.After(30 * base):
		t.Fatal("no more bytes, and the deadline never expired")
	}

	slow := feed(authMinRate/2, 20*base)
	select {
	case e := <-slow:
		// base + e/2 = e: expires at 2*base.
		if e < base || e > 10*base {
			t.Errorf("trickling at %d B/s: expired after %v, want about %v", authMinRate/2, e, 2*base)
		}
	default:
		t.Fatalf("trickling at %d B/s for %v kept the connection", authMinRate/2, 20*base)
	}
}
