// Package idbstore is the web client's client.Store, over the browser's
// IndexedDB. It builds only for js/wasm; this file, without build
// constraints, holds just this comment so that the package is seen (and
// documented) on every platform.
//
// # Go and JavaScript
//
// An IndexedDB transaction commits by itself once no request is pending at
// the end of a task. Goroutines cannot keep it open across their own
// scheduling, so every transaction is started, driven and finished by a
// small hand-written script, idbstore.js, embedded in the package and
// evaluated once with new Function (the page's Content-Security-Policy
// must allow it, as it must allow WebAssembly). Each of its functions
// returns a Promise; the Go side marshals the arguments, waits for the
// Promise on a channel and releases its callbacks. So every method blocks
// until the JavaScript event loop has run: call none from the goroutine of
// a js.FuncOf callback (it would deadlock, as syscall/js warns), but from
// a goroutine of its own.
//
// Values cross from Go as JSON text where they are plain data (messages,
// state changes, the account) and as Uint8Array where they are bytes
// (record values). The JSON names, set by the Go structs messageRecord,
// stateRecord and accountRecord, are the field names of the stored
// objects: never change one. Messages come back in one Uint8Array in a
// small binary layout (encodeMessages in idbstore.js, decodeMessages in
// codec.go): encoding/json under WebAssembly took twice as long as
// IndexedDB itself, and one call per field longer still. Times are stored
// as Unix milliseconds (0 for the zero time), as in the SQLite store, so
// anything finer is dropped; text crosses as UTF-16, so invalid UTF-8 comes
// back as U+FFFD. Message ids are stored as hex strings, and seq as a
// JavaScript number, exact up to 2^53, which is where IndexedDB's key
// generator stops.
//
// # Schema
//
// The database, named by Open's caller, has three object stores:
//
//   - account: one object (the account, with its private keys as base64)
//     at key 1;
//   - records: {kind, key, value} keyed by [kind, key]: the Signal
//     protocol records, opaque here;
//   - messages: the history and the outbox, keyed by seq, which a key
//     generator assigns on insert (strictly increasing; an aborted
//     transaction rolls the generator back, but no caller should count on
//     Seq being dense). Its indexes: key, unique on [peer, outgoing,
//     id] (outgoing is 0 or 1, since booleans are not keys); id; [peer,
//     seq]; and [state, seq].
//
// SchemaVersion is the database version; idbstore.js holds the upgrade
// steps, one per version, so a database at any older version is brought up
// to date when opened. A database at a newer version than this program
// knows is refused (parley.KindUnsupported). When another tab opens the
// database at a newer version, this connection closes itself so as not to
// block the upgrade, and its calls fail with parley.KindUnavailable.
//
// A browser may delete a site's IndexedDB under storage pressure unless
// the page has asked for persistent storage (navigator.storage.persist());
// asking is the web client's business, not this package's.
//
// # Transactions
//
// Apply is one readwrite transaction over all three stores, opened with
// durability "strict", that returns only once the transaction has
// completed; any failure aborts it whole. Within it, requests are made so
// that they run one after another in the Batch's order: a message whose
// (peer, outgoing, id) exists, or came earlier in the same Batch, is
// skipped after an index lookup, and the state changes follow the inserts.
// Concurrent Applies are serialised by IndexedDB in the order they began.
// Cancelling the context of a call aborts its transaction; Apply then
// reports the cancellation only if the abort won, and nil if the Batch had
// already committed.
//
// Messages picks an index from the Query: the unique key for a lookup by
// (peer, direction, id), id for other lookups by id, [peer, seq] for a
// conversation, [state, seq] for the outbox, and otherwise the messages
// themselves, all from AfterSeq on. It reads with getAll, never a cursor,
// whose event per message costs far more: when the range holds exactly
// what the Query matches, in one request with the Limit; otherwise in
// chunks that it filters with the same test as client.Query.Matches, until
// it has the Limit. The Go side checks every result with Matches again.
//
// Errors are parley errors: storage full (a QuotaExceededError) is
// parley.KindInternal with a message that says so; a closed connection is
// parley.KindUnavailable; a database newer than this program, or a browser
// without IndexedDB, parley.KindUnsupported; anything else from IndexedDB
// parley.KindInternal, quoting the exception's name and message. A
// cancelled context gives its own error, wrapped. Nothing here logs, and no error carries the account.
//
// # Tests
//
// The tests run under Node with go_js_wasm_exec and the npm package
// fake-indexeddb, installed in testdata (cd web/idbstore/testdata && npm
// ci). Without it they skip, or fail when CI=true.
package idbstore
