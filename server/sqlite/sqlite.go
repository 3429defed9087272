// Package sqlite is parleyd's embedded store: a server.Store on SQLite
// (modernc.org/sqlite, pure Go), one database file in the data folder.
//
// # Durability and group commit
//
// The database runs in WAL mode. One writer goroutine owns the only write
// connection: callers hand it their changes and wait. It takes every change
// that is waiting, runs them in one transaction (each inside a SAVEPOINT, so
// that one failing change does not undo the others) and commits once; every
// caller of the batch learns its own result once the commit is durable (a
// new message, once the later commit that writes it is: see hold.go).
// Under load one fsync covers many messages; when idle a change commits
// alone, at once. Reads go to a separate pool of read-only connections,
// which WAL lets run beside the writer.
//
// The fsync is not the writer's: it commits with synchronous=NORMAL, which
// appends a transaction to the WAL without syncing it, and hands the
// batch's callers to the syncer goroutine (sync.go), which syncs the WAL
// file once for every commit made meanwhile and only then answers them. So
// the writer applies the next batch while the disk syncs the last one.
// Readers may see a change a moment before it is durable; no caller hears
// of success before.
//
// The hot changes, Enqueue and Ack, skip the savepoints: they can only fail
// as a whole, and then the transaction fails with them. A new message is not
// written at once but held for a moment (hold.go): a copy its device
// acknowledges meanwhile is never written. The writer applies a run of hot
// changes with multi-row statements (hot.go): one SELECT from accepted per
// chunk of new messages tells the replays apart; for the held messages that
// are due, one INSERT into accepted per chunk (accepted is keyed first by
// the message's send time, so that its new rows go in at the end of the
// b-tree, not on a random page each) and one INSERT into messages for the
// copies not acknowledged; one DELETE per chunk of acknowledged seqs,
// whatever device acknowledged them (each term matches a seq and its
// device). The writer assigns ServerSeq itself, in the order the changes
// were submitted, starting past the highest seq ever given (which
// sqlite_sequence keeps), so seqs still grow across restarts and are never
// reused.
//
// Checkpoints run on a connection of their own (checkpoint.go), not in the
// commit that happens to fill the WAL, so that no send waits for one.
//
// The writer goroutine starts in Open and stops in Close, like the
// connection pool of database/sql: the store is a resource with a lifetime,
// not a service with a Run method.
//
// Statements are prepared once and reused: parsing SQL would otherwise cost
// more than running it. The write connection prepares a statement after the
// first transaction that used it, since it is busy during one.
//
// Migrations are the numbered files in migrations/, embedded in the binary
// and applied in order on Open; PRAGMA user_version records the last one
// applied.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server/directory"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Key kinds in the prekeys table.
const (
	kindOneTime    = 1
	kindKyber      = 2
	kindSigned     = 3
	kindLastResort = 4
)

// maxBatch bounds how many changes one transaction commits.
const maxBatch = 2048

// commitGap is the least time between the starts of two commits. Every
// commit writes some pages whatever it holds (the tables' upper levels,
// the partly filled pages their new rows go in, the database header) and
// syncs the WAL: under load, waiting this long gathers more changes into
// each commit and pays that once for more of them (in BenchmarkEnqueueAck,
// 4.1 → 3.2 KB written and 31 → 27 µs of CPU per message). A change that
// comes after a quiet spell
// commits at once, so it only adds latency when there are many.
const commitGap = 2 * time.Millisecond

// Checkpoints (copying the WAL back into the database) run on a connection
// of their own every checkpointEvery, beside the writer, so that no commit
// waits for one. The writer restarts the WAL itself only when it has grown
// past walRestartPages because the checkpoints could not catch up.
const (
	checkpointEvery = 100 * time.Millisecond
	walRestartPages = 32768 // 128 MiB of 4 KiB pages
)

