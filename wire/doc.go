// Package wire is the protocol between a Parley client and parleyd: frames
// carried one per binary WebSocket message on GET /v1/ws.
//
// # Conversation
//
// On connect the server sends a Hello push with a fresh 32-byte challenge.
// The client answers with one request: Register (a new account and its first
// device) or Login (an existing device). Both carry an XEdDSA signature by the
// device's key over a payload that binds the challenge (see AuthPayload), so
// no password ever crosses the wire and a captured login cannot be replayed
// on another connection. Until one of them succeeds every other request gets
// an "unauthorized" error.
//
// After that either side may send requests; each request gets exactly one
// response with the same ID. The server delivers stored and live messages as
// Deliver requests; the client's successful response is the acknowledgement
// that lets the server delete the message. Pushes carry no ID and get no
// response.
//
// # Versioning
//
// ProtocolVersion is sent in Hello and in Register/Login. Bump it when a
// change would make an old peer misread a frame; adding a field or an Op does
// not need a bump (unknown fields are skipped, unknown Ops answered with
// "unsupported").
package wire
