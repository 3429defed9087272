package sqlite

import (
	"cmp"
	"slices"
	"time"

	"github.com/parleychat/parley"
)

// Messages held before they are written.
//
// Most messages reach a connected recipient, whose client stores them
// (its own SQLite commit, synchronous=FULL) and acknowledges them within
// milliseconds; writing them to the mailbox only to delete them a moment
// later was half the server's disk writes and a third of its CPU under
// load. So a new message is not written at once: the writer checks it
// against the replay records, gives its copies their seqs and *holds* it
// in memory, and the server delivers it (the accepted callback of
// StartEnqueue) as soon as that commit is done, without waiting for the
// disk. A copy whose device acknowledges it while it is held is never
// written: it is durable on that device. After holdFor the writer writes
// the message's replay record and the copies still unacknowledged, in the
// next commit, and only once that commit is synced is the sender answered.
//
// So the promise to the sender stays: a message is acknowledged only once
// it is durable, on the server's disk or on every recipient device. What
// a crash before the write loses is only what no one was promised: the
// sender, unanswered, sends it again, and a recipient that had it already
// drops the repeat by its id (as it does after any crash between a commit
// and its answer).
//
// The replay record is written with the message, never before it: written
// earlier, it could survive a crash that the held message did not, and the
// sender's retry would then be taken for a replay and dropped. Until then
// the writer knows held messages by their key (heldKeys), and a replay of
// one is answered with it.
//
// Mailbox reads include the held copies not yet acknowledged, so a device
// that connects, or falls behind, while a message is held still finds it.
// Held messages are taken off the held list only after the commit that
// wrote them, and Mailbox looks at the list before the database, so a
// copy is always in one or the other for it.
//
// A message none of whose copies went to a connected device is written at
// the next commit (holding it would only delay its sender's answer), and
// so is one whose every copy has been acknowledged: its sender is answered
// as soon as its replay record is durable.
//
// Seqs are given when a message is held, and never reused: the highest
// given, written or not, is kept in sqlite_sequence with the written ones.
const holdFor = 100 * time.Millisecond

// Written returns how many message copies the store has written to the
// mailbox since it opened; the others it accepted were acknowledged while
// held.
func (s *Store) Written() uint64 { return s.written.Load() }

// heldCopy is one copy of a held message, found by its seq.
type heldCopy struct {
	e *enqOp
	i int
}

// hold holds a new message: its copies get their seqs, and it joins the
// held messages once its batch commits.
func (s *Store) hold(e *enqOp, now time.Time) {
	e.due = now.Add(s.holdFor)
	e.acked = make([]bool, len(e.envs))
	for i := range e.envs {
		e.envs[i].ServerSeq = uint64(s.nextSeq)
		s.nextSeq++
		s.heldSeq[e.envs[i].ServerSeq] = heldCopy{e, i}
	}
	s.heldKeys[e.key] = e
	s.newHeld = append(s.newHeld, e)
}

// offer hands the copies of the messages a commit held to the accepted
// callbacks; a message that reached no connected device is due at once.
func (s *Store) offer(now time.Time) {
	for _, e := range s.newHeld {
		live := false
		if e.accepted != nil {
			for i := range e.envs {
				live = e.accepted(&e.envs[i]) || live
			}
		}
		if !live {
			e.due = now
		}
	}
}

// pickDue picks the held messages to write now, in seq order: those due,
// or all of them.
func (s *Store) pickDue(now time.Time, all bool) []*enqOp {
	w := s.writing[:0]
	for _, e := range s.held {
		if all || !e.due.After(now) {
			e.leaving = true
			w = append(w, e)
		}
	}
	s.writing = w
	return w
}

// nextDue is when the first held message is due, or zero when none is
// held.
func (s *Store) nextDue() time.Time {
	var t time.Time
	for _, e := range s.held {
		if t.IsZero() || e.due.Before(t) {
			t = e.due
		}
	}
	return t
}

// forget removes messages from the writer's indexes of held messages.
func (s *Store) forget(enqs []*enqOp) {
	for _, e := range enqs {
		delete(s.heldKeys, e.key)
		for i := range e.envs {
			delete(s.heldSeq, e.envs[i].ServerSeq)
		}
	}
}

// settle updates the held list once a commit has ended: the messages it
// was to write leave it (written, or failed with it), and the messages the
// commit held join it if keep is set (it committed, and did not write
// them at once).
func (s *Store) settle(keep bool) {
	s.forget(s.writing)
	if !keep {
		s.forget(s.newHeld)
	}
	s.heldMu.Lock()
	held := s.held[:0]
	for _, e := range s.held {
		if !e.leaving {
			held = append(held, e)
		}
	}
	clear(s.held[len(held):])
	s.held = held
	if keep {
		s.held = append(s.held, s.newHeld...)
	}
	s.heldMu.Unlock()
	clear(s.writing)
	s.writing = s.writing[:0]
}

// heldFor returns copies of the held, unacknowledged copies for a device
// with seqs above after, in seq order.
func (s *Store) heldFor(to parley.Address, after uint64) []parley.Envelope {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	var out []parley.Envelope
	for _, e := range s.held {
		for i := range e.envs {
			if c := &e.envs[i]; !e.acked[i] && c.To == to && c.ServerSeq > after {
				out = append(out, *c)
			}
		}
	}
	return out
}

// withHeld adds to a page of the mailbox read from the database the held
// copies taken before it was read, in seq order. When the page is full,
// rows past it may lie between held copies: only those below its last
// row are added (and the page cut to limit again).
func withHeld(page, held []parley.Envelope, limit int) []parley.Envelope {
	if len(held) == 0 {
		return page
	}
	stored := len(page)
	for _, h := range held {
		if stored > 0 && stored >= limit && h.ServerSeq > page[stored-1].ServerSeq {
			break
		}
		_, found := slices.BinarySearchFunc(page[:stored], h.ServerSeq, func(e parley.Envelope, seq uint64) int {
			return cmp.Compare(e.ServerSeq, seq)
		})
		if !found {
			page = append(page, h)
		}
	}
	slices.SortFunc(page, func(a, b parley.Envelope) int { return cmp.Compare(a.ServerSeq, b.ServerSeq) })
	return page[:min(len(page), limit)]
}
