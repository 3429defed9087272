//go:build js

package tunnel

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/coder/websocket"
)

// dialWebTransport: a browser uses its own WebTransport, not this package's.
func dialWebTransport(context.Context, string, *tls.Config, [][]byte, RoomID, string) (Carrier, error) {
	return nil, errors.New("tunnel: WebTransport is the browser's own here")
}

// tlsOptions: the browser checks certificates its own way.
func tlsOptions(*tls.Config) *websocket.DialOptions { return nil }
