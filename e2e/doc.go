// Package e2e holds Parley's end-to-end tests: an in-process parleyd
// (package server over its SQLite store in a temporary folder) and clients
// driven through the parley command (package client/cli), exactly as a user
// runs them. It has no non-test code.
package e2e