// Store is a server.Store in one SQLite database.
type Store struct {
	w   *sql.DB // the one write connection, used only by the writer goroutine
	r   *sql.DB // read-only connections
	c   *sql.DB // the checkpointer's connection
	wq  rdb     // prepared statements of w
	rq  rdb     // prepared statements of r
	ops chan op

	mu     sync.RWMutex // guards closed; held for reading while submitting to ops
	closed bool

	stop chan struct{} // closed by Close
	done chan struct{} // closed when the writer goroutine returns

	// The syncer (sync.go) answers committed batches once the WAL is
	// synced; the writer closes syncq when it returns.
	walPath  string
	syncq    chan synced
	syncDone chan struct{}        // closed when the syncer returns
	wal      *os.File             // the WAL, for fsync; the syncer's
	fsync    func(*os.File) error // (*os.File).Sync but in tests
	syncErr  error                // the syncer's: a failed fsync, which fails all later ones

	ckptDone chan struct{} // closed when the checkpointer returns
	walBig   atomic.Bool   // the WAL outgrew walRestartPages: the writer restarts it
	commits  atomic.Uint64 // transactions committed, for the checkpointer

	// nextSeq is the ServerSeq the next accepted envelope gets; owned by the
	// writer goroutine. It starts past every seq ever given (sqlite_sequence
	// keeps the highest, even once its message is gone or if it was never
	// written), so seqs grow across restarts and are never reused.
	nextSeq int64

	// Messages accepted but not yet written (hold.go). held is in seq
	// order; the writer changes it and the acked marks of its messages
	// under heldMu, which Mailbox takes to read them. heldSeq and heldKeys
	// index it (and newHeld) for the writer alone.
	holdFor  time.Duration // holdFor but in tests
	heldMu   sync.Mutex
	held     []*enqOp
	newHeld  []*enqOp // held by the batch being committed
	writing  []*enqOp // held messages the batch being committed writes
	heldSeq  map[uint64]heldCopy
	heldKeys map[replayKey]*enqOp
	written  atomic.Uint64 // copies written to the mailbox (the rest were acknowledged while held)

	// Buffers of the writer goroutine, kept between batches.
	fresh []*enqOp
	envs  []*parley.Envelope
	args  []any
	acks  []ackRow
	seen  map[replayKey]*enqOp
}

// op is one change for the writer goroutine: a function run in its own
// savepoint, or one of the hot changes (enqueue, ack) that the writer
// applies many at a time with multi-row statements and no savepoint, as
// they cannot fail in part.
type op struct {
	fn   func(tx wtx) error
	enq  *enqOp
	ack  *ackOp
	done chan error
}

// enqOp stores the copies of one message unless it is a replay.
type enqOp struct {
	envs     []parley.Envelope
	accepted func(*parley.Envelope) bool // called by the writer with each copy once held

	// Set by the writer.
	dup     bool
	done    chan error   // the op's answer
	key     replayKey    // the message's replay key
	orig    *enqOp       // the held message a replay repeats: answered with it
	due     time.Time    // when to write it
	leaving bool         // written (or failed) by the commit under way
	acked   []bool       // per copy: acknowledged while held (changed under Store.heldMu)
	dups    []chan error // the replays answered with this message
}

// ackOp deletes a device's delivered messages.
type ackOp struct {
	to   parley.Address
	seqs []uint64
}

var errClosed = parley.Errorf(parley.KindUnavailable, "store closed")

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, file string) (*Store, error) {
	return open(ctx, file, (*os.File).Sync)
}

