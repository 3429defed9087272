package relay

import (
	"strconv"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

// FuzzAuthenticate checks the credential check on any username: it
// never panics, and takes only "EXPIRY:holder" with an expiry not passed.
func FuzzAuthenticate(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := &Server{cfg: Config{Secret: []byte("fuzz secret, 32 characters long."), Now: func() time.Time { return now }}, log: discard()}
	f.Add("1800000060:alice.1")
	f.Add("1799999999:alice.1")
	f.Add("alice.1")
	f.Add(":")
	f.Add("-1:x")
	f.Add("99999999999999999999999:x")
	f.Fuzz(func(t *testing.T, username string) {
		holder, key, ok := s.authenticate(&turn.RequestAttributes{Username: username, Realm: "parley"})
		exp, rest, found := cutColon(username)
		n, err := strconv.ParseInt(exp, 10, 64)
		want := found && err == nil && n >= now.Unix()
		if ok != want {
			t.Fatalf("authenticate(%q) = %v, want %v", username, ok, want)
		}
		if ok && (holder != rest || len(key) != 16) {
			t.Fatalf("authenticate(%q) = %q, %d-byte key", username, holder, len(key))
		}
	})
}
