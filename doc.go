// Package parley is the vocabulary of Parley: private messaging and voice
// calls that get through, on a server anyone can run.
//
// # The system
//
// Two binaries and one library:
//
//   - parleyd (cmd/parleyd, package server): accounts and devices, the
//     prekey directory, the durable mailbox and live sessions over WebSocket.
//     It stores and forwards ciphertext only.
//   - parley (cmd/parley, package client/cli): the command-line client.
//   - package client: keys, Signal-protocol sessions, the local store and
//     sync. The CLI uses it natively; the web client compiles it to
//     WebAssembly.
//
// End-to-end encryption is the Signal protocol (PQXDH and the Double
// Ratchet), byte-compatible with libsignal; it lives in package signal.
// Client and server speak the frames of package wire over one WebSocket.
//
// # What this package holds
//
// The names every other package shares: users, devices and addresses, message
// IDs, the envelope the server routes, and the error kinds that are stable on
// the wire. It imports only the standard library.
//
// # Delivery semantics
//
// Delivery is at least once, de-duplicated by the client on MessageID. The
// server acknowledges a send only once the message is durable: on its disk,
// or, for a copy that its device acknowledged first, on that device (a
// client acknowledges only what it has stored). It delivers a message as
// soon as it has accepted it, deletes it when the recipient device
// acknowledges it or after the retention period, and keeps the order of
// each sending device.
package parley
