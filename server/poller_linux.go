package server

import (
	"context"
	"errors"
	"sync"
	"syscall"
)

// A poller watches the sockets of idle connections, whose readers have
// stopped (parked), and starts a connection's reader again when its client
// sends something. An idle connection then costs no goroutine at all: one
// epoll set and one goroutine serve them all. It runs while the Server
// serves; a connection that cannot park (no poller, or its socket refused)
// keeps its reader waiting in a goroutine instead.
type poller struct {
	mu     sync.Mutex
	epfd   int             // guarded by mu: the epoll set; -1 when not running
	parked map[int32]*conn // guarded by mu: by the id registered with their socket
	nextID int32           // guarded by mu
}

// run watches parked connections until ctx is done, then resumes those
// still parked, so that none is stranded, and stops parking more.
func (p *poller) run(ctx context.Context) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil // readers wait in their goroutines
	}
	p.mu.Lock()
	p.epfd = epfd
	p.parked = make(map[int32]*conn)
	p.mu.Unlock()
	events := make([]syscall.EpollEvent, 128)
	for ctx.Err() == nil {
		// A timeout, to see ctx: the set has no way to be woken.
		n, err := syscall.EpollWait(epfd, events, 100)
		if err != nil && !errors.Is(err, syscall.EINTR) {
			break
		}
		for _, ev := range events[:max(n, 0)] {
			if c := p.claim(ev.Fd, nil); c != nil {
				c.resume()
			}
		}
	}
	p.mu.Lock()
	parked := p.parked
	p.parked = nil
	p.epfd = -1
	p.mu.Unlock()
	syscall.Close(epfd)
	for _, c := range parked {
		c.resume()
	}
	return nil
}

// park registers c's socket with the set, for its reader to be started
// again (by resume) when the client sends something or the connection
// ends (see unpark). It returns false, and c's reader must go on waiting,
// when the poller does not run or the socket cannot be watched.
func (p *poller) park(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.parked == nil || c.lazy == nil || c.stopReads.Load() {
		return false
	}
	for {
		p.nextID++
		if p.nextID <= 0 {
			p.nextID = 1
		}
		if p.parked[p.nextID] == nil {
			break
		}
	}
	id := p.nextID
	var cerr error
	err := c.lazy.raw.Control(func(fd uintptr) {
		// Level-triggered: data that came already reports at once. One
		// report, then the socket is disarmed until it parks again.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: id}
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(cerr, syscall.ENOENT) {
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil || cerr != nil {
		return false
	}
	c.parkID = id
	p.parked[id] = c
	return true
}

// unpark resumes c's reader if it is parked: the connection is ending,
// and a closed socket leaves the set without a report.
func (p *poller) unpark(c *conn) {
	if c := p.claim(0, c); c != nil {
		c.resume()
	}
}

// claim takes the parked connection registered as id (or c, if not nil)
// out of the set of parked ones and returns it, or nil if it is not
// parked: whoever claims it resumes it, once.
func (p *poller) claim(id int32, c *conn) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c != nil {
		id = c.parkID
	}
	pc := p.parked[id]
	if pc == nil || c != nil && pc != c {
		return nil
	}
	delete(p.parked, id)
	return pc
}
