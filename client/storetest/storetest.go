// Package storetest is the conformance suite that every client.Store
// implementation passes.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// Run runs the suite; open returns a new, empty Store for each subtest.
func Run(t *testing.T, open func(t *testing.T) client.Store) {
	t.Run("Account", func(t *testing.T) { testAccount(t, open(t)) })
	t.Run("Records", func(t *testing.T) { testRecords(t, open(t)) })
	t.Run("Messages", func(t *testing.T) { testMessages(t, open(t)) })
	t.Run("Dedup", func(t *testing.T) { testDedup(t, open(t)) })
	t.Run("States", func(t *testing.T) { testStates(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

var at = time.UnixMilli(1764300000123)

func apply(t *testing.T, s client.Store, b *client.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func testAccount(t *testing.T, s client.Store) {
	ctx := context.Background()
	a, err := s.Account(ctx)
	if err != nil || a != nil {
		t.Fatalf("Account of an empty store = %v, %v; want nil, nil", a, err)
	}
	want := client.Account{Server: "http://127.0.0.1:1", User: "alice", Device: 1, RegistrationID: 77,
		IdentityKey: []byte{1, 2, 3}, DeviceKey: []byte{4, 5}, NextPreKeyID: 101, NextKyberPreKeyID: 102, NextSignedPreKeyID: 2,
		SignedPreKeyID: 1, LastResortKyberID: 1, RotatedAt: at.Add(time.Hour), Created: at}
	apply(t, s, &client.Batch{Account: &want})
	got, err := s.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Account (-want +got):\n%s", diff)
	}
	want.NextPreKeyID = 201
	apply(t, s, &client.Batch{Account: &want})
	if got, _ := s.Account(ctx); got.NextPreKeyID != 201 {
		t.Errorf("after replacing: NextPreKeyID = %d, want 201", got.NextPreKeyID)
	}
}

func testRecords(t *testing.T, s client.Store) {
	ctx := context.Background()
	if v, err := s.Record(ctx, client.RecordSession, "bob.1"); v != nil || err != nil {
		t.Fatalf("missing record = %v, %v; want nil, nil", v, err)
	}
	apply(t, s, &client.Batch{Records: []client.Record{
		{Kind: client.RecordSession, Key: "bob.1", Value: []byte("s1")},
		{Kind: client.RecordPreKey, Key: "bob.1", Value: []byte("other kind")},
		{Kind: client.RecordSession, Key: "bob.1", Value: []byte("s2")}, // later writes win
	}})
	if v, _ := s.Record(ctx, client.RecordSession, "bob.1"); string(v) != "s2" {
		t.Errorf("session = %q, want s2", v)
	}
	if v, _ := s.Record(ctx, client.RecordPreKey, "bob.1"); string(v) != "other kind" {
		t.Errorf("prekey = %q", v)
	}
	apply(t, s, &client.Batch{Records: []client.Record{{Kind: client.RecordSession, Key: "bob.1"}}})
	if v, _ := s.Record(ctx, client.RecordSession, "bob.1"); v != nil {
		t.Errorf("deleted record = %q", v)
	}
	if v, _ := s.Record(ctx, client.RecordPreKey, "bob.1"); v == nil {
		t.Errorf("delete of one kind removed another")
	}
}

func msg(peer parley.UserID, out bool, text string, st client.MessageState) client.Message {
	m := client.Message{ID: parley.NewMessageID(), Peer: peer, Outgoing: out, Text: text, SentAt: at, At: at.Add(time.Second), State: st}
	if !out {
		m.From = parley.Address{User: peer, Device: 3}
	}
	return m
}

func testMessages(t *testing.T, s client.Store) {
	ctx := context.Background()
	m1 := msg("bob", true, "hi bob", client.StateSending)
	m2 := msg("bob", false, "hi alice", client.StateUnread)
	m3 := msg("carol", false, "yo", client.StateUnread)
	m3.Notice = true
	apply(t, s, &client.Batch{Messages: []client.Message{m1, m2}})
	apply(t, s, &client.Batch{Messages: []client.Message{m3}})
	all, err := s.Messages(ctx, client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("got %d messages, want 3", len(all))
	}
	for i := range all {
		if i > 0 && all[i].Seq <= all[i-1].Seq {
			t.Errorf("Seq not increasing: %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}
	want := []client.Message{m1, m2, m3}
	for i := range want {
		want[i].Seq = all[i].Seq
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("Messages (-want +got):\n%s", diff)
	}
	in, out := false, true
	for _, tc := range []struct {
		name string
		q    client.Query
		want []string
	}{
		{"peer", client.Query{Peer: "bob"}, []string{"hi bob", "hi alice"}},
		{"incoming", client.Query{Outgoing: &in}, []string{"hi alice", "yo"}},
		{"outbox", client.Query{Outgoing: &out, State: client.StateSending}, []string{"hi bob"}},
		{"id", client.Query{ID: &m2.ID}, []string{"hi alice"}},
		{"after", client.Query{AfterSeq: all[0].Seq}, []string{"hi alice", "yo"}},
		{"limit", client.Query{Limit: 2}, []string{"hi bob", "hi alice"}},
		{"none", client.Query{Peer: "dave"}, nil},
	} {
		got, err := s.Messages(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, m := range got {
			texts = append(texts, m.Text)
		}
		if diff := cmp.Diff(tc.want, texts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func testDedup(t *testing.T, s client.Store) {
	ctx := context.Background()
	m := msg("bob", false, "once", client.StateUnread)
	apply(t, s, &client.Batch{Messages: []client.Message{m}})
	again := m
	again.Text = "twice"
	apply(t, s, &client.Batch{Messages: []client.Message{again}})
	// The same id in the other direction or from another peer is another message.
	other := m
	other.Peer = "carol"
	apply(t, s, &client.Batch{Messages: []client.Message{other}})
	got, _ := s.Messages(ctx, client.Query{Peer: "bob"})
	if len(got) != 1 || got[0].Text != "once" {
		t.Errorf("after a duplicate insert: %+v", got)
	}
	if got, _ := s.Messages(ctx, client.Query{}); len(got) != 2 {
		t.Errorf("got %d messages, want 2", len(got))
	}
}

func testStates(t *testing.T, s client.Store) {
	ctx := context.Background()
	m := msg("bob", true, "x", client.StateSending)
	apply(t, s, &client.Batch{Messages: []client.Message{m}})
	later := at.Add(time.Hour)
	apply(t, s, &client.Batch{States: []client.StateChange{{Peer: "bob", Outgoing: true, ID: m.ID, State: client.StateSent, At: later}}})
	got, _ := s.Messages(ctx, client.Query{ID: &m.ID})
	if len(got) != 1 || got[0].State != client.StateSent || !got[0].At.Equal(later) {
		t.Fatalf("after StateSent: %+v", got)
	}
	// A change for the wrong direction touches nothing.
	apply(t, s, &client.Batch{States: []client.StateChange{{Peer: "bob", ID: m.ID, State: client.StateRead}}})
	apply(t, s, &client.Batch{States: []client.StateChange{{Peer: "bob", Outgoing: true, ID: m.ID, State: client.StateFailed, Error: "no"}}})
	got, _ = s.Messages(ctx, client.Query{ID: &m.ID})
	if got[0].State != client.StateFailed || got[0].Error != "no" || !got[0].At.Equal(later) {
		t.Errorf("after StateFailed: %+v", got[0])
	}
	// Messages and states in one batch: states apply after inserts.
	n := msg("bob", false, "y", client.StateUnread)
	apply(t, s, &client.Batch{Messages: []client.Message{n}, States: []client.StateChange{{Peer: "bob", ID: n.ID, State: client.StateRead}}})
	got, _ = s.Messages(ctx, client.Query{ID: &n.ID})
	if got[0].State != client.StateRead {
		t.Errorf("state in the same batch: %v", got[0].State)
	}
}

func testConcurrent(t *testing.T, s client.Store) {
	ctx := context.Background()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m := msg("bob", false, "m", client.StateUnread)
				if err := s.Apply(ctx, &client.Batch{Messages: []client.Message{m}, Records: []client.Record{{Kind: client.RecordSession, Key: "bob.1", Value: m.ID[:]}}}); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				if _, err := s.Messages(ctx, client.Query{ID: &m.ID}); err != nil {
					t.Errorf("Messages: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Messages(ctx, client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, m := range got {
		if seen[m.Seq] {
			t.Errorf("Seq %d twice", m.Seq)
		}
		seen[m.Seq] = true
	}
	if len(got) != writers*each {
		t.Errorf("%d messages, want %d", len(got), writers*each)
	}
}
