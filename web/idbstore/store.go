//go:build js && wasm

package idbstore

import (
	"context"
	"encoding/json"
	"sync"
	"syscall/js"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// SchemaVersion is the version of the IndexedDB database that this package
// creates and reads: the number of upgrade steps in idbstore.js (Open
// checks that they agree). Add a step there, and bump this, to change the
// schema.
const SchemaVersion = 1

// maxSeq is where IndexedDB's key generator stops: no Seq is larger.
const maxSeq = 1 << 53

// Store is a client.Store in an IndexedDB database. It is safe for
// concurrent use: IndexedDB serialises its transactions.
type Store struct {
	mu   sync.Mutex // guards conn
	conn js.Value   // the connection object of idbstore.js; undefined once closed
}

var _ client.Store = (*Store)(nil)

// Open opens the IndexedDB database called name, creating it or bringing
// its schema up to date. While another tab holds the database open at an
// older version, Open waits for that tab to let go, or for ctx.
func Open(ctx context.Context, name string) (*Store, error) {
	api, err := script()
	if err != nil {
		return nil, err
	}
	if v := api.Get("version").Int(); v != SchemaVersion {
		return nil, parley.Errorf(parley.KindInternal, "local store: idbstore.js has schema version %d, the Go side %d", v, SchemaVersion)
	}
	conn, err := call(ctx, api, "open", name)
	if err != nil {
		return nil, storeError("open "+name, err)
	}
	return &Store{conn: conn}, nil
}

// Close closes the database. Transactions under way still finish; calls
// made after Close fail with parley.KindUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn.IsUndefined() {
		return nil
	}
	s.conn.Call("close")
	s.conn = js.Undefined()
	return nil
}

// do calls a method of the connection; see call.
func (s *Store) do(ctx context.Context, op, method string, args ...any) (js.Value, error) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn.IsUndefined() {
		return js.Undefined(), parley.Errorf(parley.KindUnavailable, "local store: %s: closed", op)
	}
	v, err := call(ctx, conn, method, args...)
	if err != nil {
		return js.Undefined(), storeError(op, err)
	}
	return v, nil
}

// Account implements client.Store.
func (s *Store) Account(ctx context.Context) (*client.Account, error) {
	v, err := s.do(ctx, "load account", "account")
	if err != nil || v.IsNull() {
		return nil, err
	}
	var r accountRecord
	if err := json.Unmarshal([]byte(v.String()), &r); err != nil {
		// Not %w: the error could quote the account's keys.
		return nil, parley.Errorf(parley.KindInternal, "local store: load account: malformed account object")
	}
	return r.account(), nil
}

// Record implements client.Store.
func (s *Store) Record(ctx context.Context, kind client.RecordKind, key string) ([]byte, error) {
	v, err := s.do(ctx, "load "+string(kind)+" record", "record", string(kind), key)
	if err != nil || v.IsNull() {
		return nil, err
	}
	if v.Type() != js.TypeObject || v.Get("byteLength").Type() != js.TypeNumber {
		return nil, parley.Errorf(parley.KindInternal, "local store: load %s record: the value is not a Uint8Array", kind)
	}
	b := make([]byte, v.Get("byteLength").Int())
	js.CopyBytesToGo(b, v)
	return b, nil
}

// Messages implements client.Store.
func (s *Store) Messages(ctx context.Context, q client.Query) ([]client.Message, error) {
	if q.AfterSeq >= maxSeq {
		return nil, nil // also keeps AfterSeq exact as a JavaScript number
	}
	jq := map[string]any{
		"id":       "",
		"peer":     string(q.Peer),
		"outgoing": -1,
		"state":    int(q.State),
		"after":    q.AfterSeq,
		"limit":    max(q.Limit, 0),
	}
	if q.ID != nil {
		jq["id"] = q.ID.String()
	}
	if q.Outgoing != nil {
		jq["outgoing"] = boolInt(*q.Outgoing)
	}
	v, err := s.do(ctx, "load messages", "messages", jq)
	if err != nil {
		return nil, err
	}
	b := make([]byte, v.Get("byteLength").Int())
	js.CopyBytesToGo(b, v)
	out, err := decodeMessages(b)
	if err != nil {
		return nil, parley.Errorf(parley.KindInternal, "local store: load messages: %w", err)
	}
	for i := range out {
		if !q.Matches(&out[i]) {
			return nil, parley.Errorf(parley.KindInternal, "local store: load messages: message %d does not match the query (a bug in idbstore.js)", out[i].Seq)
		}
	}
	return out, nil
}

// Apply implements client.Store.
func (s *Store) Apply(ctx context.Context, b *client.Batch) error {
	_, err := s.do(ctx, "apply", "apply", marshalBatch(b))
	return err
}
