// Package signaltest proves package signal against the reference
// implementation, libsignal, and holds helpers for tests that need sessions.
//
// The reference is @signalapp/libsignal-client (npm, pinned in
// node/package.json), driven through a small Node program, node/harness.mjs,
// that speaks newline-delimited JSON on stdin and stdout. libsignal is
// AGPL-licensed: it is a test-only devDependency, installed by
//
//	cd signal/signaltest/node && npm ci
//
// (the Makefile's interop-deps target) and never shipped or embedded. Without
// node or without node_modules the interop tests skip and say what to run;
// with the CI environment variable set they fail instead.
//
// Start starts the harness for one test; MemStore is an in-memory
// signal.Store. The tests here run sessions in both directions (Go initiates
// to a libsignal bundle and libsignal to a Go bundle) through out-of-order,
// dropped and interleaved messages and session resets, check that tampered
// messages are rejected, compare safety numbers, and report libsignal's speed
// beside Go's.
package signaltest
