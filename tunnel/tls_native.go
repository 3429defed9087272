//go:build !js

package tunnel

import (
	"crypto/tls"
	"net/http"

	"github.com/coder/websocket"
)

// tlsOptions dials WebSockets checking the server's certificate with c.
func tlsOptions(c *tls.Config) *websocket.DialOptions {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.Clone()
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}
