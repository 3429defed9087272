// Package cli is the parley command: register, send, recv, chat, call,
// answer, safety-number, whoami and help. cmd/parley only calls Run, so
// tests drive the command exactly as a user does.
//
// The client's state lives in one folder (--home, else $PARLEY_HOME, else
// ~/.parley), created mode 0700, holding the SQLite store parley.db.
package cli
