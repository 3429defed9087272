package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/sqlite"
	"github.com/parleychat/parley/server/storetest"
)

func open(t testing.TB, file string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) server.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, file)
	envs := []parley.Envelope{{
		ID: parley.MessageID{1}, From: parley.Address{User: "alice", Device: 1}, To: parley.Address{User: "bob", Device: 1},
		Type: parley.EnvelopePreKey, Content: []byte("x"), ServerAt: time.Now(),
	}}
	if _, err := s.Enqueue(ctx, envs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, envs); parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("Enqueue after Close: %v", err)
	}
	s = open(t, file) // migrations run again: a no-op
	defer s.Close()
	got, err := s.Mailbox(ctx, envs[0].To, 0, 10)
	if err != nil || len(got) != 1 || got[0].ServerSeq != envs[0].ServerSeq {
		t.Fatalf("after reopen: %v, %v", got, err)
	}
}

// TestSeqAfterReopen checks that seqs keep growing across a restart even
// when every message was deleted: the writer assigns them itself.
func TestSeqAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "parley.db")
	to := parley.Address{User: "bob", Device: 1}
	enqueue := func(s *sqlite.Store, id byte) uint64 {
		envs := []parley.Envelope{{
			ID: parley.MessageID{id}, From: parley.Address{User: "alice", Device: 1}, To: to,
			Type: parley.EnvelopeSignal, Content: []byte("x"), ServerAt: time.Now(),
		}}
		if dup, err := s.Enqueue(ctx, envs); dup || err != nil {
			t.Fatalf("Enqueue: dup %v, %v", dup, err)
		}
		return envs[0].ServerSeq
	}
	s := open(t, file)
	var last uint64
	for i := range 3 {
		last = enqueue(s, byte(i+1))
	}
	if err := s.Ack(ctx, to, []uint64{last - 2, last - 1, last}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountMessages(ctx); err != nil || n != 0 {
		t.Fatalf("CountMessages = %d, %v; want 0", n, err)
	}
	s.Close()
	s = open(t, file)
	defer s.Close()
	if seq := enqueue(s, 9); seq <= last {
		t.Errorf("seq %d after reopen, not above %d", seq, last)
	}
}

// BenchmarkGroupCommit measures durable inserts per second with 64
// concurrent writers, each waiting for its own fsync'd commit.
func BenchmarkGroupCommit(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "parley.db"))
	defer s.Close()
	content := make([]byte, 1024)
	var next atomic.Uint64
	const writers = 64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + writers - 1) / writers
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				n := next.Add(1)
				id := parley.MessageID{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24), byte(n >> 32)}
				envs := []parley.Envelope{{
					ID: id, From: parley.Address{User: "alice", Device: parley.DeviceID(w + 1)},
					To: parley.Address{User: "bob", Device: 1}, Type: parley.EnvelopeSignal,
					Content: content, ServerAt: start,
				}}
				if _, err := s.Enqueue(ctx, envs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*writers)/time.Since(start).Seconds(), "inserts/s")
}

// TestMigrateAccepted opens a database of schema version 2 with a replay
// record and a message: migration 3 keeps both, the record now keyed by
// the time the server accepted it.
func TestMigrateAccepted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "parley.db")
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"migrations/001_init.sql", "migrations/002_expire_by_seq.sql"} {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(b)); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	const acceptedMs = 1764320400000
	for _, q := range []string{
		"PRAGMA user_version = 2",
		fmt.Sprintf("INSERT INTO accepted (from_user, from_device, msg_id, server_ms) VALUES ('alice', 1, x'09', %d)", acceptedMs),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := open(t, file)
	defer s.Close()
	db, err = sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	var key int64
	var user string
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version < 3 {
		t.Fatalf("user_version %d, %v", version, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT key_ms, from_user FROM accepted WHERE msg_id = x'09'").Scan(&key, &user); err != nil || key != acceptedMs || user != "alice" {
		t.Errorf("the migrated replay record: %d %q, %v", key, user, err)
	}
	// A retry of a message sent now is caught by the new key.
	envs := []parley.Envelope{{ID: parley.MessageID{1}, From: parley.Address{User: "alice", Device: 1}, To: parley.Address{User: "bob", Device: 1},
		Type: parley.EnvelopeSignal, Content: []byte("x"), SentAt: time.Now().Add(-time.Minute), ServerAt: time.Now()}}
	if dup, err := s.Enqueue(ctx, envs); dup || err != nil {
		t.Fatalf("Enqueue: %v, %v", dup, err)
	}
	envs[0].ServerAt = time.Now().Add(time.Hour) // the retry, later
	if dup, err := s.Enqueue(ctx, envs); !dup || err != nil {
		t.Errorf("retry an hour later: dup %v, %v; want dup", dup, err)
	}
}
