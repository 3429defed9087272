//go:build !js

package tunnel

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// dialOptions dials WebSockets over TCP connections that keep little
// unsent (lowLatencyControl), checking a wss:// server's certificate with
// c (nil: the system's roots).
func dialOptions(c *tls.Config) *websocket.DialOptions {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: lowLatencyControl}
	tr.DialContext = d.DialContext
	if c != nil {
		tr.TLSClientConfig = c.Clone()
	}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}
