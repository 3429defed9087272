//go:build js

package client

import (
	"context"
	"net"

	"github.com/coder/websocket"
)

// dialWebSocket dials the WebSocket at u: the browser's own, whose TCP
// connection cannot be seen.
func dialWebSocket(ctx context.Context, u string, opts *websocket.DialOptions) (*websocket.Conn, net.Conn, error) {
	ws, _, err := websocket.Dial(ctx, u, opts)
	return ws, nil, err
}

func watchStalls(net.Conn, <-chan struct{}, func(int)) {}

func tcpAllAcked(net.Conn) (bool, bool) { return false, false }
