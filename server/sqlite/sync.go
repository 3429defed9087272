package sqlite

import "os"

// Durability without a sync on the commit path.
//
// In WAL mode with synchronous=NORMAL, SQLite commits a transaction by
// appending its pages to the WAL and does not sync the file; after a crash,
// recovery replays the WAL up to the last transaction whose frames are all
// there (each frame carries a checksum of everything before it), so the
// database stays consistent but may lose the last commits. A transaction is
// durable once the WAL holding it is synced: that is the syncer's work.
//
// The writer hands each batch's results to the syncer when it has
// committed, and goes on to the next batch. The syncer takes every batch
// waiting, syncs the WAL once (fsync on a descriptor of its own: it flushes
// the file, whoever wrote it) and only then answers their callers, in the
// order the batches were committed. So the fsync of one batch and the work
// of the next overlap, and one fsync may cover several commits when the
// disk is slow. The WAL file stays the same file while the store is open
// (SQLite rewrites it from its start after a checkpoint, never replaces
// it), so one descriptor serves for the store's lifetime.

// result is one change's answer.
type result struct {
	done chan error
	err  error
}

// synced is a batch's answers, to be sent once the WAL is synced; at once
// when the batch committed nothing.
type synced struct {
	results   []result
	committed bool
}

// syncer answers batches as the writer hands them over, syncing the WAL
// before it answers any that committed. It returns once the writer has
// closed syncq and everything in it is answered.
func (s *Store) syncer() {
	defer close(s.syncDone)
	var batches []synced
	for b := range s.syncq {
		batches = append(batches[:0], b)
	more:
		for {
			select {
			case b, ok := <-s.syncq:
				if !ok {
					break more
				}
				batches = append(batches, b)
			default:
				break more
			}
		}
		var err error
		for _, b := range batches {
			if b.committed {
				err = s.syncWAL()
				break
			}
		}
		for i, b := range batches {
			for _, r := range b.results {
				if r.err == nil && b.committed {
					r.err = err
				}
				r.done <- r.err
			}
			batches[i] = synced{}
		}
	}
}

// syncWAL makes everything committed so far durable. After a failed fsync
// the kernel may have dropped the pages it could not write, so a later
// fsync that succeeds proves nothing: every later sync fails too, and the
// store reports each change as failed until it is reopened (on reopening,
// SQLite recovers what the WAL really holds).
func (s *Store) syncWAL() error {
	if s.syncErr != nil {
		return s.syncErr
	}
	if s.wal == nil {
		f, err := os.OpenFile(s.walPath, os.O_RDWR, 0)
		if err != nil {
			return internal("open the WAL to sync it", err)
		}
		s.wal = f
	}
	if err := s.fsync(s.wal); err != nil {
		s.syncErr = internal("sync the WAL", err)
		return s.syncErr
	}
	return nil
}
