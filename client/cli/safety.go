package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

var cmdSafetyNumber = &command{
	name:  "safety-number",
	args:  "USER",
	short: "show the safety number to compare with USER",
	long: `Safety-number prints the 60-digit safety number of your conversation with USER
and the same as a QR code. USER sees the same number on their side. Compare it
in person or over a channel you trust: if it matches, nobody (not even the
server) is in the middle of your conversation. It changes when either of you
reinstalls; parley warns when it does.

If no key of USER is known yet, it is fetched from the server first. The QR code
holds the scannable form of the fingerprint (libsignal's ScannableFingerprint,
version 2), drawn for a dark terminal background; use --invert on a light one.`,
	flags: func(fs *flag.FlagSet) {
		fs.Bool("invert", false, "draw the QR code for a light terminal background")
		fs.Bool("no-qr", false, "print only the digits")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		c, peer, done, err := e.openWithPeer(ctx, args)
		if err != nil {
			return err
		}
		defer done()
		digits, scannable, err := c.SafetyNumber(ctx, peer)
		if parley.ErrorKind(err) == parley.KindUnavailable { // no key known: connect and fetch it
			digits, scannable, err = safetyNumberOnline(ctx, c, peer)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Safety number with %s:\n\n%s\n", peer, groupDigits(digits))
		if fs.Lookup("no-qr").Value.String() == "true" {
			return nil
		}
		fmt.Fprintln(e.stdout)
		return writeQR(e.stdout, string(scannable), fs.Lookup("invert").Value.String() == "true")
	},
}

func safetyNumberOnline(ctx context.Context, c *client.Client, peer parley.UserID) (string, []byte, error) {
	r := start(ctx, c)
	defer r.stop()
	for {
		select {
		case ev := <-c.Events():
			switch ev.Type {
			case client.EventConnected:
				return c.SafetyNumber(ctx, peer)
			case client.EventDisconnected:
				return "", nil, ev.Err
			}
		case err := <-r.done:
			return "", nil, err
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
}

// groupDigits lays out a safety number as Signal does: groups of five, four
// groups a line.
func groupDigits(d string) string {
	d = strings.Join(strings.Fields(d), "")
	var b strings.Builder
	for i := 0; i < len(d); i += 5 {
		switch {
		case i == 0:
			b.WriteString("    ")
		case i%20 == 0:
			b.WriteString("\n    ")
		default:
			b.WriteByte(' ')
		}
		b.WriteString(d[i:min(i+5, len(d))])
	}
	return b.String()
}

// writeQR draws text as a QR code with half-block characters, two rows of
// modules a line, with a quiet zone of two modules. On a dark background the
// light modules are drawn; invert draws the dark ones.
func writeQR(w io.Writer, text string, invert bool) error {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	const quiet = 2
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return !invert
		}
		return code.Black(x, y) == invert
	}
	var b strings.Builder
	for y := -quiet; y < code.Size+quiet; y += 2 {
		for x := -quiet; x < code.Size+quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
