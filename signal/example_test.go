package signal

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Example shows a session from set-up to reply. memStore is this package's
// in-memory Store for tests; a real client keeps the same things on disk.
func Example() {
	ctx := context.Background()
	t := &testing.T{}
	alice, bob := newMemStore(t, 1), newMemStore(t, 2)

	// Bob publishes a bundle; Alice fetches it and starts a session.
	bundle := bob.bundle(t, 1, 1, 1)
	if err := ProcessPreKeyBundle(ctx, alice, bobAddr, bundle, time.Now()); err != nil {
		panic(err)
	}
	ct, _ := Encrypt(ctx, alice, bobAddr, []byte("hello"), time.Now())
	fmt.Printf("first message: type %d, starts with %#x\n", ct.Type, ct.Serialized[0])

	pt, err := DecryptPreKey(ctx, bob, aliceAddr, ct.Serialized)
	if err != nil {
		panic(err)
	}
	fmt.Printf("bob reads %q\n", pt)

	reply, _ := Encrypt(ctx, bob, aliceAddr, []byte("hi"), time.Now())
	pt, err = Decrypt(ctx, alice, bobAddr, reply.Serialized)
	if err != nil {
		panic(err)
	}
	fmt.Printf("reply: type %d, alice reads %q\n", reply.Type, pt)
	// Output:
	// first message: type 3, starts with 0x44
	// bob reads "hello"
	// reply: type 2, alice reads "hi"
}
