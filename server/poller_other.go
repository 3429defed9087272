//go:build !linux

package server

import "context"

// poller is not available on this system: an idle connection's reader
// waits in its goroutine.
type poller struct{}

func (p *poller) run(ctx context.Context) error { return nil }

func (p *poller) park(c *conn) bool { return false }

func (p *poller) unpark(c *conn) {}
