package netlab_test

import (
	"context"
	"fmt"
	"log"

	"github.com/parleychat/parley/lab/netlab"
)

// A lab with two clients behind a lossy censor, a command in a client's
// namespace, then a switch to another profile. Needs root.
func Example() {
	ctx := context.Background()
	lab, err := netlab.New(ctx, netlab.Options{Clients: 2, Profile: "loss-10"})
	if err != nil {
		log.Fatal(err) // netlab.Check says why, e.g. not root
	}
	defer lab.Close()
	out, err := lab.Command(lab.Client(0), "ping", "-c", "3", lab.ServerAddr().String()).CombinedOutput()
	fmt.Printf("%s %v\n", out, err)
	if err := lab.SetProfile(ctx, "udp-blocked"); err != nil {
		log.Fatal(err)
	}
}
