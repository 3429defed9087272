package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Path is the HTTP path of parleyd's tunnel endpoint: a WebSocket (GET) or
// a WebTransport session (extended CONNECT over HTTP/3).
const Path = "/v1/tunnel"

// The messages of a carrier. Each is one WebSocket binary message, or on
// WebTransport one datagram (Media, Ping, Pong) or one message on the
// session's first bidirectional stream, prefixed by its length as a 2-byte
// big-endian number (Join, Joined, Peer, Error, which must not be lost;
// Select goes both ways, as a stream message and a datagram; a session the
// server ends carries "kind:message" as its close reason). The first byte
// is the type:
//
//	Join    1  client→server  room (32 bytes) | ticket (the rest, ≤ MaxTicket bytes)
//	Joined  2  server→client  peer present (1 byte: 0 or 1)
//	Media   3  both ways      opaque payload (≤ MaxMedia bytes), forwarded as is to the peer
//	Ping    4  client→server  nonce (8 bytes); answered by Pong on the same carrier
//	Pong    5  server→client  the ping's nonce
//	Peer    6  server→client  peer present (1 byte): the other device joined or left
//	Select  7  client→server  flags (optional byte; bit 0: replay, bit 1: all): send my media on
//	                          this carrier from now on, after the last half second of it if
//	                          replay is set (the carrier it went to froze); with all, on every
//	                          carrier of mine (a trial, see Link), until the next Select
//	                          without it
//	Error   8  server→client  kind (1 byte length + text) | message (the rest); the carrier then closes
//	Replay  9  server→client  as Media, sent again: the last half second of media, after a Select
//	                          with replay; a datagram on WebTransport. Its lateness is the move's,
//	                          not the path's, so a receiver plays it but does not let it set its
//	                          playout delay (a client that does not know the type drops it)
//
// The server sends a device's media on the carrier on which that device
// last sent Media or Select, so a client moves its call to a new carrier by
// sending on it. During a trial (Select with all) the device's own Media
// does not move it, since it sends each packet on two carriers; the
// server forwards the first copy of a packet and drops any later one
// (also after the trial), known by its last 16 bytes (an SFrame packet's
// authentication tag).
type MsgType byte

const (
	MsgJoin   MsgType = 1
	MsgJoined MsgType = 2
	MsgMedia  MsgType = 3
	MsgPing   MsgType = 4
	MsgPong   MsgType = 5
	MsgPeer   MsgType = 6
	MsgSelect MsgType = 7
	MsgError  MsgType = 8
	MsgReplay MsgType = 9
)

// IsMedia reports whether t carries media (Media, or Replay): sent as a
// datagram on WebTransport, and dropped when it has waited too long.
func IsMedia(t MsgType) bool { return t == MsgMedia || t == MsgReplay }

// Limits of the carrier protocol.
const (
	// MaxMedia bounds a media payload: it fits a QUIC datagram on a path
	// of MTU 1280 (IPv6's minimum) with room for QUIC's headers.
	MaxMedia = 1100
	// MaxTicket bounds a ticket.
	MaxTicket = 256
	// MaxMessage bounds every carrier message.
	MaxMessage = 1 + 32 + MaxTicket + MaxMedia
)

// RoomID names the meeting point of a call's two devices on the server.
// Both derive it from the call's secret (see Keys), so no one else can join.
type RoomID [32]byte

// ErrMalformed is returned for bytes that are not a carrier message.
var ErrMalformed = errors.New("tunnel: malformed carrier message")

// AppendJoin appends a Join message.
func AppendJoin(b []byte, room RoomID, ticket string) []byte {
	b = append(b, byte(MsgJoin))
	b = append(b, room[:]...)
	return append(b, ticket...)
}

// ParseJoin reads a Join message (with its type byte).
func ParseJoin(m []byte) (RoomID, string, error) {
	var room RoomID
	if len(m) < 1+len(room) || MsgType(m[0]) != MsgJoin {
		return room, "", fmt.Errorf("%w: not a join", ErrMalformed)
	}
	copy(room[:], m[1:])
	ticket := m[1+len(room):]
	if len(ticket) == 0 || len(ticket) > MaxTicket {
		return room, "", fmt.Errorf("%w: ticket of %d bytes", ErrMalformed, len(ticket))
	}
	return room, string(ticket), nil
}