// open is Open with the function that syncs the WAL (tests stand in for
// the disk).
func open(ctx context.Context, file string, fsync func(*os.File) error) (*Store, error) {
	const (
		writer = iota
		reader
		checkpointer
	)
	dsn := func(role int) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		switch role {
		case reader:
			q.Add("_pragma", "query_only(1)")
			q.Add("_pragma", "cache_size(-16384)") // 16 MiB per reader
		case checkpointer:
			// A checkpoint syncs the WAL before it copies and the database
			// after, as synchronous asks.
			q.Add("_pragma", "synchronous(FULL)")
			q.Add("_pragma", "cache_size(-1024)")
		case writer:
			// The writer touches a few pages of every sender's replay
			// records and every recipient's mailbox in each commit: a cache
			// that holds them saves reading them back and spilling.
			q.Add("_pragma", "cache_size(-131072)")   // 128 MiB
			q.Add("_pragma", "wal_autocheckpoint(0)") // see checkpointer
			q.Add("_pragma", "journal_mode(WAL)")
			// Commits append to the WAL without syncing it: the syncer
			// does, before anyone is answered (see sync.go). Checkpoints
			// still sync the WAL before they copy from it.
			q.Add("_pragma", "synchronous(NORMAL)")
			q.Add("_pragma", "foreign_keys(1)")
			q.Add("_pragma", "temp_store(MEMORY)") // savepoint journals stay in memory
			q.Add("_txlock", "immediate")
		}
		return "file:" + file + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(writer))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", file, err)
	}
	r, err := sql.Open("sqlite", dsn(reader))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	c, err := sql.Open("sqlite", dsn(checkpointer))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s := &Store{
		w:        w,
		r:        r,
		c:        c,
		wq:       rdb{&stmts{db: w, m: make(map[string]*sql.Stmt), wanted: make(map[string]bool)}},
		rq:       rdb{&stmts{db: r, m: make(map[string]*sql.Stmt), prepare: true}},
		ops:      make(chan op, 4*maxBatch),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		ckptDone: make(chan struct{}),
		seen:     make(map[replayKey]*enqOp),
		holdFor:  holdFor,
		heldSeq:  make(map[uint64]heldCopy),
		heldKeys: make(map[replayKey]*enqOp),
		walPath:  file + "-wal",
		syncq:    make(chan synced, 64),
		syncDone: make(chan struct{}),
		fsync:    fsync,
	}
	fail := func(err error) (*Store, error) {
		w.Close()
		r.Close()
		c.Close()
		if s.wal != nil {
			s.wal.Close()
		}
		return nil, fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	// sqlite_sequence keeps the highest seq given (hold.go), even before
	// the first message is written.
	if _, err := w.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq)
		SELECT 'messages', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages')`); err != nil {
		return fail(err)
	}
	// The migrations committed without a sync, like every other change.
	if err := s.syncWAL(); err != nil {
		return fail(err)
	}
	if err := w.QueryRowContext(ctx, `SELECT max(coalesce((SELECT max(seq) FROM messages), 0),
		coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0))`).Scan(&s.nextSeq); err != nil {
		return fail(err)
	}
	s.nextSeq++
	go s.checkpointer()
	go s.syncer()
	go s.writer()
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	for _, name := range names {
		n, err := strconv.Atoi(strings.SplitN(path.Base(name), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: no number", name)
		}
		if n <= version {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", n)); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		version = n
	}
	return nil
}

// Close waits for the changes already submitted to commit, then closes the
// database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	<-s.syncDone
	<-s.ckptDone
	err := errors.Join(s.r.Close(), s.c.Close(), s.w.Close())
	if s.wal != nil {
		s.wal.Close() // after the connections: closing the last one removes the WAL
	}
	return err
}

// write runs fn in the writer goroutine and returns its error once the
// transaction holding it has committed. Once submitted, a change is waited
// for even if ctx ends, so that the caller never reports failure for a
// change that became durable.
func (s *Store) write(ctx context.Context, fn func(tx wtx) error) error {
	done, err := s.submit(ctx, fn)
	if err != nil {
		return err
	}
	return <-done
}

// submit queues fn for the writer and returns the channel that will carry
// its result once its batch is committed (or failed). The writer takes ops
// in the order they were queued.
func (s *Store) submit(ctx context.Context, fn func(tx wtx) error) (<-chan error, error) {
	return s.submitOp(ctx, op{fn: fn})
}

