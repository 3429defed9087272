package sframe_test

import (
	"fmt"

	"github.com/parleychat/parley/sframe"
)

func Example() {
	// Both ends install the same base key under the same KID; how they
	// agree on it (e.g. over the Signal session) is up to the caller.
	baseKey := []byte("a 16+ byte secret from the key exchange")
	sender, _ := sframe.NewContext(sframe.AES_128_GCM_SHA256_128)
	receiver, _ := sframe.NewContext(sframe.AES_128_GCM_SHA256_128)
	sender.AddKey(7, baseKey)
	receiver.AddKey(7, baseKey)

	out := sframe.NewSender(sender, 7)
	rtpHeader := []byte{0x80, 0x6f} // authenticated, not encrypted
	frame, _ := out.Encrypt(nil, rtpHeader, []byte("opus frame"))

	pt, kid, ctr, err := receiver.Decrypt(nil, rtpHeader, frame)
	fmt.Printf("%s kid=%d ctr=%d err=%v\n", pt, kid, ctr, err)
	// Output: opus frame kid=7 ctr=0 err=<nil>
}
