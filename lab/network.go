package lab

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	"github.com/parleychat/parley/lab/netlab"
)

func profileNames() []string { return netlab.ProfileNames() }

// openNetwork builds the network for profile for clients clients, unimpaired
// (SetProfile turns the profile on): the lab's namespaces where they can be
// built (root); elsewhere the host itself for the clean profile, and an
// error saying why for the others.
func openNetwork(ctx context.Context, profile string, clients int, progress io.Writer) (network, error) {
	if _, err := netlab.Lookup(profile); err != nil {
		return nil, err
	}
	if err := netlab.Check(); err != nil {
		if profile != "clean" {
			return nil, fmt.Errorf("profile %s %w: %v", profile, errNeedsRoot, err)
		}
		fmt.Fprintf(progress, "lab: %v; the clean profile runs on this machine's loopback instead\n", err)
		return hostNetwork{}, nil
	}
	l, err := netlab.New(ctx, netlab.Options{Clients: clients, Profile: "clean"})
	if err != nil {
		return nil, err
	}
	return netnsNetwork{l}, nil
}

// netnsNetwork is the lab's namespaces (package netlab).
type netnsNetwork struct{ l *netlab.Lab }

func (n netnsNetwork) Kind() string          { return "netns" }
func (n netnsNetwork) ServerIP() string      { return n.l.ServerAddr().String() }
func (n netnsNetwork) ClientIP(i int) string { return n.l.ClientAddr(i).String() }
func (n netnsNetwork) Close() error          { return n.l.Close() }
func (n netnsNetwork) SetProfile(ctx context.Context, name string) error {
	return n.l.SetProfile(ctx, name)
}
func (n netnsNetwork) Command(client int, name string, args ...string) *exec.Cmd {
	node := n.l.Server()
	if client >= 0 {
		node = n.l.Client(client)
	}
	return n.l.Command(node, name, args...)
}

// hostNetwork runs everything on this machine's loopback, unimpaired.
type hostNetwork struct{}

func (hostNetwork) Kind() string        { return "host" }
func (hostNetwork) ServerIP() string    { return "127.0.0.1" }
func (hostNetwork) ClientIP(int) string { return "127.0.0.1" }
func (hostNetwork) Close() error        { return nil }
func (hostNetwork) SetProfile(_ context.Context, name string) error {
	if name != "clean" {
		return fmt.Errorf("profile %s %w", name, errNeedsRoot)
	}
	return nil
}
func (hostNetwork) Command(_ int, name string, args ...string) *exec.Cmd {
	return exec.Command(name, args...)
}
