package sqlite

import (
	"context"
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
var acceptSQL, insertSQL, ackSQL = func() (a, i, d map[int]string) {
	a, i, d = map[int]string{}, map[int]string{}, map[int]string{}
	for _, n := range chunkSizes {
		a[n] = multiRow("INSERT INTO accepted (key_ms, from_user, from_device, msg_id) VALUES ",
			"(?, ?, ?, ?)", " ON CONFLICT DO NOTHING RETURNING from_user, from_device, msg_id", n)
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

func replayKeyOf(e *parley.Envelope) replayKey {
	return replayKey{string(e.From.User), int64(e.From.Device), e.ID}
}

// applyHot applies a run of enqueues and acks in the writer's transaction.
// Envelopes get their seqs in the order their enqueues were submitted. An
// error fails the run as a whole.
func (s *Store) applyHot(ctx context.Context, tx wtx, ops []op) error {
	// The replay check: the first copy of a (sender, id) in the run is new
	// unless accepted holds it already; any later one is a replay.
	fresh := s.fresh[:0]
	seen := s.seen
	clear(seen)
	for _, o := range ops {
		if e := o.enq; e != nil {
			k := replayKeyOf(&e.envs[0])
			if _, ok := seen[k]; ok {
				e.dup = true
				continue
			}
			seen[k] = struct{}{}
			fresh = append(fresh, e)
		}
	}
	args := s.args[:0]
	for rest := fresh; len(rest) > 0; {
		n := chunk(len(rest))
		args = args[:0]
		for _, e := range rest[:n] {
			f := &e.envs[0]
			args = append(args, replayKeyMs(f), string(f.From.User), int64(f.From.Device), f.ID[:])
		}
		if err := s.accept(ctx, tx, rest[:n], args); err != nil {
			return err
		}
		rest = rest[n:]
	}

	envs := s.envs[:0]
	for _, e := range fresh {
		if e.dup {
			continue
		}
		for i := range e.envs {
			envs = append(envs, &e.envs[i])
		}
	}
	for rest := envs; len(rest) > 0; {
		n := chunk(len(rest))
		args = args[:0]
		for _, e := range rest[:n] {
			e.ServerSeq = uint64(s.nextSeq)
			s.nextSeq++
			args = append(args, int64(e.ServerSeq), string(e.To.User), int64(e.To.Device), string(e.From.User), int64(e.From.Device),
				e.ID[:], int64(e.Type), e.Content, ms(e.SentAt), ms(e.ServerAt))
		}
		if _, err := tx.ExecContext(ctx, insertSQL[n], args...); err != nil {
			return internal("enqueue", err)
		}
		rest = rest[n:]
	}

	// The acks of every device in the run, a chunk of seqs at a time: with
	// many devices online each acknowledges a message or two per commit, so
	// one statement per device would cost a statement per message.
	acks := s.acks[:0]
	for _, o := range ops {
		if a := o.ack; a != nil {
			for _, seq := range a.seqs {
				acks = append(acks, ackRow{a, seq})
			}
		}
	}
	for rest := acks; len(rest) > 0; {
		n := chunk(len(rest))
		args = args[:0]
		for _, r := range rest[:n] {
			args = append(args, int64(r.seq), string(r.op.to.User), int64(r.op.to.Device))
		}
		if _, err := tx.ExecContext(ctx, ackSQL[n], args...); err != nil {
			return internal("ack", err)
		}
		rest = rest[n:]
	}
	// Keep the buffers, without holding on to what they point at.
	clear(fresh)
	clear(envs)
	clear(args)
	clear(acks)
	s.fresh, s.envs, s.args, s.acks = fresh[:0], envs[:0], args[:0], acks[:0]
	return nil
}

// accept inserts the replay records of enqueues whose (sender, id) differ,
// and marks as dup those that accepted held already.
func (s *Store) accept(ctx context.Context, tx wtx, enqs []*enqOp, args []any) error {
	rows, err := tx.QueryContext(ctx, acceptSQL[len(enqs)], args...)
	if err != nil {
		return internal("enqueue", err)
	}
	defer rows.Close()
	var inserted []replayKey
	for rows.Next() {
		var (
			k  replayKey
			id []byte
		)
		if err := rows.Scan(&k.user, &k.device, &id); err != nil {
			return internal("enqueue", err)
		}
		copy(k.id[:], id)
		inserted = append(inserted, k)
	}
	if err := rows.Err(); err != nil {
		return internal("enqueue", err)
	}
	if len(inserted) == len(enqs) {
		return nil // the usual case: all new
	}
	for _, e := range enqs {
		e.dup = true
		k := replayKeyOf(&e.envs[0])
		for _, in := range inserted {
			if in == k {
				e.dup = false
				break
			}
		}
	}
	return nil
}
