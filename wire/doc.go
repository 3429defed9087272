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
// # Delivery
//
// A Deliver request's frame ID is the message's ServerSeq, so IDs of
// deliveries grow but need not be consecutive. After authentication the
// server sends the device's stored messages, oldest first, then a QueueEmpty
// push; later messages arrive live. Each sending device's messages arrive in
// the order it sent them. The server keeps at most 256 deliveries
// unacknowledged: a client must acknowledge (answer) them to receive more,
// and QueueEmpty waits until the backlog has been sent. A message may be
// delivered more than once (an acknowledgement lost with a connection);
// clients de-duplicate on the envelope's MessageID.
//
// # Errors and limits
//
// A failed response carries a *parley.Error whose Kind is stable. A frame
// over parley.MaxFrameSize closes the connection with CloseCode(KindTooLarge);
// a request that breaks a limit inside a readable frame, or names an unknown
// Op, gets an error response and the connection lives on; bytes that are not
// a frame close the connection with CloseCode(KindInvalid). HTTPStatus and
// CloseCode (status.go) are the one mapping from kinds to codes.
//
// The encoding is in codec.go.
//
// # Versioning
//
// ProtocolVersion is sent in Hello and in Register/Login. Bump it when a
// change would make an old peer misread a frame; adding a field or an Op does
// not need a bump (unknown fields are skipped, unknown Ops answered with
// "unsupported").
package wire
