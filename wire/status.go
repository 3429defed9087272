package wire

// The one place where error kinds meet HTTP and WebSocket status codes.

import (
	"errors"
	"net/http"

	"github.com/parleychat/parley"
)

// WebSocket close codes (RFC 6455 section 7.4.1,
// https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1, and the IANA
// registry). Kinds without a fitting standard code use 4000 + their HTTP
// status, in the range RFC 6455 leaves to applications.
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001 // the server is shutting down: reconnect later
	CloseProtocolError = 1002
	CloseUnsupported   = 1003
	ClosePolicy        = 1008
	CloseTooBig        = 1009
	CloseInternal      = 1011
	CloseTryAgainLater = 1013
)

var kinds = []struct {
	kind  parley.Kind
	http  int
	close int
}{
	{parley.KindInvalid, http.StatusBadRequest, CloseProtocolError},
	{parley.KindUnauthorized, http.StatusUnauthorized, ClosePolicy},
	{parley.KindNotFound, http.StatusNotFound, 4000 + http.StatusNotFound},
	{parley.KindConflict, http.StatusConflict, 4000 + http.StatusConflict},
	{parley.KindStaleDevices, http.StatusConflict, 4000 + http.StatusConflict},
	{parley.KindTooLarge, http.StatusRequestEntityTooLarge, CloseTooBig},
	{parley.KindRateLimited, http.StatusTooManyRequests, CloseTryAgainLater},
	{parley.KindUnavailable, http.StatusServiceUnavailable, CloseGoingAway},
	{parley.KindUnsupported, http.StatusNotImplemented, CloseUnsupported},
	{parley.KindInternal, http.StatusInternalServerError, CloseInternal},
}

// HTTPStatus returns the HTTP status code for an error kind; unknown kinds
// are 500.
func HTTPStatus(k parley.Kind) int {
	for _, e := range kinds {
		if e.kind == k {
			return e.http
		}
	}
	return http.StatusInternalServerError
}

// CloseCode returns the WebSocket close code with which a connection ends
// because of an error of kind k; unknown kinds are CloseInternal.
func CloseCode(k parley.Kind) int {
	for _, e := range kinds {
		if e.kind == k {
			return e.close
		}
	}
	return CloseInternal
}

// CloseKind returns the error kind for a WebSocket close code, the inverse
// of CloseCode (4409 reads as KindConflict). CloseNormal and unknown codes
// give "".
func CloseKind(code int) parley.Kind {
	for _, e := range kinds {
		if e.close == code {
			return e.kind
		}
	}
	return ""
}

// ErrorFor returns the *parley.Error to put in a failed response: err's own
// when it has one, otherwise a KindInternal error whose message hides the
// cause (which may name files or queries).
func ErrorFor(err error) *parley.Error {
	var e *parley.Error
	if errors.As(err, &e) {
		return &parley.Error{Kind: e.Kind, Message: e.Message}
	}
	return &parley.Error{Kind: parley.KindInternal, Message: "internal server error"}
}
