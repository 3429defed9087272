package sqlite

import (
	"context"
	"time"
)

// checkpointer copies committed WAL frames back into the database every
// checkpointEvery, on its own connection. A PASSIVE checkpoint neither takes
// the write lock nor waits for readers, so the writer keeps committing
// meanwhile: the copying, its reads of the WAL and its fsyncs of the database
// file stay out of the commit path. Once a checkpoint has copied everything,
// the writer's next transaction starts the WAL over from its beginning.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	ctx := context.Background()
	var seen uint64 // commits checkpointed
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		n := s.commits.Load()
		if n == seen {
			continue // nothing committed since the last complete checkpoint
		}
		var busy, frames, copied int
		if err := s.c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
			continue // tried again at the next tick; the writer restarts a WAL that grows too long
		}
		if copied == frames {
			seen = n
		}
		if frames >= walRestartPages {
			s.walBig.Store(true)
		}
	}
}

// restartWAL checkpoints the whole WAL and starts it over, waiting for
// readers (within busy_timeout) if need be. The writer calls it between
// batches when the checkpointer could not keep the WAL short.
func (s *Store) restartWAL() {
	var busy, frames, copied int
	s.w.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &copied)
}
