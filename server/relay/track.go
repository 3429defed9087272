package relay

import (
	"net"
	"sync"
)

// tracked is a listener that remembers the connections it accepted, so
// that Serve can close them when it stops: pion/turn closes its listeners
// but not the TCP and TLS connections it is serving.
type tracked struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{} // guarded by mu: open connections
	done  bool                      // guarded by mu: closeAll ran
}

func track(l net.Listener) *tracked {
	return &tracked{Listener: l, conns: make(map[*trackedConn]struct{})}
}

func (l *tracked) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// closeAll closes the listener and every connection it accepted.
func (l *tracked) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	l.done = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *tracked
	once sync.Once
}

// NetConn returns the connection underneath (as tls.Conn's does).
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
