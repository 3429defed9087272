// Package server is parleyd: accounts and devices, the prekey directory, the
// durable mailbox and live sessions over WebSocket. It stores and forwards
// ciphertext only; see package wire for the protocol.
//
// # State
//
// Everything durable lives behind Store, defined here and implemented by
// server/sqlite (the default, one file in the data folder); every backend
// passes the conformance suite in server/storetest. A Send is answered only
// once every copy is durable: committed (fsync'd), or acknowledged by its
// device, which has stored it. The store accepts a message (replay check,
// seqs) before it is durable, and the server delivers it then; the SQLite
// store holds a new message for a moment before writing it, so that a copy
// acknowledged meanwhile is never written at all (server/sqlite/hold.go),
// and commits concurrent changes together (group commit) so that
// durability does not cost one fsync per message. A replayed Send (same sender device, MessageID
// and send time, as a client's retry has) is answered as a success and
// stored once. Accounts and their device
// lists, read on every Send, are cached in memory (accountCache); that is
// only right while one parleyd writes the accounts, so a shared backend
// must invalidate it across nodes.
//
// # Sessions
//
// A connection is served by goroutines that each run only while they have
// work. The reader handles requests in order, which keeps each sending
// device's messages in order; when its client has sent nothing for a
// moment it parks: it stops, and the poller (one epoll set for all idle
// sockets, on Linux) starts it again when the client sends. The writer
// owns the socket's writes and the delivery state, and runs while
// something waits to be sent. Three helpers run only while they have
// work: one answers pipelined sends once durable, one deletes
// acknowledged messages, and one, started by a timer, waits for the answer
// to each ping. The first error of any of them ends the session. The HTTP
// handler authenticates the client and reads the first page of its
// mailbox, then returns, leaving the session to its own goroutines; so an
// idle connected device costs no goroutine, no queue storage and no read
// or write buffer (see lazyConn and frameWriter), which matters when most
// devices are idle.
//
// Delivery: when a device authenticates, its connection is registered for
// live messages first and then reads its stored backlog, oldest first, as
// Deliver requests whose frame ID is the message's ServerSeq, followed by a
// QueueEmpty push. A successful response to a Deliver is the acknowledgement
// that deletes the message. At most deliverWindow messages are in flight
// (sent, not acknowledged) at once.
//
// Queue policy: a message is stored before anyone learns of it, so the live
// path is only a shortcut. Each connection has a bounded queue of live
// messages; when it is full the live copy is dropped, the connection is
// marked as behind, and the writer re-reads the mailbox from where it was.
// Responses to requests go through a separate bounded queue that applies
// back-pressure: a client that does not read its responses stops being
// read; so do the queues of sends waiting for the disk and of
// acknowledgements waiting for the acker.
//
// Time limits: a connection must authenticate within Config.AuthTimeout
// (plus the time its upload takes at 2 KiB/s, for a Register on a slow link;
// it is closed as unavailable, not refused, so that the client retries);
// every write must finish within Config.WriteTimeout; a ping, sent
// Config.PingInterval after the last one was answered, must be answered
// within Config.WriteTimeout, or the connection is closed.
//
// # Calls
//
// With Config.Relay set, Serve also runs the TURN relay (package relay),
// and a device asks for a short-lived relay credential over its session
// (wire.OpTURNCredentials, turn.go). With Config.TLS set, the listener
// speaks TLS and its connections are split between HTTP and TURN over TLS
// (package tlsmux), so that one port serves everything.
//
// Errors are answered with the kinds of package parley; the kind to close
// code and HTTP status mapping is wire.CloseCode and wire.HTTPStatus.
//
// Logs never hold a key, a signature or message content.
package server
