//go:build js && wasm

package idbstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientmem"
	"github.com/parleychat/parley/client/storetest"
)

// The tests run under Node (go_js_wasm_exec), which has no IndexedDB:
// TestMain loads the npm package fake-indexeddb from testdata/node_modules.
// noIDB says why it could not, and the tests then skip.
var noIDB string

func TestMain(m *testing.M) {
	noIDB = loadFakeIndexedDB()
	if noIDB != "" && os.Getenv("CI") == "true" {
		fmt.Fprintln(os.Stderr, "idbstore:", noIDB)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func loadFakeIndexedDB() (problem string) {
	const install = "install it with: cd web/idbstore/testdata && npm ci"
	if js.Global().Get("indexedDB").Truthy() {
		return "" // a browser, or a runner that brings its own
	}
	require := js.Global().Get("require")
	if require.Type() != js.TypeFunction {
		return "no IndexedDB and no require() to load fake-indexeddb: run under go_js_wasm_exec (Node)"
	}
	wd, err := os.Getwd()
	if err != nil {
		return "no IndexedDB, and no working directory to find fake-indexeddb in: " + err.Error()
	}
	path := filepath.Join(wd, "testdata", "node_modules", "fake-indexeddb", "auto", "index.js")
	if _, err := os.Stat(path); err != nil {
		return "the npm package fake-indexeddb is missing (" + path + "): " + install
	}
	defer func() {
		if r := recover(); r != nil {
			problem = fmt.Sprintf("loading fake-indexeddb: %v: %s", r, install)
		}
	}()
	require.Invoke(path)
	if !js.Global().Get("indexedDB").Truthy() {
		return "fake-indexeddb loaded but set no indexedDB: " + install
	}
	return ""
}

func needIDB(tb testing.TB) {
	tb.Helper()
	if noIDB != "" {
		tb.Skip(noIDB)
	}
}

var dbCount atomic.Int64

// dbName returns the name of a database that no test has used yet.
func dbName(tb testing.TB) string {
	return fmt.Sprintf("%s-%d", tb.Name(), dbCount.Add(1))
}

func open(tb testing.TB, name string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), name)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func apply(tb testing.TB, s client.Store, b *client.Batch) {
	tb.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

func messages(tb testing.TB, s client.Store, q client.Query) []client.Message {
	tb.Helper()
	ms, err := s.Messages(context.Background(), q)
	if err != nil {
		tb.Fatalf("Messages(%+v): %v", q, err)
	}
	return ms
}

var at = time.UnixMilli(1764300000123)

func newMessage(peer parley.UserID, out bool, text string, st client.MessageState) client.Message {
	m := client.Message{ID: parley.NewMessageID(), Peer: peer, Outgoing: out, Text: text, SentAt: at, At: at, State: st}
	if !out {
		m.From = parley.Address{User: peer, Device: 2}
	}
	return m
}

func TestConformance(t *testing.T) {
	needIDB(t)
	storetest.Run(t, func(t *testing.T) client.Store { return open(t, dbName(t)) })
}

func TestReopen(t *testing.T) {
	needIDB(t)
	ctx := context.Background()
	name := dbName(t)
	s := open(t, name)
	acct := &client.Account{Server: "http://127.0.0.1:1", User: "alice", Device: 1, IdentityKey: []byte{1}, DeviceKey: []byte{2}, Created: at}
	m := newMessage("bob", false, "kept", client.StateUnread)
	apply(t, s, &client.Batch{
		Account:  acct,
		Records:  []client.Record{{Kind: client.RecordSession, Key: "bob.2", Value: []byte("session")}},
		Messages: []client.Message{m},
	})
	before := messages(t, s, client.Query{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, name) // the upgrade from version 1 to itself: a no-op
	if got, err := s.Account(ctx); err != nil || got == nil || got.User != "alice" || string(got.IdentityKey) != "\x01" {
		t.Errorf("account after reopening: %v, %v", got != nil, err)
	}
	if v, err := s.Record(ctx, client.RecordSession, "bob.2"); err != nil || string(v) != "session" {
		t.Errorf("record after reopening: %q, %v", v, err)
	}
	if diff := cmp.Diff(before, messages(t, s, client.Query{})); diff != "" {
		t.Errorf("messages after reopening (-before +after):\n%s", diff)
	}
	n := newMessage("bob", false, "new", client.StateUnread)
	apply(t, s, &client.Batch{Messages: []client.Message{n}})
	if got := messages(t, s, client.Query{ID: &n.ID}); len(got) != 1 || got[0].Seq <= before[0].Seq {
		t.Errorf("Seq after reopening: %+v, want more than %d", got, before[0].Seq)
	}
}

// TestRoundTrip stores messages with every field set to something awkward
// and reads them back as they were.
func TestRoundTrip(t *testing.T) {
	needIDB(t)
	s := open(t, dbName(t))
	in := []client.Message{
		{ID: parley.NewMessageID(), Peer: "bob", From: parley.Address{User: "bob", Device: 1<<32 - 1}, Notice: true,
			Text: "héllo 👋 \x00 \t\n \u2028 " + strings.Repeat("long ", 2000), SentAt: time.UnixMilli(-5000), State: client.StateRead, Error: "ünïcode"},
		{ID: parley.NewMessageID(), Peer: "", Outgoing: true, State: client.StateFailed}, // empty text, zero times
	}
	apply(t, s, &client.Batch{Messages: in})
	got := messages(t, s, client.Query{})
	for i := range got {
		in[i].Seq = got[i].Seq
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("round trip (-stored +loaded):\n%s", diff)
	}
	acct := client.Account{IdentityKey: []byte{}, DeviceKey: nil, RotatedAt: time.Unix(1, 999_000_000)}
	apply(t, s, &client.Batch{Account: &acct})
	if got, err := s.Account(context.Background()); err != nil || !cmp.Equal(&acct, got) {
		t.Errorf("account round trip: equal = %v, %v", cmp.Equal(&acct, got), err) // not printed: keys
	}
}

// FuzzDecodeMessages checks that no input makes decodeMessages panic. (Go
// cannot fuzz under js/wasm; the seeds run as a test.)
func FuzzDecodeMessages(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Add(append(make([]byte, 31), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ms, err := decodeMessages(b); err == nil && len(b) > 0 && len(ms) == 0 {
			t.Errorf("no messages and no error from %d bytes", len(b))
		}
	})
}

// failAdd makes IndexedDB's add throw a DOMException called name for any
// message whose text is text, until the test ends.
func failAdd(t *testing.T, text, name string) {
	install := js.Global().Get("Function").New("text", "name", `
		const proto = IDBObjectStore.prototype, add = proto.add;
		proto.add = function (value, key) {
			if (value && value.text === text) throw new DOMException("injected by the test", name);
			return add.call(this, value, key);
		};
		return () => { proto.add = add; };`)
	restore := install.Invoke(text, name)
	t.Cleanup(func() { restore.Invoke() })
}

func TestFailedBatchLeavesNothing(t *testing.T) {
	needIDB(t)
	ctx := context.Background()
	s := open(t, dbName(t))
	old := newMessage("bob", true, "old", client.StateSending)
	apply(t, s, &client.Batch{Messages: []client.Message{old}})

	failAdd(t, "boom", "UnknownError")
	b := &client.Batch{
		Account: &client.Account{User: "alice", IdentityKey: []byte{1}},
		Records: []client.Record{{Kind: client.RecordSession, Key: "bob.1", Value: []byte("s")}},
		Messages: []client.Message{
			newMessage("bob", false, "first", client.StateUnread),
			newMessage("bob", false, "boom", client.StateUnread), // fails after the writes above
			newMessage("bob", false, "third", client.StateUnread),
		},
		States: []client.StateChange{{Peer: "bob", Outgoing: true, ID: old.ID, State: client.StateSent}},
	}
	err := s.Apply(ctx, b)
	if parley.ErrorKind(err) != parley.KindInternal || !strings.Contains(fmt.Sprint(err), "injected by the test") {
		t.Fatalf("Apply of a failing batch: %v (kind %v), want the injected internal error", err, parley.ErrorKind(err))
	}
	if a, err := s.Account(ctx); a != nil || err != nil {
		t.Errorf("account after a failed batch: %v, %v", a != nil, err)
	}
	if v, err := s.Record(ctx, client.RecordSession, "bob.1"); v != nil || err != nil {
		t.Errorf("record after a failed batch: %q, %v", v, err)
	}
	got := messages(t, s, client.Query{})
	if len(got) != 1 || got[0].Text != "old" || got[0].State != client.StateSending {
		t.Errorf("messages after a failed batch: %+v", got)
	}

	// The store still works, and the batch goes in once it can.
	b.Messages[1].Text = "fine"
	apply(t, s, b)
	if got := messages(t, s, client.Query{}); len(got) != 4 || got[0].State != client.StateSent {
		t.Errorf("after the retry: %+v", got)
	}
}

func TestQuotaExceeded(t *testing.T) {
	needIDB(t)
	s := open(t, dbName(t))
	failAdd(t, "too much", "QuotaExceededError")
	err := s.Apply(context.Background(), &client.Batch{Messages: []client.Message{newMessage("bob", true, "too much", client.StateSending)}})
	var de *domError
	if !errors.As(err, &de) || de.Name != "QuotaExceededError" || !strings.Contains(fmt.Sprint(err), "storage for this site is full") {
		t.Errorf("Apply when full: %v", err)
	}
	if got := messages(t, s, client.Query{}); len(got) != 0 {
		t.Errorf("%d messages stored", len(got))
	}
}

func TestConcurrentSeq(t *testing.T) {
	needIDB(t)
	ctx := context.Background()
	s := open(t, dbName(t))
	const writers, each = 6, 15
	seqs := make([][]uint64, writers) // seqs[w]: writer w's, in the order it applied them
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := newMessage(parley.UserID(fmt.Sprintf("peer%d", w)), i%2 == 0, fmt.Sprint(i), client.StateSent)
				if err := s.Apply(ctx, &client.Batch{Messages: []client.Message{m}}); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				got, err := s.Messages(ctx, client.Query{ID: &m.ID})
				if err != nil || len(got) != 1 {
					t.Errorf("Messages after Apply: %d, %v", len(got), err)
					return
				}
				seqs[w] = append(seqs[w], got[0].Seq)
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for w, ss := range seqs {
		for i, seq := range ss {
			if seen[seq] {
				t.Errorf("Seq %d twice", seq)
			}
			seen[seq] = true
			if i > 0 && seq <= ss[i-1] {
				t.Errorf("writer %d: Seq %d after %d", w, seq, ss[i-1])
			}
		}
	}
	all := messages(t, s, client.Query{})
	if len(all) != writers*each {
		t.Fatalf("%d messages, want %d", len(all), writers*each)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq <= all[i-1].Seq {
			t.Errorf("Messages out of order: Seq %d after %d", all[i].Seq, all[i-1].Seq)
		}
	}
}

// TestQueries checks every index plan against the memory store, which
// filters with client.Query.Matches itself.
func TestQueries(t *testing.T) {
	needIDB(t)
	s, ref := open(t, dbName(t)), clientmem.New()
	// Small chunks, so that filtered scans take several.
	tuning := must(script()).Get("tuning")
	defer tuning.Set("scanChunk", tuning.Get("scanChunk"))
	tuning.Set("scanChunk", 5)
	var ids []parley.MessageID
	states := []client.MessageState{client.StateSending, client.StateSent, client.StateUnread, client.StateRead}
	for i := range 60 {
		var b client.Batch
		for j := range 3 {
			m := newMessage(parley.UserID([]string{"bob", "carol", "dave"}[(i+j)%3]), (i+j)%2 == 0, fmt.Sprint(i, j), states[(i*3+j)%4])
			if j == 2 && i > 0 {
				m.ID = ids[i-1] // the same id with another peer or direction
			}
			b.Messages = append(b.Messages, m)
		}
		ids = append(ids, b.Messages[0].ID)
		if i%7 == 0 {
			b.States = []client.StateChange{{Peer: b.Messages[0].Peer, Outgoing: b.Messages[0].Outgoing, ID: b.Messages[0].ID, State: client.StateFailed, Error: "x"}}
		}
		apply(t, s, &b)
		apply(t, ref, &b)
	}
	yes, no := true, false
	var queries []client.Query
	for _, id := range []*parley.MessageID{nil, &ids[5], &ids[40]} {
		for _, peer := range []parley.UserID{"", "bob", "carol", "eve"} {
			for _, out := range []*bool{nil, &yes, &no} {
				for _, st := range []client.MessageState{0, client.StateSending, client.StateRead, client.StateFailed} {
					for _, after := range []uint64{0, 50, 179, 180, 1 << 53} {
						for _, limit := range []int{0, 1, 7} {
							queries = append(queries, client.Query{ID: id, Peer: peer, Outgoing: out, State: st, AfterSeq: after, Limit: limit})
						}
					}
				}
			}
		}
	}
	found := 0
	for _, q := range queries {
		want := messages(t, ref, q)
		got := messages(t, s, q)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Messages(%+v) (-memory +idb):\n%s", q, diff)
		}
		if len(got) > 0 {
			found++
		}
	}
	if found < len(queries)/10 {
		t.Errorf("only %d of %d queries found anything: a weak test", found, len(queries))
	}
}

// TestBatchOrder checks that a Batch applies as if one write followed
// another: a duplicate within it is skipped, and each state change sees
// the messages and the state changes before it.
func TestBatchOrder(t *testing.T) {
	needIDB(t)
	s := open(t, dbName(t))
	m := newMessage("bob", true, "once", client.StateSending)
	dup := m
	dup.Text = "twice"
	later := at.Add(time.Minute)
	apply(t, s, &client.Batch{
		Messages: []client.Message{m, dup},
		States: []client.StateChange{
			{Peer: "bob", Outgoing: true, ID: m.ID, State: client.StateSent, At: later},
			{Peer: "bob", Outgoing: true, ID: m.ID, State: client.StateDelivered}, // keeps At
		},
	})
	got := messages(t, s, client.Query{})
	if len(got) != 1 || got[0].Text != "once" || got[0].State != client.StateDelivered || !got[0].At.Equal(later) {
		t.Errorf("after one batch: %+v", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestClosed(t *testing.T) {
	needIDB(t)
	s := open(t, dbName(t))
	s.Close()
	if _, err := s.Account(context.Background()); parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("Account after Close: %v", err)
	}
	if err := s.Apply(context.Background(), &client.Batch{}); parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("Apply after Close: %v", err)
	}
}

// rawOpen opens the database name at version with IndexedDB itself and
// returns the connection (the schema is left empty).
func rawOpen(t *testing.T, name string, version int) js.Value {
	t.Helper()
	openDB := js.Global().Get("Function").New("name", "version", `
		return new Promise((resolve, reject) => {
			const req = indexedDB.open(name, version);
			req.onsuccess = () => resolve(req.result);
			req.onerror = () => reject(req.error);
		});`)
	wrapper := js.ValueOf(map[string]any{"open": openDB})
	db, err := call(context.Background(), wrapper, "open", name, version)
	if err != nil {
		t.Fatalf("open %s at version %d: %v", name, version, err)
	}
	return db
}

func TestNewerSchema(t *testing.T) {
	needIDB(t)
	name := dbName(t)
	rawOpen(t, name, SchemaVersion+1).Call("close")
	_, err := Open(context.Background(), name)
	if parley.ErrorKind(err) != parley.KindUnsupported {
		t.Errorf("Open of a newer database: %v (kind %v), want %v", err, parley.ErrorKind(err), parley.KindUnsupported)
	}
}

func TestUpgradeInAnotherTab(t *testing.T) {
	needIDB(t)
	name := dbName(t)
	s := open(t, name)
	// Another tab opens the database at a newer version: this connection
	// must close so as not to block it.
	rawOpen(t, name, SchemaVersion+1).Call("close")
	_, err := s.Messages(context.Background(), client.Query{})
	if parley.ErrorKind(err) != parley.KindUnavailable {
		t.Errorf("Messages after another tab upgraded: %v (kind %v)", err, parley.ErrorKind(err))
	}
}

func TestOpenCancel(t *testing.T) {
	needIDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, dbName(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
	// An open that never completes (as when blocked by another tab).
	idb := js.Global().Get("indexedDB")
	idb.Set("open", js.Global().Get("Function").New("return {};"))
	defer js.Global().Get("Reflect").Call("deleteProperty", idb, "open") // back to the prototype's
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, dbName(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open that never completes: %v", err)
	}
}

func TestCancel(t *testing.T) {
	needIDB(t)
	s := open(t, dbName(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Apply(ctx, &client.Batch{Messages: []client.Message{newMessage("bob", true, "x", client.StateSending)}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: %v", err)
	}
	if got := messages(t, s, client.Query{}); len(got) != 0 {
		t.Errorf("%d messages after a cancelled Apply", len(got))
	}

	// Cancelled while under way, a Batch is either all there (nil) or not
	// at all (the context's error), whichever the timing.
	for _, delay := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, time.Second} {
		var b client.Batch
		for range 300 {
			b.Messages = append(b.Messages, newMessage("carol", false, "y", client.StateUnread))
		}
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		err := s.Apply(ctx, &b)
		cancel()
		n := len(messages(t, s, client.Query{ID: &b.Messages[299].ID}))
		switch {
		case err == nil && n == 1, errors.Is(err, context.DeadlineExceeded) && n == 0:
			t.Logf("cancelled after %v: %v", delay, err)
		default:
			t.Errorf("cancelled after %v: Apply = %v, and the last message is stored %d times", delay, err, n)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	needIDB(b)
	ctx := context.Background()
	s := open(b, dbName(b))
	for b.Loop() {
		m := newMessage("bob", true, "hello, this is a message of an ordinary length", client.StateSending)
		if err := s.Apply(ctx, &client.Batch{Messages: []client.Message{m}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessages1000(b *testing.B) {
	needIDB(b)
	s := open(b, dbName(b))
	fill(b, s, 1000)
	b.Run("peer", func(b *testing.B) { benchmarkMessages(b, s, client.Query{Peer: "bob"}, 1000) })                               // one getAll
	b.Run("peer+state", func(b *testing.B) { benchmarkMessages(b, s, client.Query{Peer: "bob", State: client.StateRead}, 500) }) // a cursor
}

func fill(b *testing.B, s *Store, n int) {
	var batch client.Batch
	for i := range n {
		st := client.StateRead
		if i%2 == 0 {
			st = client.StateUnread
		}
		batch.Messages = append(batch.Messages, newMessage("bob", false, "hello, this is a message of an ordinary length", st))
	}
	apply(b, s, &batch)
}

func benchmarkMessages(b *testing.B, s *Store, q client.Query, want int) {
	ctx := context.Background()
	for b.Loop() {
		ms, err := s.Messages(ctx, q)
		if err != nil || len(ms) != want {
			b.Fatalf("Messages: %d, %v", len(ms), err)
		}
	}
}
