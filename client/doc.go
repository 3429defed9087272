// Package client is Parley's client library: the account's keys, Signal
// sessions, the local history and outbox, and the connection to parleyd. The
// command-line client (package client/cli) uses it natively; the web client
// compiles it to WebAssembly, so this package does no file or database I/O
// itself. Everything durable goes through the small Store interface
// (client/clientstore is SQLite, client/clientmem is in memory), and the
// network through Dialer (a WebSocket by default, which also works under
// js/wasm).
//
// # Life of a message
//
// Send writes the message into the local history with state StateSending:
// that row is the outbox. While connected, the client encrypts it for every
// device of the recipient (fetching prekey bundles where it has no session),
// sends it, and marks it StateSent once the server has answered that every
// copy is durable (on its disk, or on the recipient device, which may then
// have sent its delivery receipt already). Sends are pipelined: the outbox
// writes the next message without waiting for the answer to the last. An unanswered send stays StateSending and is sent again
// after a reconnect or a restart; the recipient de-duplicates by MessageID.
//
// The server delivers messages as Deliver requests. The client decrypts one,
// then writes the new session state and the message to the Store in one
// atomic Batch, and only then answers the request, which lets the server
// delete its copy. A crash at any point therefore loses nothing: the message
// comes again, and a message already in the history is acknowledged without
// being decrypted twice.
//
// # Content encoding (version 1)
//
// The plaintext inside each Signal message is a JSON object followed by
// padding:
//
//	{"v":1,"type":"text","id":"<32 hex digits>","text":"hello","sent_at":1764300000000}
//
// v is the content version (bump it for a change an old client would
// misread; new fields and types do not need a bump), type says what the
// message is ("text"; "receipt", whose "ids" name the messages now stored
// on the recipient's device; "call", whose "call" object is one call
// signalling step, see CallSignal), id repeats the envelope's
// MessageID under the encryption, sent_at is the sender's clock in Unix
// milliseconds. The JSON is padded as Signal pads its content: one 0x80 byte
// and then zero bytes up to a multiple of 160 bytes, so that the length of
// the ciphertext says little about the length of the text. A client that
// meets a higher v or an unknown type keeps a notice in the history instead
// of the text.
//
// # Trust
//
// Identity keys are trusted on first use. When a contact's identity key
// changes the new key is accepted, a notice ("safety number changed") is put
// in the history and an EventIdentityChanged is sent, so that the user can
// compare safety numbers again (see SafetyNumber).
package client
