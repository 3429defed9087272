package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

// disk stands in for fsync: each call waits for a token on release (or
// passes at once when release is nil) and then fails while fail is set.
type disk struct {
	release chan struct{}
	fail    atomic.Bool
	syncs   atomic.Int32
}

func (d *disk) fsync(f *os.File) error {
	if d.release != nil {
		<-d.release
	}
	d.syncs.Add(1)
	if d.fail.Load() {
		return errors.New("EIO (test)")
	}
	return f.Sync()
}

func openWith(t *testing.T, d *disk) *Store {
	t.Helper()
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "parley.db"), d.fsync)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEnvelope() []parley.Envelope {
	return []parley.Envelope{{
		ID: parley.NewMessageID(), Type: parley.EnvelopeSignal, Content: []byte("ciphertext"),
		From:   parley.Address{User: "alice", Device: 1},
		To:     parley.Address{User: "bob", Device: 1},
		SentAt: time.Now(), ServerAt: time.Now(),
	}}
}

// TestAnsweredOnlyOnceSynced: a committed change is not answered until the
// WAL holding it is synced.
func TestAnsweredOnlyOnceSynced(t *testing.T) {
	t.Parallel()
	d := &disk{release: make(chan struct{}, 100)}
	d.release <- struct{}{} // Open's own sync
	s := openWith(t, d)

	wait := s.StartEnqueue(context.Background(), testEnvelope(), nil)
	answered := make(chan error, 1)
	go func() {
		_, err := wait()
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("answered (%v) before the WAL was synced", err)
	case <-time.After(200 * time.Millisecond):
	}
	// It is committed all the same: a reader sees it.
	if n, err := s.CountMessages(context.Background()); err != nil || n != 1 {
		t.Fatalf("before the sync, %d messages visible (%v), want 1", n, err)
	}
	close(d.release)
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not answered after the sync")
	}
}

// TestFailedSyncFailsForGood: a failed fsync fails the changes it was to
// make durable and every later one, even when the disk works again.
func TestFailedSyncFailsForGood(t *testing.T) {
	t.Parallel()
	d := &disk{}
	s := openWith(t, d)
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, testEnvelope()); err != nil {
		t.Fatal(err)
	}
	d.fail.Store(true)
	if _, err := s.Enqueue(ctx, testEnvelope()); err == nil || parley.ErrorKind(err) != parley.KindInternal {
		t.Fatalf("enqueue with a failing fsync: %v, want an internal error", err)
	}
	d.fail.Store(false)
	if _, err := s.Enqueue(ctx, testEnvelope()); err == nil || parley.ErrorKind(err) != parley.KindInternal {
		t.Fatalf("enqueue after a failed fsync: %v, want an internal error", err)
	}
	if n := d.syncs.Load(); n != 3 { // Open's, the first enqueue's, the failed one
		t.Errorf("%d fsyncs, want 3: a failed one is not tried again", n)
	}
}

// TestOneSyncForManyCommits: commits made while a sync runs are made
// durable together by the next.
func TestOneSyncForManyCommits(t *testing.T) {
	t.Parallel()
	d := &disk{release: make(chan struct{}, 100)}
	d.release <- struct{}{} // Open's
	s := openWith(t, d)
	ctx := context.Background()

	first := s.StartEnqueue(ctx, testEnvelope(), nil)
	// While the first commit's sync waits, the writer goes on committing.
	var waits []func() (bool, error)
	for range 5 {
		waits = append(waits, s.StartEnqueue(ctx, testEnvelope(), nil))
		time.Sleep(3 * commitGap) // a commit each
	}
	time.Sleep(holdFor + 3*commitGap) // each written in a commit of its own or two
	if n, err := s.CountMessages(ctx); err != nil || n != 6 {
		t.Fatalf("%d messages committed while a sync waited (%v), want 6", n, err)
	}
	time.Sleep(50 * time.Millisecond) // the last commit's handing over
	close(d.release)
	if _, err := first(); err != nil {
		t.Fatal(err)
	}
	for _, w := range waits {
		if _, err := w(); err != nil {
			t.Fatal(err)
		}
	}
	// Open's, the first commit's, and one for the five that waited (two,
	// should the last have been handed over only after the release).
	if n := d.syncs.Load(); n > 4 {
		t.Errorf("%d fsyncs for Open and 6 commits, want 3 (one per commit would be 7)", n)
	}
}
