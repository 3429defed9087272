// Package clientstore is the client's SQLite store (modernc.org/sqlite, pure
// Go): one file in the client's home folder, in WAL mode with synchronous
// FULL, so that a Batch is on disk when Apply returns. The schema is in
// migrations/, applied in order and tracked with PRAGMA user_version; its
// tables are account (one row, with the private keys), records (the Signal
// protocol state, opaque to this package) and messages (history and outbox,
// unique on peer, direction and id). docs/client.md explains the choices.
package clientstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/parleychat/parley/client"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a client.Store in a SQLite file.
type Store struct {
	db *sql.DB
}

var _ client.Store = (*Store)(nil)

// Open opens (creating if needed, with mode 0600) the database at path and
// brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open local store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(names) {
		return fmt.Errorf("schema version %d is newer than this program (%d): upgrade parley", version, len(names))
	}
	for i := version; i < len(names); i++ {
		b, err := migrations.ReadFile(names[i])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(b)); err != nil {
			return fmt.Errorf("migration %s: %w", names[i], err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(names))); err != nil {
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Account implements client.Store.
func (s *Store) Account(ctx context.Context) (*client.Account, error) {
	var a client.Account
	var created, rotated int64
	err := s.db.QueryRowContext(ctx, `SELECT server, user, device, registration_id, identity_key, device_key,
		next_prekey_id, next_kyber_prekey_id, next_signed_prekey_id, signed_prekey_id, last_resort_kyber_id, rotated_at, created
		FROM account WHERE id = 1`).Scan(
		&a.Server, &a.User, &a.Device, &a.RegistrationID, &a.IdentityKey, &a.DeviceKey,
		&a.NextPreKeyID, &a.NextKyberPreKeyID, &a.NextSignedPreKeyID, &a.SignedPreKeyID, &a.LastResortKyberID, &rotated, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load account: %w", err)
	}
	a.Created, a.RotatedAt = fromMS(created), fromMS(rotated)
	return &a, nil
}

// Record implements client.Store.
func (s *Store) Record(ctx context.Context, kind client.RecordKind, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, `SELECT value FROM records WHERE kind = ? AND key = ?`, string(kind), key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s record: %w", kind, err)
	}
	return v, nil
}

// Messages implements client.Store.
func (s *Store) Messages(ctx context.Context, q client.Query) ([]client.Message, error) {
	var where []string
	var args []any
	if q.ID != nil {
		where, args = append(where, "id = ?"), append(args, q.ID[:])
	}
	if q.Peer != "" {
		where, args = append(where, "peer = ?"), append(args, string(q.Peer))
	}
	if q.Outgoing != nil {
		where, args = append(where, "outgoing = ?"), append(args, *q.Outgoing)
	}
	if q.State != 0 {
		where, args = append(where, "state = ?"), append(args, int(q.State))
	}
	where, args = append(where, "seq > ?"), append(args, q.AfterSeq)
	query := `SELECT seq, id, peer, outgoing, from_user, from_device, notice, text, sent_at, at, state, error
		FROM messages WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	defer rows.Close()
	var out []client.Message
	for rows.Next() {
		var m client.Message
		var id []byte
		var sentAt, at int64
		if err := rows.Scan(&m.Seq, &id, &m.Peer, &m.Outgoing, &m.From.User, &m.From.Device, &m.Notice, &m.Text, &sentAt, &at, &m.State, &m.Error); err != nil {
			return nil, fmt.Errorf("load messages: %w", err)
		}
		if len(id) != len(m.ID) {
			return nil, fmt.Errorf("load messages: message %d has a %d-byte id", m.Seq, len(id))
		}
		copy(m.ID[:], id)
		m.SentAt, m.At = fromMS(sentAt), fromMS(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Apply implements client.Store: one transaction, durable on commit.
func (s *Store) Apply(ctx context.Context, b *client.Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	defer tx.Rollback()
	if a := b.Account; a != nil {
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO account (id, server, user, device, registration_id, identity_key, device_key,
			next_prekey_id, next_kyber_prekey_id, next_signed_prekey_id, signed_prekey_id, last_resort_kyber_id, rotated_at, created)
			VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.Server, string(a.User), a.Device, a.RegistrationID, a.IdentityKey, a.DeviceKey,
			a.NextPreKeyID, a.NextKyberPreKeyID, a.NextSignedPreKeyID, a.SignedPreKeyID, a.LastResortKyberID, ms(a.RotatedAt), ms(a.Created))
		if err != nil {
			return fmt.Errorf("apply: account: %w", err)
		}
	}
	for _, r := range b.Records {
		if r.Value == nil {
			_, err = tx.ExecContext(ctx, `DELETE FROM records WHERE kind = ? AND key = ?`, string(r.Kind), r.Key)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO records (kind, key, value) VALUES (?, ?, ?)`, string(r.Kind), r.Key, r.Value)
		}
		if err != nil {
			return fmt.Errorf("apply: %s record: %w", r.Kind, err)
		}
	}
	for _, m := range b.Messages {
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO messages (id, peer, outgoing, from_user, from_device, notice, text, sent_at, at, state, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID[:], string(m.Peer), m.Outgoing, string(m.From.User), m.From.Device, m.Notice, m.Text, ms(m.SentAt), ms(m.At), int(m.State), m.Error)
		if err != nil {
			return fmt.Errorf("apply: message: %w", err)
		}
	}
	for _, c := range b.States {
		_, err := tx.ExecContext(ctx, `UPDATE messages SET state = ?,
			at = CASE WHEN ? = 0 THEN at ELSE ? END,
			error = CASE WHEN ? = '' THEN error ELSE ? END
			WHERE peer = ? AND outgoing = ? AND id = ?`,
			int(c.State), ms(c.At), ms(c.At), c.Error, c.Error, string(c.Peer), c.Outgoing, c.ID[:])
		if err != nil {
			return fmt.Errorf("apply: message state: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply: commit: %w", err)
	}
	return nil
}
