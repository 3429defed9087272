package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

// twoCopies is a message for two devices of bob.
func twoCopies() []parley.Envelope {
	envs := testEnvelope()
	envs = append(envs, envs[0])
	envs[1].To.Device = 2
	return envs
}

// waiting runs wait and returns the channel that carries its error.
func waiting(wait func() (bool, error)) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := wait()
		done <- err
	}()
	return done
}

// answered reports whether the wait returns (without error) within d.
func answered(t *testing.T, done <-chan error, d time.Duration) bool {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		return true
	case <-time.After(d):
		return false
	}
}

// TestAckedWhileHeldNotWritten: a copy acknowledged while it is held is
// never written to the mailbox; a message is written, and its sender
// answered, once all its copies are acknowledged or when none reached a
// connected device, without waiting out the hold; and after a reopen the
// seqs given to copies never written are still not reused.
func TestAckedWhileHeldNotWritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	s.holdFor = time.Hour // only an acknowledgement or Close ends a hold

	// Both copies delivered, one acknowledged: held until Close.
	envs := twoCopies()
	offered := make(chan *parley.Envelope, 2)
	wait := waiting(s.StartEnqueue(ctx, envs, func(e *parley.Envelope) bool { offered <- e; return true }))
	e := <-offered
	<-offered
	if err := s.Ack(ctx, e.To, []uint64{e.ServerSeq}); err != nil {
		t.Fatal(err)
	}
	if answered(t, wait, 300*time.Millisecond) {
		t.Fatal("answered while a copy delivered to a connected device was unacknowledged and held")
	}
	if m, err := s.Mailbox(ctx, envs[1].To, 0, 10); err != nil || len(m) != 1 || m[0].ServerSeq != envs[1].ServerSeq {
		t.Fatalf("bob.2's mailbox while held: %v, %v", m, err)
	}

	// Both acknowledged: written (its replay record only) and answered.
	both := twoCopies()
	wait2 := waiting(s.StartEnqueue(ctx, both, func(e *parley.Envelope) bool {
		go s.Ack(ctx, e.To, []uint64{e.ServerSeq})
		return true
	}))
	if !answered(t, wait2, 10*time.Second) {
		t.Fatal("a message acknowledged on every device was not answered")
	}
	// Delivered to no connected device: written at once.
	offline := testEnvelope()
	if !answered(t, waiting(s.StartEnqueue(ctx, offline, func(*parley.Envelope) bool { return false })), 10*time.Second) {
		t.Fatal("a message for devices not connected was not answered")
	}
	if n := s.written.Load(); n != 1 {
		t.Errorf("%d copies written, want 1 (the offline one)", n)
	}
	if n, err := s.CountMessages(ctx); err != nil || n != 1 {
		t.Errorf("CountMessages = %d, %v; want 1", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !answered(t, wait, 10*time.Second) {
		t.Fatal("a held message was not answered when the store closed")
	}
	if n := s.written.Load(); n != 2 {
		t.Errorf("%d copies written, want 2 (the offline one, and the unacknowledged one of the first message)", n)
	}

	s, err = Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := testEnvelope()
	if _, err := s.Enqueue(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ServerSeq <= both[1].ServerSeq {
		t.Errorf("after reopening, seq %d given again (%d was given before)", next[0].ServerSeq, both[1].ServerSeq)
	}
	if dup, err := s.Enqueue(ctx, both); !dup || err != nil {
		t.Errorf("replay of a message never written, after reopening: dup %v, %v; want dup", dup, err)
	}
	m, err := s.Mailbox(ctx, envs[1].To, 0, 10)
	if err != nil || len(m) != 1 || m[0].ServerSeq != envs[1].ServerSeq {
		t.Errorf("bob.2's mailbox after reopening: %v, %v; want the copy it did not acknowledge", m, err)
	}
}

// TestMailboxMergesHeld: a page of the mailbox holds the stored and the
// held copies in seq order, and a full page of stored rows takes no held
// copy past its end (rows not read may lie before it).
func TestMailboxMergesHeld(t *testing.T) {
	env := func(seq uint64) parley.Envelope { return parley.Envelope{ServerSeq: seq} }
	seqs := func(es []parley.Envelope) []uint64 {
		var out []uint64
		for _, e := range es {
			out = append(out, e.ServerSeq)
		}
		return out
	}
	for _, tt := range []struct {
		page, held []uint64
		limit      int
		want       []uint64
	}{
		{[]uint64{1, 2}, []uint64{3, 5}, 10, []uint64{1, 2, 3, 5}},
		{[]uint64{2, 4}, []uint64{1, 3, 4}, 10, []uint64{1, 2, 3, 4}}, // 4: held, and written meanwhile
		{[]uint64{2, 4, 6}, []uint64{1, 5, 7}, 3, []uint64{1, 2, 4}},
		{[]uint64{2, 4, 6}, []uint64{7}, 3, []uint64{2, 4, 6}},
		{nil, []uint64{7, 8}, 1, []uint64{7}},
	} {
		var page, held []parley.Envelope
		for _, s := range tt.page {
			page = append(page, env(s))
		}
		for _, s := range tt.held {
			held = append(held, env(s))
		}
		if got := seqs(withHeld(page, held, tt.limit)); !slices.Equal(got, tt.want) {
			t.Errorf("withHeld(%v, %v, %d) = %v, want %v", tt.page, tt.held, tt.limit, got, tt.want)
		}
	}
}
