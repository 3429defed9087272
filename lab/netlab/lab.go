package netlab

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Options configure a lab.
type Options struct {
	Clients int    // client namespaces; 0 means 1
	Profile string // the censor's profile; "" means clean
	Seed    uint64 // seeds the NFQUEUE handler's randomness; 0 means 1
	// Log, when set, receives every command the lab runs, one per line,
	// so that a person can repeat the set-up by hand.
	Log io.Writer
}

// A Node is one namespace of a lab.
type Node struct {
	Name string     // the namespace, for "ip netns exec"
	Addr netip.Addr // its address on the lab network
}

// A Lab is one running topology. Its methods are safe for concurrent use.
type Lab struct {
	id      string
	server  Node
	censor  Node
	clients []Node
	seed    uint64
	log     io.Writer
	handler *handler

	mu      sync.Mutex // guards profile and closed
	profile Profile
	closed  bool
}

// nsPrefix starts every namespace the package creates; reapStale relies on
// it and on the process id that follows.
const nsPrefix = "parleylab-"

// The lab's addresses: the server on 10.77.0.0/24, client i on
// 10.77.(i+1).0/24; the censor is .1 on each, the other end .2.
func linkAddr(link, host int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, byte(link), byte(host)})
}

// maxClients keeps every client's /24 inside 10.77.0.0/16.
const maxClients = 254

// New builds a lab: the namespaces, the veth pairs, routing and the profile.
// On error everything already built is removed.
func New(ctx context.Context, opts Options) (_ *Lab, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	n := max(opts.Clients, 1)
	if n > maxClients {
		return nil, fmt.Errorf("netlab: %d clients, at most %d", n, maxClients)
	}
	prof, err := Lookup(cmp.Or(opts.Profile, "clean"))
	if err != nil {
		return nil, err
	}
	reapStale(ctx)

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	id := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(suffix[:]))
	l := &Lab{
		id:     id,
		server: Node{Name: id + "-srv", Addr: linkAddr(0, 2)},
		censor: Node{Name: id + "-cen", Addr: linkAddr(0, 1)},
		seed:   opts.Seed,
		log:    opts.Log,
	}
	if l.seed == 0 {
		l.seed = 1
	}
	for i := range n {
		l.clients = append(l.clients, Node{Name: fmt.Sprintf("%s-c%d", id, i), Addr: linkAddr(i+1, 2)})
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.build(ctx); err != nil {
		return nil, err
	}
	if l.handler, err = startHandler(filepath.Join("/run/netns", l.censor.Name)); err != nil {
		return nil, err
	}
	if err := l.apply(ctx, prof); err != nil {
		return nil, err
	}
	return l, nil
}

