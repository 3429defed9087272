package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/logging"
)

// slogFactory hands pion/turn loggers that write to slog. Everything pion
// says is at debug level: most of its errors are about what a client
// sent, and a client must not be able to fill the operator's logs.
type slogFactory struct {
	log  *slog.Logger
	gate *gate
}

func (f slogFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope), f.gate}
}

type pionLogger struct {
	log  *slog.Logger
	gate *gate
}

func (l pionLogger) out(msg string) {
	l.gate.do(func() { l.log.Log(context.Background(), slog.LevelDebug, msg) })
}

func (l pionLogger) outf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.out(fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(msg string)          { l.out(msg) }
func (l pionLogger) Debugf(f string, a ...any) { l.outf(f, a...) }
func (l pionLogger) Info(msg string)           { l.out(msg) }
func (l pionLogger) Infof(f string, a ...any)  { l.outf(f, a...) }
func (l pionLogger) Warn(msg string)           { l.out(msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.outf(f, a...) }
func (l pionLogger) Error(msg string)          { l.out(msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.outf(f, a...) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// gate lets pion/turn's goroutines log until Serve returns, and not after:
// pion does not wait for all of them when it closes.
type gate struct {
	mu     sync.RWMutex
	closed bool // guarded by mu
}

// do runs f unless the gate is closed; close waits for every f running.
func (g *gate) do(f func()) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.closed {
		f()
	}
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
