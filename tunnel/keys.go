package tunnel

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
)

// Keys are what a call's two devices derive from the tunnel key shares
// they exchanged inside the call's end-to-end encrypted signalling (the
// offer's and the answer's client.CallSignal.TunnelKey): the room they
// meet in on the server, and one SFrame base key per direction (RFC 9605
// section 4.4.1 leaves the base keys to the application; here they come
// from HKDF-SHA256, RFC 5869). The server sees the room id only.
type Keys struct {
	Room   RoomID
	Caller []byte // base key of the caller's media, SFrame KID CallerKID
	Callee []byte // base key of the callee's media, SFrame KID CalleeKID
}

// The SFrame key ids of the two directions.
const (
	CallerKID = 0
	CalleeKID = 1
)

// DeriveKeys derives a call's Keys from the caller's and the callee's
// 32-byte shares and the call id.
func DeriveKeys(callerShare, calleeShare []byte, callID string) (Keys, error) {
	var k Keys
	if len(callerShare) != 32 || len(calleeShare) != 32 {
		return k, errors.New("tunnel: key shares must be 32 bytes")
	}
	ikm := append(append([]byte(nil), callerShare...), calleeShare...)
	secret, err := hkdf.Extract(sha256.New, ikm, []byte("parley tunnel v1 "+callID))
	if err != nil {
		return k, err
	}
	expand := func(label string, n int) []byte {
		b, err := hkdf.Expand(sha256.New, secret, label, n)
		if err != nil { // only for n over 255 hash lengths
			panic(err)
		}
		return b
	}
	copy(k.Room[:], expand("room", len(k.Room)))
	k.Caller = expand("caller media", 16)
	k.Callee = expand("callee media", 16)
	return k, nil
}