// build creates the namespaces and links.
func (l *Lab) build(ctx context.Context) error {
	nodes := append([]Node{l.censor, l.server}, l.clients...)
	for _, nd := range nodes {
		if err := l.run(ctx, "ip", "netns", "add", nd.Name); err != nil {
			return err
		}
		sysctls := []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}
		if nd == l.censor {
			sysctls = append(sysctls, "net.ipv4.ip_forward=1", "net.netfilter.nf_conntrack_acct=1")
		}
		if err := l.run(ctx, "ip", append([]string{"netns", "exec", nd.Name, "sysctl", "-qw"}, sysctls...)...); err != nil {
			return err
		}
		if err := l.run(ctx, "ip", "-n", nd.Name, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	// One veth pair per host, created straight into the two namespaces
	// (no name is ever used in the root namespace).
	type link struct {
		host    Node
		cenDev  string
		network int
	}
	links := []link{{l.server, "srv", 0}}
	for i, c := range l.clients {
		links = append(links, link{c, fmt.Sprintf("c%d", i), i + 1})
	}
	for _, k := range links {
		steps := [][]string{
			{"ip", "-n", l.censor.Name, "link", "add", k.cenDev, "type", "veth", "peer", "name", "eth0", "netns", k.host.Name},
			{"ip", "-n", l.censor.Name, "link", "set", k.cenDev, "gso_max_segs", "1", "up"},
			{"ip", "-n", k.host.Name, "link", "set", "eth0", "gso_max_segs", "1", "up"},
			{"ip", "-n", l.censor.Name, "addr", "add", linkAddr(k.network, 1).String() + "/24", "dev", k.cenDev},
			{"ip", "-n", k.host.Name, "addr", "add", k.host.Addr.String() + "/24", "dev", "eth0"},
			{"ip", "-n", k.host.Name, "route", "add", "default", "via", linkAddr(k.network, 1).String()},
		}
		for _, s := range steps {
			if err := l.run(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// censorDevs lists the censor's interfaces: the server's link, then each
// client's.
func (l *Lab) censorDevs() []string {
	devs := []string{"srv"}
	for i := range l.clients {
		devs = append(devs, fmt.Sprintf("c%d", i))
	}
	return devs
}

// SetProfile switches the censor to the named profile without rebuilding
// the lab. Flows already open keep their conntrack state (a flow past 16 KB
// freezes at once under tcp-freeze-16k); the NFQUEUE randomness restarts
// from the seed.
func (l *Lab) SetProfile(ctx context.Context, name string) error {
	p, err := Lookup(name)
	if err != nil {
		return err
	}
	return l.apply(ctx, p)
}

// Profile is the censor's current profile.
func (l *Lab) Profile() Profile {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.profile
}

// apply removes the previous profile's rules and qdiscs and installs p's.
func (l *Lab) apply(ctx context.Context, p Profile) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("netlab: lab is closed")
	}
	cen := l.censor.Name
	ipt := func(args ...string) error {
		return l.run(ctx, "ip", append([]string{"netns", "exec", cen, "iptables", "-w", "5"}, args...)...)
	}
	if err := ipt("-F", "FORWARD"); err != nil {
		return err
	}
	for _, dev := range l.censorDevs() {
		_ = l.runQuiet(ctx, "tc", "-n", cen, "qdisc", "del", "dev", dev, "root")
	}
	l.handler.setImpairment(p.impair, l.seed)

	for _, rule := range p.filter {
		if err := ipt(append([]string{"-A", "FORWARD"}, rule...)...); err != nil {
			return err
		}
	}
	if p.impair != nil {
		if err := ipt("-A", "FORWARD", "!", "-i", "srv", "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(Up))); err != nil {
			return err
		}
		if err := ipt("-A", "FORWARD", "-i", "srv", "-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(Down))); err != nil {
			return err
		}
	}
	if p.rateBits > 0 {
		if err := l.shape(ctx, p.rateBits, p.queueBytes); err != nil {
			return err
		}
	}
	l.profile = p
	return nil
}

// shape limits each client's path to rate bits/s each way: downstream by a
// tbf on the client's link, upstream by one htb class per client (chosen by
// source address) on the server's link. Client-to-client traffic meets the
// destination client's tbf.
func (l *Lab) shape(ctx context.Context, rate, queue int) error {
	cen := l.censor.Name
	r := strconv.Itoa(rate) + "bit"
	burst, limit := "2000", strconv.Itoa(queue)
	steps := [][]string{{"tc", "-n", cen, "qdisc", "add", "dev", "srv", "root", "handle", "1:", "htb"}}
	for i, c := range l.clients {
		class := fmt.Sprintf("1:%x", 16+i)
		steps = append(steps,
			[]string{"tc", "-n", cen, "class", "add", "dev", "srv", "parent", "1:", "classid", class, "htb",
				"rate", r, "ceil", r, "burst", burst, "cburst", burst, "quantum", "1514"},
			[]string{"tc", "-n", cen, "qdisc", "add", "dev", "srv", "parent", class, "bfifo", "limit", limit},
			[]string{"tc", "-n", cen, "filter", "add", "dev", "srv", "parent", "1:", "protocol", "ip", "prio", "1",
				"u32", "match", "ip", "src", c.Addr.String() + "/32", "flowid", class},
			[]string{"tc", "-n", cen, "qdisc", "add", "dev", fmt.Sprintf("c%d", i), "root", "tbf",
				"rate", r, "burst", burst, "limit", limit},
		)
	}
	for _, s := range steps {
		if err := l.run(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Server is the server's namespace.
func (l *Lab) Server() Node { return l.server }

// Censor is the censor's namespace.
func (l *Lab) Censor() Node { return l.censor }

// Client is client i's namespace (0-based); it panics if there is no such client.
func (l *Lab) Client(i int) Node { return l.clients[i] }

// Clients is the number of client namespaces.
func (l *Lab) Clients() int { return len(l.clients) }

// ServerAddr is the server's address as the clients reach it.
func (l *Lab) ServerAddr() netip.Addr { return l.server.Addr }

// ClientAddr is client i's address.
func (l *Lab) ClientAddr(i int) netip.Addr { return l.clients[i].Addr }

// QueueStats reports what the NFQUEUE handler did in direction d since the
// profile was last set.
func (l *Lab) QueueStats(d Direction) QueueStats { return l.handler.stats(d) }

// Command prepares name to run inside node's namespace, through
// "ip netns exec". The process gets SIGKILL if the process that started
// it dies (Pdeathsig), and Close kills whatever still runs in the lab.
func (l *Lab) Command(node Node, name string, args ...string) *exec.Cmd {
	return l.CommandContext(context.Background(), node, name, args...)
}

// CommandContext is Command with a context that kills the process.
func (l *Lab) CommandContext(ctx context.Context, node Node, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", node.Name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Close kills the processes left in the lab's namespaces and deletes them.
// It is safe to call more than once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	var errs []error
	if l.handler != nil {
		errs = append(errs, l.handler.close())
	}
	for _, nd := range append([]Node{l.censor, l.server}, l.clients...) {
		errs = append(errs, deleteNamespace(context.Background(), nd.Name))
	}
	return errors.Join(errs...)
}

// deleteNamespace kills what runs in ns and removes it; a namespace that
// does not exist is not an error.
func deleteNamespace(ctx context.Context, ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: ip netns del %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

// reapStale deletes namespaces this package made in processes that no
// longer exist (a test run killed before its cleanup).
func reapStale(ctx context.Context) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = deleteNamespace(ctx, e.Name())
		}
	}
}

// run runs one set-up command, logging it; its output is in the error.
func (l *Lab) run(ctx context.Context, name string, args ...string) error {
	if l.log != nil {
		fmt.Fprintln(l.log, name, quoteArgs(args))
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: %s %s: %v: %s", name, quoteArgs(args), err, bytes.TrimSpace(out))
	}
	return nil
}

// runQuiet runs a command whose failure is expected and harmless (deleting
// a qdisc that may not exist).
func (l *Lab) runQuiet(ctx context.Context, name string, args ...string) error {
	return exec.CommandContext(ctx, name, args...).Run()
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$&|<>;()*!") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
