// Command parley is the command-line client of Parley: register an account,
// send and receive end-to-end encrypted messages, chat, and compare safety
// numbers. Run 'parley help' for its commands; the logic is in package
// client/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/client/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
