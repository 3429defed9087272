package cli

// The CLI's side of the path memory (client.PathMemory): choosing a
// call's path from it (--path auto), writing each call's outcome to it,
// and 'parley paths'.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/call"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/tunnel"
)

// pathAuto is the --path that asks the path memory.
const pathAuto = "auto"

var cmdPaths = &command{
	name:  "paths",
	args:  "[--forget]",
	short: "show which call paths worked on which network, or forget them",
	long: `Paths shows this device's path memory: for each network it made or answered
calls on, the latest first, how its last calls went (over WebRTC or through
the server's tunnel, whether they connected, and which way), and for this
network what 'parley call' (--path auto) would choose next and why. A
network is shown by a hash of the address prefix it reached the server
from and the server's name; nothing kept is an address.

--forget clears the memory: the next call on every network takes WebRTC.`,
	flags: func(fs *flag.FlagSet) {
		fs.Bool("forget", false, "forget everything remembered")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usagef("paths takes no arguments")
		}
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		mem := c.PathMemory()
		if fs.Lookup("forget").Value.String() == "true" {
			if err := mem.Forget(ctx); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "forgot every network's call paths")
			return nil
		}
		ns, err := mem.Networks(ctx)
		if err != nil {
			return err
		}
		here := networkOf(ctx, c)
		if !slices.ContainsFunc(ns, func(n client.NetworkPaths) bool { return n.ID == here }) {
			fmt.Fprintln(e.stdout, "this network: nothing remembered")
		}
		for _, n := range ns {
			name := "network " + n.ID
			if n.ID == here {
				name = "this network (" + n.ID + ")"
			}
			fmt.Fprintf(e.stdout, "%s:\n", name)
			for _, o := range slices.Backward(n.Outcomes) {
				fmt.Fprintf(e.stdout, "  %s\n", describeOutcome(o))
			}
			if n.ID == here {
				ch := client.ChoosePath(n.Outcomes, time.Now())
				fmt.Fprintf(e.stdout, "  next call: %s (%s)\n", ch.Tier, ch.Why)
			}
		}
		return nil
	},
}

