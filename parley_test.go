package parley

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestParseUserID(t *testing.T) {
	tests := []struct {
		in   string
		want UserID
		ok   bool
	}{
		{"alice", "alice", true},
		{"Alice", "alice", true},
		{"bob.smith_2-x", "bob.smith_2-x", true},
		{"9lives", "9lives", true},
		{"ab", "", false},
		{"abcdefghijabcdefghijabcdefghijabc", "", false},
		{".alice", "", false},
		{"-alice", "", false},
		{"al ice", "", false},
		{"alice@x", "", false},
		{"ålice", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ParseUserID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseUserID(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && ErrorKind(err) != KindInvalid {
			t.Errorf("ParseUserID(%q) error kind = %v, want invalid", tt.in, ErrorKind(err))
		}
	}
}

func TestErrorKind(t *testing.T) {
	err := Errorf(KindNotFound, "no user %q: %w", "bob", io.EOF)
	wrapped := fmt.Errorf("send: %w", err)
	if got := ErrorKind(wrapped); got != KindNotFound {
		t.Errorf("ErrorKind = %v, want not_found", got)
	}
	if !errors.Is(wrapped, io.EOF) {
		t.Error("cause not wrapped")
	}
	if got := ErrorKind(io.EOF); got != KindInternal {
		t.Errorf("ErrorKind(plain) = %v, want internal", got)
	}
	if got, want := err.Error(), `no user "bob": EOF`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMessageIDRoundTrip(t *testing.T) {
	id := NewMessageID()
	if id == (MessageID{}) {
		t.Fatal("NewMessageID returned zero")
	}
	back, err := ParseMessageID(id.String())
	if err != nil || back != id {
		t.Fatalf("ParseMessageID(%s) = %v, %v", id, back, err)
	}
	if _, err := ParseMessageID("xyz"); ErrorKind(err) != KindInvalid {
		t.Errorf("ParseMessageID(bad) kind = %v", ErrorKind(err))
	}
	if got := (Address{"alice", 2}).String(); got != "alice.2" {
		t.Errorf("Address.String = %q", got)
	}
}