// AppendMedia appends a Media message carrying payload.
func AppendMedia(b, payload []byte) []byte {
	b = append(b, byte(MsgMedia))
	return append(b, payload...)
}

// AppendPing appends a Ping (or, with MsgPong, a Pong) carrying nonce.
func AppendPing(b []byte, t MsgType, nonce uint64) []byte {
	b = append(b, byte(t))
	return binary.BigEndian.AppendUint64(b, nonce)
}

// ParsePing reads the nonce of a Ping or Pong.
func ParsePing(m []byte) (uint64, error) {
	if len(m) != 9 {
		return 0, fmt.Errorf("%w: ping of %d bytes", ErrMalformed, len(m))
	}
	return binary.BigEndian.Uint64(m[1:]), nil
}

// AppendSelect appends a Select message; replay asks for the media of the
// last half second again.
func AppendSelect(b []byte, replay bool) []byte {
	if replay {
		return append(b, byte(MsgSelect), 1)
	}
	return append(b, byte(MsgSelect))
}

// SelectReplays says whether a Select message asks for a replay.
func SelectReplays(m []byte) bool { return len(m) > 1 && m[1]&1 != 0 }

// AppendSelectAll appends a Select message that asks for the device's
// media on all its carriers, for a trial of them; replay asks for the
// media of the last half second again on the carrier it comes on.
func AppendSelectAll(b []byte, replay bool) []byte {
	if replay {
		return append(b, byte(MsgSelect), 3)
	}
	return append(b, byte(MsgSelect), 2)
}

// SelectAll says whether a Select message asks for media on all carriers.
func SelectAll(m []byte) bool { return len(m) > 1 && m[1]&2 != 0 }

// Tag tells a media payload's copies from other payloads: its size and
// last 16 bytes (an SFrame packet's authentication tag).
type Tag struct {
	last [16]byte
	size int
}

// TagOf returns payload's Tag.
func TagOf(payload []byte) Tag {
	t := Tag{size: len(payload)}
	copy(t.last[:], payload[max(len(payload)-16, 0):])
	return t
}

// AppendError appends an Error message.
func AppendError(b []byte, kind, msg string) []byte {
	if len(kind) > 255 {
		kind = kind[:255]
	}
	b = append(b, byte(MsgError), byte(len(kind)))
	b = append(b, kind...)
	return append(b, msg...)
}

// ParseError reads an Error message.
func ParseError(m []byte) (kind, msg string, err error) {
	if len(m) < 2 || MsgType(m[0]) != MsgError || len(m) < 2+int(m[1]) {
		return "", "", fmt.Errorf("%w: not an error", ErrMalformed)
	}
	n := int(m[1])
	return string(m[2 : 2+n]), string(m[2+n:]), nil
}

// Check says whether m is a well-formed carrier message of a type the
// sender may send: toServer for a client's messages.
func Check(m []byte, toServer bool) error {
	if len(m) == 0 {
		return fmt.Errorf("%w: empty", ErrMalformed)
	}
	if len(m) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(m))
	}
	t := MsgType(m[0])
	switch {
	case t == MsgMedia:
		if len(m) > 1+MaxMedia {
			return fmt.Errorf("%w: media of %d bytes, over %d", ErrMalformed, len(m)-1, MaxMedia)
		}
		return nil
	case toServer && t == MsgJoin:
		_, _, err := ParseJoin(m)
		return err
	case toServer && t == MsgSelect:
		if len(m) > 2 {
			return fmt.Errorf("%w: select of %d bytes", ErrMalformed, len(m))
		}
		return nil
	case toServer && t == MsgPing, !toServer && t == MsgPong:
		_, err := ParsePing(m)
		return err
	case !toServer && (t == MsgJoined || t == MsgPeer):
		if len(m) != 2 || m[1] > 1 {
			return fmt.Errorf("%w: %d-byte presence", ErrMalformed, len(m))
		}
		return nil
	case !toServer && t == MsgError:
		_, _, err := ParseError(m)
		return err
	}
	return fmt.Errorf("%w: type %d", ErrMalformed, t)
}