func (s *Store) submitOp(ctx context.Context, o op) (<-chan error, error) {
	o.done = make(chan error, 1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	select {
	case s.ops <- o:
		return o.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Store) writer() {
	defer close(s.done)
	defer close(s.syncq)
	batch := make([]op, 0, maxBatch)
	var last time.Time // when the last commit started
	due := time.NewTimer(time.Hour)
	due.Stop()
	for {
		batch = batch[:0]
		// Wait for a change, or for the oldest held message to be due.
		var dueC <-chan time.Time
		if t := s.nextDue(); !t.IsZero() {
			due.Reset(time.Until(t))
			dueC = due.C
		}
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-dueC:
		case <-s.stop:
			// Close holds no more submitters: drain what is queued, then
			// write everything held.
			for {
				select {
				case o := <-s.ops:
					batch = append(batch, o)
					if len(batch) == maxBatch {
						s.commit(batch, false)
						batch = batch[:0]
					}
				default:
					s.commit(batch, true)
					return
				}
			}
		}
		due.Stop()
		// Under load, let the next changes join this commit (see
		// commitGap); after a quiet spell, commit at once.
		if wait := commitGap - time.Since(last); wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
	more:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break more
			}
		}
		s.commit(batch, false)
		if s.walBig.Swap(false) {
			s.restartWAL()
		}
	}
}

// commit runs a batch of changes in one transaction, with the held
// messages that are due (all of them when all is set).
func (s *Store) commit(batch []op, all bool) {
	ctx := context.Background()
	defer s.wq.c.prepareWanted(ctx)
	now := time.Now()
	errs := make([]error, len(batch))
	changed := false
	for _, o := range batch {
		changed = changed || o.enq == nil // an ack or a change of its own
	}
	// finish hands the results to the syncer, which answers once the WAL is
	// synced, or at once when nothing was committed; then it settles the
	// held messages, and offers the new ones for delivery.
	finish := func(txErr error, committed bool) {
		res := make([]result, 0, len(batch))
		for i, o := range batch {
			if e := o.enq; e != nil && committed && (!e.dup || e.orig != nil) {
				if e.orig != nil {
					e.orig.dups = append(e.orig.dups, e.done)
				}
				continue // answered once written
			}
			if errs[i] == nil {
				errs[i] = txErr
			}
			res = append(res, result{o.done, errs[i]})
		}
		answer := func(e *enqOp) {
			res = append(res, result{e.done, txErr})
			for _, d := range e.dups {
				res = append(res, result{d, txErr})
			}
		}
		for _, e := range s.writing {
			answer(e)
		}
		if all && committed { // written at once
			for _, e := range s.newHeld {
				answer(e)
			}
		}
		// A commit that only held new messages changed nothing: no sync.
		if len(res) > 0 || committed && (len(s.writing) > 0 || changed) {
			s.syncq <- synced{res, committed}
		}
		s.settle(committed && !all)
		if committed {
			s.offer(time.Now())
		}
		clear(s.newHeld)
		s.newHeld = s.newHeld[:0]
	}
	if len(batch) == 0 && (len(s.held) == 0 || !all && s.nextDue().After(now)) {
		return // nothing to do
	}
	sqltx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		finish(internal("begin", err), false)
		return
	}
	tx := wtx{sqltx, s.wq.c}
	seq0 := s.nextSeq
	abort := func(err error) {
		tx.Rollback()
		s.nextSeq = seq0
		finish(err, false)
	}
	for i := 0; i < len(batch); {
		if batch[i].fn == nil {
			// A run of enqueues and acks: no savepoints, since they fail
			// only as a whole (and then so does the transaction).
			j := i + 1
			for j < len(batch) && batch[j].fn == nil {
				j++
			}
			if err := s.applyHot(ctx, tx, batch[i:j], now); err != nil {
				abort(err)
				return
			}
			i = j
			continue
		}
		o := batch[i]
		if len(batch) == 1 {
			if errs[i] = o.fn(tx); errs[i] != nil {
				abort(nil)
				return
			}
			break
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT change"); err != nil {
			abort(internal("savepoint", err))
			return
		}
		if errs[i] = o.fn(tx); errs[i] != nil {
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO change"); err != nil {
				abort(internal("rollback to savepoint", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE change"); err != nil {
			abort(internal("release savepoint", err))
			return
		}
		i++
	}
	// The held messages that are due; with all, those this batch held too.
	due := s.pickDue(now, all)
	if all {
		due = append(slices.Clip(due), s.newHeld...)
	}
	copies, err := s.writeHeld(ctx, tx, due)
	if err != nil {
		abort(err)
		return
	}
	if err := tx.Commit(); err != nil {
		s.nextSeq = seq0
		finish(internal("commit", err), false)
		return
	}
	s.written.Add(uint64(copies))
	s.commits.Add(1)
	finish(nil, true)
}

// internal wraps a database failure: not the caller's fault.
func internal(op string, err error) error {
	return parley.Errorf(parley.KindInternal, "sqlite: %s: %w", op, err)
}

// ms encodes a time as Unix milliseconds, and the zero time as 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func notFound(format string, args ...any) error {
	return parley.Errorf(parley.KindNotFound, format, args...)
}

