package wire_test

import (
	"fmt"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/wire"
)

func Example() {
	// A client asks for a user's prekey bundles...
	req := &wire.Frame{Type: wire.TypeRequest, ID: 7, Op: wire.OpGetBundles, Body: &wire.GetBundles{User: "bob"}}
	b, err := req.MarshalBinary()
	if err != nil {
		panic(err)
	}
	// ...and the server reads the request from the WebSocket message.
	f, err := wire.DecodeFrame(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Type, f.ID, f.Op, f.Body.(*wire.GetBundles).User)

	// A failed response carries a kind that maps to one close code.
	resp := &wire.Frame{Type: wire.TypeResponse, ID: 7, Op: wire.OpGetBundles,
		Err: &parley.Error{Kind: parley.KindNotFound, Message: "no user \"bob\""}}
	b, _ = resp.MarshalBinary()
	f, _ = wire.DecodeFrame(b)
	fmt.Println(f.Err.Kind, wire.HTTPStatus(f.Err.Kind), wire.CloseCode(f.Err.Kind))
	// Output:
	// request 7 get_bundles bob
	// not_found 404 4404
}
