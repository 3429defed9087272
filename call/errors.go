package call

import "errors"

// How a call attempt or a call can end, other than by a hang-up. Errors
// returned by Call.Wait wrap one of these with %w and say more.
var (
	// ErrBusy: the callee is in another call.
	ErrBusy = errors.New("busy")
	// ErrDeclined: the callee refused the call.
	ErrDeclined = errors.New("declined")
	// ErrNoAnswer: nobody answered within the ring timeout.
	ErrNoAnswer = errors.New("no answer")
	// ErrConnectionFailed: the call was accepted but no media path came up
	// (ICE or DTLS failed, or did not finish in time), or it broke.
	ErrConnectionFailed = errors.New("connection failed")
	// ErrCallerGone: the caller hung up before the call was answered.
	ErrCallerGone = errors.New("the caller hung up")
	// ErrInCall: the Phone is already in a call (or one is ringing).
	ErrInCall = errors.New("already in a call")
	// ErrNoTunnel: the tunnel path was asked for but no tunnel is configured.
	ErrNoTunnel = errors.New("the tunnel path needs the server's call tunnel, and none is configured")
	// ErrNoRelay: relay-only was asked for but no TURN server is configured.
	ErrNoRelay = errors.New("relay only needs a TURN server, and none is configured")
	// ErrBadOgg: the file is not an Ogg Opus stream this package can read.
	ErrBadOgg = errors.New("not a valid Ogg Opus stream")
	// ErrBadOpus: an Opus packet breaks the framing rules of RFC 6716
	// section 3.
	ErrBadOpus = errors.New("malformed Opus packet")
)
