package tunnel

import (
	"crypto/tls"

	"github.com/coder/websocket"
)

// dialOptions: in a browser, the WebSocket is the browser's own; it dials
// and checks certificates the browser's way, and there is nothing to
// configure.
func dialOptions(*tls.Config) *websocket.DialOptions { return nil }