// describeOutcome is one line of 'parley paths'.
func describeOutcome(o client.PathOutcome) string {
	dir := "answered"
	if o.Outgoing {
		dir = "made"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-6s  %s, ", o.At.Local().Format("2006-01-02 15:04"), o.Tier, dir)
	if !o.Connected {
		b.WriteString("did not connect")
	} else {
		fmt.Fprintf(&b, "connected in %v (%s)", o.Connect.Round(time.Millisecond), o.Way())
	}
	if o.RelayOnly {
		b.WriteString(", relay only")
	}
	if len(o.Left) > 0 {
		fmt.Fprintf(&b, ", left %s", strings.Join(o.Left, " and "))
	}
	return b.String()
}

// networkOf identifies the network the client is on, or returns "" when
// it cannot be told (then nothing is remembered or used).
func networkOf(ctx context.Context, c *client.Client) string {
	_, _, server, err := c.Whoami()
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	id, err := client.NetworkID(ctx, server)
	if err != nil {
		return ""
	}
	return id
}

// planPath settles what the flags leave to the path memory of network:
// the tier (--path auto), the tunnel carrier to try first (--carrier any)
// and the TURN transport (--turn-transport all); it prints a line for
// each choice the memory made.
func planPath(ctx context.Context, e *env, o callOpts, mem *client.PathMemory, network string) callOpts {
	return applyChoice(e.stdout, o, remembered(ctx, e, mem, network))
}

// remembered is the path memory's advice for network ("": unknown).
func remembered(ctx context.Context, e *env, mem *client.PathMemory, network string) client.PathChoice {
	if network == "" {
		return client.PathChoice{Tier: client.TierWebRTC, Why: "this network could not be identified"}
	}
	outcomes, err := mem.Outcomes(ctx, network)
	if err != nil {
		fmt.Fprintf(e.stderr, "! %v\n", err)
	}
	return client.ChoosePath(outcomes, time.Now())
}

// planAnswer is planPath for answering: the caller chooses the tier, but
// if it is the tunnel, the carrier that worked here goes first.
func planAnswer(ctx context.Context, e *env, o callOpts, mem *client.PathMemory, network string) callOpts {
	if ch := remembered(ctx, e, mem, network); o.carrier == "any" && ch.Carrier != "" {
		o.prefer = ch.Carrier
		fmt.Fprintf(e.stdout, "carrier: %s first if the call comes through the tunnel (%s)\n", ch.Carrier, ch.CarrierWhy)
	}
	return o
}

// applyChoice applies ch to what o leaves open, saying so on w.
func applyChoice(w io.Writer, o callOpts, ch client.PathChoice) callOpts {
	if o.path == pathAuto {
		o.path, o.fallback = ch.Tier, ch.Tier == call.PathWebRTC
		fmt.Fprintf(w, "path: %s (%s)\n", o.path, ch.Why)
	}
	if o.path == call.PathTunnel && o.carrier == "any" && ch.Carrier != "" {
		o.prefer = ch.Carrier
		fmt.Fprintf(w, "carrier: %s first (%s)\n", ch.Carrier, ch.CarrierWhy)
	}
	if o.path == call.PathWebRTC && o.transport == "all" && ch.TURN != "" {
		o.transport = ch.TURN
		fmt.Fprintf(w, "turn transport: %s (%s)\n", ch.TURN, ch.TURNWhy)
	}
	return o
}

// rememberPath writes what the call on tier came to into the path memory
// of network; atConnect is its Stats.Path when it connected. Calls that
// never tried a path (busy, declined, no answer,
// hung up while ringing) say nothing about the network: they are not
// remembered.
func rememberPath(ctx context.Context, e *env, mem *client.PathMemory, network string, o callOpts, tier string, outgoing bool, st call.Stats, atConnect string, err error) {
	if network == "" || st.Connect == 0 && !errors.Is(err, call.ErrConnectionFailed) {
		return
	}
	var outs []client.PathOutcome
	if r := st.Race; r != nil {
		// A call that raced the tiers counts as a call on each, whichever
		// carried it: whether each came up, and how fast.
		rtc := client.PathOutcome{Tier: client.TierWebRTC, Connected: r.WebRTC > 0, Connect: r.WebRTC}
		rtc.ICE, rtc.Relay = iceWay(r.WebRTCPath, r.WebRTCRelay)
		tun := client.PathOutcome{}
		if st.Tunnel != nil {
			tun = outcomeOf(st, atConnect)
		}
		tun.Tier, tun.Connected, tun.Connect, tun.ICE, tun.Relay = client.TierTunnel, r.Tunnel > 0, r.Tunnel, "", ""
		outs = append(outs, rtc, tun)
	} else {
		out := outcomeOf(st, atConnect)
		out.Tier = tier
		outs = append(outs, out)
	}
	for _, out := range outs {
		out.At, out.Outgoing, out.RelayOnly = time.Now(), outgoing, o.relayOnly && out.Tier == client.TierWebRTC
		if merr := mem.Remember(context.WithoutCancel(ctx), network, out); merr != nil {
			fmt.Fprintf(e.stderr, "! the call's path could not be remembered: %v\n", merr)
			return
		}
	}
}

// outcomeOf is what the path memory keeps of a call's stats (at its end;
// atConnect is Stats.Path when it connected).
func outcomeOf(st call.Stats, atConnect string) client.PathOutcome {
	o := client.PathOutcome{Connected: st.Connect > 0, Connect: st.Connect}
	if t := st.Tunnel; t != nil {
		o.Carrier = strings.TrimPrefix(st.Path, "tunnel/")
		last := ""
		for _, sw := range t.Switches {
			if sw.To != "" {
				last = carrierKind(sw.To)
			}
			if k := carrierKind(sw.From); k != "" && !slices.Contains(o.Left, k) &&
				(sw.Cause == tunnel.CauseLossy || sw.Cause == tunnel.CauseFrozen || sw.Cause == tunnel.CauseRotated) {
				o.Left = append(o.Left, k)
			}
		}
		if o.Carrier == "" { // no active carrier at the end: the last one it had
			o.Carrier = last
		}
		if c, ok := strings.CutPrefix(atConnect, "tunnel/"); o.Carrier == "" && ok { // and it never switched
			o.Carrier = c
		}
		return o
	}
	o.ICE, o.Relay = iceWay(st.Path, st.Relay)
	return o
}

// iceWay is what the path memory keeps of a WebRTC call's path (its
// Stats.Path and Stats.Relay): the ICE way and the relay's transport.
func iceWay(path, relay string) (way, transport string) {
	local, remote, _ := strings.Cut(path, "/")
	switch {
	case local == "relay":
		return "relay", relay
	case remote == "relay":
		return "peer relay", ""
	case path != "":
		return "direct", ""
	}
	return "", ""
}

// carrierKind is the kind of a carrier named "websocket#2".
func carrierKind(name string) string {
	k, _, _ := strings.Cut(name, "#")
	return k
}
