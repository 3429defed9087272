//go:build !unix

package server

import "net"

// lazyReads is not available on this system: reads stay buffered by
// net/http's bufio.Reader.
func lazyReads(c net.Conn) (net.Conn, bool) { return nil, false }
