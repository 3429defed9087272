package call

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs passes pion's logs to a slog.Logger, all at debug level: pion
// reports as errors what is routine for a call (a socket closed at
// hang-up), and how a call ends is the Call's to report.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) on() bool { return l.log.Enabled(context.Background(), slog.LevelDebug) }

func (l pionLogger) emit(level, msg string) {
	if l.on() {
		l.log.Debug(msg, "level", level)
	}
}

func (l pionLogger) emitf(level, format string, args ...any) {
	if l.on() {
		l.log.Debug(fmt.Sprintf(format, args...), "level", level)
	}
}

func (l pionLogger) Trace(string)                      {}
func (l pionLogger) Tracef(string, ...any)             {}
func (l pionLogger) Debug(msg string)                  { l.emit("debug", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.emitf("debug", format, args...) }
func (l pionLogger) Info(msg string)                   { l.emit("info", msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.emitf("info", format, args...) }
func (l pionLogger) Warn(msg string)                   { l.emit("warn", msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.emitf("warn", format, args...) }
func (l pionLogger) Error(msg string)                  { l.emit("error", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.emitf("error", format, args...) }

var _ logging.LoggerFactory = pionLogs{}