func (s *Store) CreateAccount(ctx context.Context, a directory.Account, d directory.Device, k directory.Keys) error {
	return s.write(ctx, func(tx wtx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM accounts WHERE user = ?", string(a.User)).Scan(&one)
		if err == nil {
			return parley.Errorf(parley.KindConflict, "username %q is taken", a.User)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return internal("create account", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO accounts (user, identity_key, created_ms) VALUES (?, ?, ?)",
			string(a.User), a.IdentityKey, ms(a.Created)); err != nil {
			return internal("create account", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO devices (user, device, auth_key, registration_id, created_ms) VALUES (?, ?, ?, ?, ?)",
			string(d.User), int64(d.ID), d.AuthKey, int64(d.RegistrationID), ms(d.Created)); err != nil {
			return internal("create device", err)
		}
		return addKeys(ctx, tx, d.Addr(), k)
	})
}

func (s *Store) AddDevice(ctx context.Context, d directory.Device, k directory.Keys) (parley.DeviceID, error) {
	var id parley.DeviceID
	err := s.write(ctx, func(tx wtx) error {
		var n, max int64
		err := tx.QueryRowContext(ctx, "SELECT count(*), coalesce(max(device), 0) FROM devices WHERE user = ?", string(d.User)).Scan(&n, &max)
		if err != nil {
			return internal("add device", err)
		}
		if n == 0 {
			return notFound("no user %q", d.User)
		}
		if n >= parley.MaxDevicesPerUser {
			return parley.Errorf(parley.KindConflict, "%s has %d devices already, the most allowed", d.User, n)
		}
		id = parley.DeviceID(max + 1)
		if _, err := tx.ExecContext(ctx, "INSERT INTO devices (user, device, auth_key, registration_id, created_ms) VALUES (?, ?, ?, ?, ?)",
			string(d.User), int64(id), d.AuthKey, int64(d.RegistrationID), ms(d.Created)); err != nil {
			return internal("add device", err)
		}
		return addKeys(ctx, tx, parley.Address{User: d.User, Device: id}, k)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

func (s *Store) Account(ctx context.Context, user parley.UserID) (directory.Account, []directory.Device, error) {
	a := directory.Account{User: user}
	var created int64
	err := s.rq.QueryRowContext(ctx, "SELECT identity_key, created_ms FROM accounts WHERE user = ?", string(user)).Scan(&a.IdentityKey, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, nil, notFound("no user %q", user)
	}
	if err != nil {
		return a, nil, internal("account", err)
	}
	a.Created = fromMS(created)
	devs, err := devices(ctx, s.rq, user, 0)
	return a, devs, err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// devices returns a user's devices, or only device when it is not 0.
func devices(ctx context.Context, q querier, user parley.UserID, device parley.DeviceID) ([]directory.Device, error) {
	rows, err := q.QueryContext(ctx, `SELECT device, auth_key, registration_id, created_ms FROM devices
		WHERE user = ? AND (? = 0 OR device = ?) ORDER BY device`, string(user), int64(device), int64(device))
	if err != nil {
		return nil, internal("devices", err)
	}
	defer rows.Close()
	var ds []directory.Device
	for rows.Next() {
		d := directory.Device{User: user}
		var id, reg, created int64
		if err := rows.Scan(&id, &d.AuthKey, &reg, &created); err != nil {
			return nil, internal("devices", err)
		}
		d.ID, d.RegistrationID, d.Created = parley.DeviceID(id), uint32(reg), fromMS(created)
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("devices", err)
	}
	return ds, nil
}

func (s *Store) Device(ctx context.Context, addr parley.Address) (directory.Device, error) {
	if addr.Device == 0 {
		return directory.Device{}, notFound("no device %s", addr)
	}
	ds, err := devices(ctx, s.rq, addr.User, addr.Device)
	if err != nil {
		return directory.Device{}, err
	}
	if len(ds) == 0 {
		return directory.Device{}, notFound("no device %s", addr)
	}
	return ds[0], nil
}

func (s *Store) AddKeys(ctx context.Context, addr parley.Address, k directory.Keys) (directory.KeyCounts, error) {
	var counts directory.KeyCounts
	err := s.write(ctx, func(tx wtx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM devices WHERE user = ? AND device = ?", string(addr.User), int64(addr.Device)).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("no device %s", addr)
		}
		if err != nil {
			return internal("add keys", err)
		}
		if err := addKeys(ctx, tx, addr, k); err != nil {
			return err
		}
		counts, err = keyCounts(ctx, tx, addr)
		return err
	})
	return counts, err
}

func addKeys(ctx context.Context, tx wtx, addr parley.Address, k directory.Keys) error {
	const insert = "INSERT OR REPLACE INTO prekeys (user, device, kind, key_id, key, signature) VALUES (?, ?, ?, ?, ?, ?)"
	put := func(kind int, p directory.PreKey) error {
		if _, err := tx.ExecContext(ctx, insert, string(addr.User), int64(addr.Device), kind, int64(p.ID), p.Key, p.Signature); err != nil {
			return internal("add keys", err)
		}
		return nil
	}
	replace := func(kind int, p *directory.PreKey) error {
		if p == nil {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM prekeys WHERE user = ? AND device = ? AND kind = ?", string(addr.User), int64(addr.Device), kind); err != nil {
			return internal("add keys", err)
		}
		return put(kind, *p)
	}
	if err := replace(kindSigned, k.Signed); err != nil {
		return err
	}
	if err := replace(kindLastResort, k.LastResort); err != nil {
		return err
	}
	for _, p := range k.OneTime {
		if err := put(kindOneTime, p); err != nil {
			return err
		}
	}
	for _, p := range k.KyberOneTime {
		if err := put(kindKyber, p); err != nil {
			return err
		}
	}
	return nil
}

func keyCounts(ctx context.Context, q querier, addr parley.Address) (directory.KeyCounts, error) {
	var c directory.KeyCounts
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM prekeys WHERE user = ?1 AND device = ?2 AND kind = 1),
		(SELECT count(*) FROM prekeys WHERE user = ?1 AND device = ?2 AND kind = 2)`,
		string(addr.User), int64(addr.Device)).Scan(&c.PreKeys, &c.KyberPreKeys)
	if err != nil {
		return c, internal("key counts", err)
	}
	return c, nil
}

func (s *Store) KeyCounts(ctx context.Context, addr parley.Address) (directory.KeyCounts, error) {
	if _, err := s.Device(ctx, addr); err != nil {
		return directory.KeyCounts{}, err
	}
	return keyCounts(ctx, s.rq, addr)
}

func (s *Store) TakeBundles(ctx context.Context, user parley.UserID, device parley.DeviceID) (directory.Account, []directory.Bundle, error) {
	var (
		a       directory.Account
		bundles []directory.Bundle
	)
	err := s.write(ctx, func(tx wtx) error {
		a, bundles = directory.Account{User: user}, nil
		var created int64
		err := tx.QueryRowContext(ctx, "SELECT identity_key, created_ms FROM accounts WHERE user = ?", string(user)).Scan(&a.IdentityKey, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("no user %q", user)
		}
		if err != nil {
			return internal("take bundles", err)
		}
		a.Created = fromMS(created)
		devs, err := devices(ctx, tx, user, device)
		if err != nil {
			return err
		}
		if len(devs) == 0 {
			return notFound("no device %s", parley.Address{User: user, Device: device})
		}
		for _, d := range devs {
			b := directory.Bundle{Device: d}
			signed, err := firstKey(ctx, tx, d.Addr(), kindSigned)
			if err != nil {
				return err
			}
			if signed == nil {
				continue // cannot start a session with this device yet
			}
			b.Signed = *signed
			if b.OneTime, err = takeKey(ctx, tx, d.Addr(), kindOneTime); err != nil {
				return err
			}
			kyber, err := takeKey(ctx, tx, d.Addr(), kindKyber)
			if err != nil {
				return err
			}
			if kyber == nil {
				if kyber, err = firstKey(ctx, tx, d.Addr(), kindLastResort); err != nil {
					return err
				}
				if kyber == nil {
					continue
				}
				b.LastResort = true
			}
			b.Kyber = *kyber
			if b.Left, err = keyCounts(ctx, tx, d.Addr()); err != nil {
				return err
			}
			bundles = append(bundles, b)
		}
		return nil
	})
	return a, bundles, err
}

func firstKey(ctx context.Context, tx wtx, addr parley.Address, kind int) (*directory.PreKey, error) {
	var (
		p  directory.PreKey
		id int64
	)
	err := tx.QueryRowContext(ctx, "SELECT key_id, key, signature FROM prekeys WHERE user = ? AND device = ? AND kind = ? ORDER BY key_id LIMIT 1",
		string(addr.User), int64(addr.Device), kind).Scan(&id, &p.Key, &p.Signature)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("prekey", err)
	}
	p.ID = uint32(id)
	return &p, nil
}

// takeKey removes and returns the oldest-numbered key of a kind, or nil.
func takeKey(ctx context.Context, tx wtx, addr parley.Address, kind int) (*directory.PreKey, error) {
	p, err := firstKey(ctx, tx, addr, kind)
	if p == nil || err != nil {
		return p, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM prekeys WHERE user = ? AND device = ? AND kind = ? AND key_id = ?",
		string(addr.User), int64(addr.Device), kind, int64(p.ID)); err != nil {
		return nil, internal("take prekey", err)
	}
	return p, nil
}

func (s *Store) Enqueue(ctx context.Context, envs []parley.Envelope) (bool, error) {
	return s.StartEnqueue(ctx, envs, nil)()
}

func (s *Store) StartEnqueue(ctx context.Context, envs []parley.Envelope, accepted func(*parley.Envelope) bool) func() (bool, error) {
	if len(envs) == 0 {
		return func() (bool, error) { return false, nil }
	}
	e := &enqOp{envs: envs, accepted: accepted}
	done, err := s.submitOp(ctx, op{enq: e})
	return func() (bool, error) {
		if err != nil {
			return false, err
		}
		if err := <-done; err != nil {
			return false, err
		}
		return e.dup, nil
	}
}

func (s *Store) Mailbox(ctx context.Context, to parley.Address, after uint64, limit int) ([]parley.Envelope, error) {
	held := s.heldFor(to, after) // before the database: see hold.go
	rows, err := s.rq.QueryContext(ctx, `SELECT seq, from_user, from_device, msg_id, type, content, sent_ms, server_ms
		FROM messages WHERE to_user = ? AND to_device = ? AND seq > ? ORDER BY seq LIMIT ?`,
		string(to.User), int64(to.Device), int64(after), limit)
	if err != nil {
		return nil, internal("mailbox", err)
	}
	defer rows.Close()
	var envs []parley.Envelope
	for rows.Next() {
		e := parley.Envelope{To: to}
		var (
			seq, fromDev, typ, sent, server int64
			from                            string
			id                              []byte
		)
		if err := rows.Scan(&seq, &from, &fromDev, &id, &typ, &e.Content, &sent, &server); err != nil {
			return nil, internal("mailbox", err)
		}
		copy(e.ID[:], id)
		e.ServerSeq = uint64(seq)
		e.From = parley.Address{User: parley.UserID(from), Device: parley.DeviceID(fromDev)}
		e.Type = parley.EnvelopeType(typ)
		if sent != 0 {
			e.SentAt = fromMS(sent)
		}
		e.ServerAt = fromMS(server)
		envs = append(envs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("mailbox", err)
	}
	return withHeld(envs, held, limit), nil
}

func (s *Store) Ack(ctx context.Context, to parley.Address, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	done, err := s.submitOp(ctx, op{ack: &ackOp{to: to, seqs: seqs}})
	if err != nil {
		return err
	}
	return <-done
}

// Expire deletes by seq range: seqs grow with time, so the expired
// messages are those below the oldest seq stored at or after before, found
// by walking the table from its oldest row. (A message stored while the
// clock stood behind an older one's expires with the later one.)
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx wtx) error {
		var bound int64
		err := tx.QueryRowContext(ctx, "SELECT seq FROM messages WHERE server_ms >= ? ORDER BY seq LIMIT 1", ms(before)).Scan(&bound)
		if errors.Is(err, sql.ErrNoRows) {
			bound = math.MaxInt64
		} else if err != nil {
			return internal("expire", err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM messages WHERE seq < ?", bound)
		if err != nil {
			return internal("expire", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return internal("expire", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM accepted WHERE key_ms < ?", ms(before)); err != nil {
			return internal("expire", err)
		}
		return nil
	})
	return int(n), err
}

func (s *Store) CountMessages(ctx context.Context) (int64, error) {
	var n int64
	if err := s.rq.QueryRowContext(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil {
		return 0, internal("count messages", err)
	}
	return n, nil
}

// stmts caches prepared statements by their text: parsing SQL costs more
// than running these small statements.
type stmts struct {
	db      *sql.DB
	mu      sync.Mutex
	m       map[string]*sql.Stmt // guarded by mu
	wanted  map[string]bool      // guarded by mu: to prepare once the connection is free
	prepare bool                 // prepare on first use (not for the write connection)
}

func (c *stmts) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st, nil
	}
	if !c.prepare {
		// The writer's one connection is busy in a transaction: preparing
		// now would wait for it forever. Prepare after the commit.
		c.wanted[q] = true
		return nil, errNotPrepared
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.m[q] = st
	return st, nil
}

var errNotPrepared = errors.New("not prepared yet")

// prepareWanted prepares the statements asked for while the connection was
// busy.
func (c *stmts) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.wanted {
		if st, err := c.db.PrepareContext(ctx, q); err == nil {
			c.m[q] = st
		}
		delete(c.wanted, q)
	}
}

// rdb runs queries on a pool with prepared statements.
type rdb struct{ c *stmts }

func (r rdb) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := r.c.get(ctx, q)
	if err != nil {
		return r.c.db.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (r rdb) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := r.c.get(ctx, q)
	if err != nil {
		return r.c.db.QueryRowContext(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// wtx is the writer's transaction, with the statements prepared so far.
type wtx struct {
	tx *sql.Tx
	c  *stmts
}

func (t wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.c.get(ctx, q)
	if err != nil {
		return t.tx.ExecContext(ctx, q, args...)
	}
	return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func (t wtx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := t.c.get(ctx, q)
	if err != nil {
		return t.tx.QueryContext(ctx, q, args...)
	}
	return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

func (t wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := t.c.get(ctx, q)
	if err != nil {
		return t.tx.QueryRowContext(ctx, q, args...)
	}
	return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

func (t wtx) Rollback() error { return t.tx.Rollback() }
func (t wtx) Commit() error   { return t.tx.Commit() }
