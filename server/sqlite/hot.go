package sqlite

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley"
)

// The hot changes, enqueue and ack, are applied a run at a time: every
// statement covers many rows, so that the per-statement cost (database/sql,
// binding, VDBE setup) is paid once per chunk rather than once per row.

// chunkSizes are the row counts of the multi-row statements: each size is
// one prepared statement, and a run of n rows is cut greedily into them.
var chunkSizes = [...]int{64, 16, 4, 1}

func chunk(n int) int {
	for _, c := range chunkSizes {
		if n >= c {
			return c
		}
	}
	return 0
}

// inChunks calls fn with items cut greedily into runs of chunkSizes, in
// order, and stops at its first error.
func inChunks[T any](items []T, fn func(part []T) error) error {
	for len(items) > 0 {
		n := chunk(len(items))
		if err := fn(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// multiRow returns head followed by n copies of row separated by commas,
// then tail.
func multiRow(head, row, tail string, n int) string {
	return joinRows(head, row, ", ", tail, n)
}

// joinRows returns head followed by n copies of row separated by sep, then
// tail.
func joinRows(head, row, sep, tail string, n int) string {
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}

// The statements of each chunk size, built once.
var replaySQL, acceptSQL, insertSQL, ackSQL = func() (r, a, i, d map[int]string) {
	r, a, i, d = map[int]string{}, map[int]string{}, map[int]string{}, map[int]string{}
	for _, n := range chunkSizes {
		// The replay check reads before the message is held and writes
		// when it is: the record must not be durable before the message
		// is (see hold.go). Each term of the check is a lookup by the
		// table's key.
		r[n] = joinRows("SELECT from_user, from_device, msg_id FROM accepted WHERE ",
			"(key_ms = ? AND from_user = ? AND from_device = ? AND msg_id = ?)", " OR ", "", n)
		a[n] = multiRow("INSERT INTO accepted (key_ms, from_user, from_device, msg_id) VALUES ",
			"(?, ?, ?, ?)", " ON CONFLICT DO NOTHING", n)
		i[n] = multiRow("INSERT INTO messages (seq, to_user, to_device, from_user, from_device, msg_id, type, content, sent_ms, server_ms) VALUES ",
			"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "", n)
		// Acks of many devices in one statement: each term finds its row
		// by seq (the rowid) and deletes it only if it is the device's.
		d[n] = joinRows("DELETE FROM messages WHERE ", "(seq = ? AND to_user = ? AND to_device = ?)", " OR ", "", n)
	}
	return
}()

// ackRow is one acknowledged seq and the ack that carries it.
type ackRow struct {
	op  *ackOp
	seq uint64
}

// replayKey identifies a message for the replay check.
type replayKey struct {
	user   string
	device int64
	id     parley.MessageID
}

// The replay check keys a message by the time its sender stamped on it,
// which a retry repeats, within these bounds of the server's clock (see
// migrations/003_accepted_by_time.sql): a message stamped outside them is
// keyed by a bound, and its retries may then be missed by the check (the
// clients de-duplicate by message id too).
const (
	replayKeyPast   = 30 * 24 * time.Hour
	replayKeyFuture = time.Hour
)

// replayKeyMs is e's time in the replay check's key.
func replayKeyMs(e *parley.Envelope) int64 {
	return min(max(ms(e.SentAt), ms(e.ServerAt.Add(-replayKeyPast))), ms(e.ServerAt.Add(replayKeyFuture)))
}

// appendReplayKeys appends the replay keys of enqs, as accepted's columns
// (key_ms, from_user, from_device, msg_id).
func appendReplayKeys(args []any, enqs []*enqOp) []any {
	for _, e := range enqs {
		f := &e.envs[0]
		args = append(args, replayKeyMs(f), string(f.From.User), int64(f.From.Device), f.ID[:])
	}
	return args
}

func replayKeyOf(e *parley.Envelope) replayKey {
	return replayKey{string(e.From.User), int64(e.From.Device), e.ID}
}

// applyHot applies a run of enqueues and acks in the writer's transaction:
// acks of held copies mark them (they will not be written), other acks
// delete; new messages pass the replay check and are held (hold.go), with
// seqs in the order their enqueues were submitted. An error fails the run
// as a whole.
func (s *Store) applyHot(ctx context.Context, tx wtx, ops []op, now time.Time) error {
	if err := s.applyAcks(ctx, tx, ops, now); err != nil {
		return err
	}
	// The replay check: a message repeats one still held, one earlier in
	// the run, or one that accepted holds; the rest are new.
	fresh := s.fresh[:0]
	seen := s.seen
	clear(seen)
	for _, o := range ops {
		e := o.enq
		if e == nil {
			continue
		}
		e.done = o.done
		e.key = replayKeyOf(&e.envs[0])
		if orig := seen[e.key]; orig != nil {
			e.dup, e.orig = true, orig
			continue
		}
		if orig := s.heldKeys[e.key]; orig != nil {
			e.dup, e.orig = true, orig
			continue
		}
		seen[e.key] = e
		fresh = append(fresh, e)
	}
	args := s.args[:0]
	err := inChunks(fresh, func(part []*enqOp) error {
		args = appendReplayKeys(args[:0], part)
		return s.replayed(ctx, tx, part, args)
	})
	if err != nil {
		return err
	}
	for _, e := range fresh {
		if !e.dup {
			s.hold(e, now)
		}
	}
	// A replay of a message that is itself a replay of a stored one is
	// answered with the batch; a replay of a held message, with it.
	for _, o := range ops {
		if e := o.enq; e != nil && e.orig != nil && e.orig.dup {
			e.orig = nil
		}
	}
	clear(fresh)
	clear(args)
	s.fresh, s.args = fresh[:0], args[:0]
	return nil
}

// applyAcks applies the acks of a run: a held copy of the acknowledging
// device is marked, and never written (a message all of whose copies are
// acknowledged is due at once); the others are deleted, a chunk of
// seqs at a time whatever device they are for (with many devices online
// each acknowledges a message or two per commit, so one statement per
// device would cost a statement per message).
func (s *Store) applyAcks(ctx context.Context, tx wtx, ops []op, now time.Time) error {
	acks := s.acks[:0]
	s.heldMu.Lock()
	for _, o := range ops {
		a := o.ack
		if a == nil {
			continue
		}
		for _, seq := range a.seqs {
			if h, ok := s.heldSeq[seq]; ok && h.e.envs[h.i].To == a.to {
				h.e.acked[h.i] = true
				if !slices.Contains(h.e.acked, false) {
					h.e.due = now // nothing left to write but its replay record
				}
				continue
			}
			acks = append(acks, ackRow{a, seq})
		}
	}
	s.heldMu.Unlock()
	args := s.args[:0]
	err := inChunks(acks, func(part []ackRow) error {
		args = args[:0]
		for _, r := range part {
			args = append(args, int64(r.seq), string(r.op.to.User), int64(r.op.to.Device))
		}
		if _, err := tx.ExecContext(ctx, ackSQL[len(part)], args...); err != nil {
			return internal("ack", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	clear(acks)
	clear(args)
	s.acks, s.args = acks[:0], args[:0]
	return nil
}

// replayed marks as dup the enqueues whose (sender, id) accepted holds.
func (s *Store) replayed(ctx context.Context, tx wtx, enqs []*enqOp, args []any) error {
	rows, err := tx.QueryContext(ctx, replaySQL[len(enqs)], args...)
	if err != nil {
		return internal("enqueue", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k  replayKey
			id []byte
		)
		if err := rows.Scan(&k.user, &k.device, &id); err != nil {
			return internal("enqueue", err)
		}
		copy(k.id[:], id)
		for _, e := range enqs {
			if e.key == k {
				e.dup = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return internal("enqueue", err)
	}
	return nil
}

// writeHeld inserts the replay records of held messages and their copies
// that no device acknowledged while they were held, and reports how many
// copies it inserted.
func (s *Store) writeHeld(ctx context.Context, tx wtx, enqs []*enqOp) (int, error) {
	args := s.args[:0]
	err := inChunks(enqs, func(part []*enqOp) error {
		args = appendReplayKeys(args[:0], part)
		if _, err := tx.ExecContext(ctx, acceptSQL[len(part)], args...); err != nil {
			return internal("enqueue", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	envs := s.envs[:0]
	var top uint64 // the highest seq of the copies, written or not
	for _, e := range enqs {
		for i := range e.envs {
			top = max(top, e.envs[i].ServerSeq)
			if !e.acked[i] {
				envs = append(envs, &e.envs[i])
			}
		}
	}
	err = inChunks(envs, func(part []*parley.Envelope) error {
		args = args[:0]
		for _, e := range part {
			args = append(args, int64(e.ServerSeq), string(e.To.User), int64(e.To.Device), string(e.From.User), int64(e.From.Device),
				e.ID[:], int64(e.Type), e.Content, ms(e.SentAt), ms(e.ServerAt))
		}
		if _, err := tx.ExecContext(ctx, insertSQL[len(part)], args...); err != nil {
			return internal("enqueue", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Seqs are never reused, even those of copies never written: the
	// highest is kept where SQLite keeps the highest seq written.
	if top > 0 {
		if _, err := tx.ExecContext(ctx, "UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages' AND seq < ?", int64(top), int64(top)); err != nil {
			return 0, internal("enqueue", err)
		}
	}
	n := len(envs)
	clear(envs)
	clear(args)
	s.envs, s.args = envs[:0], args[:0]
	return n, nil
}
