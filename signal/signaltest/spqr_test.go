package signaltest

import (
	"testing"
)

// TestLibsignalSPQRAcceptance pins down, against libsignal itself, which
// pq_ratchet payloads (SignalMessage field 5, SPQR) the reference accepts
// from a peer. It needs nothing from package signal. Facts for 0.103.0:
//
//   - empty (SPQR V0, no post-quantum ratchet): refused, "Minimum version"
//     (libsignal's sessions are created with min_version V1);
//   - an unknown version byte such as 0xFF, or any other payload that is
//     not a well-formed SPQR V1 message: refused, "message decode failed" —
//     0.103.0 does not skip versions it does not know;
//   - a V1 message of type None: 0x01, varint epoch, varint index, 0x00.
//     Epoch 1 index 0 carries no key (libsignal derives the message keys
//     without an SPQR salt); epoch 1 index n > 0 asks for the epoch-0 chain's
//     key n, which the sender must then have mixed in.
func TestLibsignalSPQRAcceptance(t *testing.T) {
	h := Start(t)
	alice := newJSPeer(t, h, "alice", 1, 11)
	bob := newJSPeer(t, h, "bob", 2, 22)
	c := newConversation(t, 5, alice, bob)
	c.establish(alice, bob)
	for _, p := range []struct {
		name   string
		pq     []byte
		accept bool
	}{
		{"empty (V0)", []byte{}, false},
		{"0xFF (unknown version)", []byte{0xff}, false},
		{"0x02 (unknown version)", []byte{0x02}, false},
		{"0x01 alone (truncated V1)", []byte{0x01}, false},
		{"V1 None, epoch 1, index 0", []byte{0x01, 0x01, 0x00, 0x00}, true},
		{"V1 None, epoch 1, index 7", []byte{0x01, 0x01, 0x07, 0x00}, true},
		{"V1 None, epoch 2, index 1 (epoch not reached)", []byte{0x01, 0x02, 0x01, 0x00}, false},
	} {
		for _, rx := range []struct {
			role     string
			receiver *jsPeer
			sender   *jsPeer
		}{{"initiator", alice, bob}, {"responder", bob, alice}} {
			outcome, detail, err := h.ProbePQRatchet(rx.receiver.party, rx.sender.a, p.pq)
			if err != nil {
				t.Fatal(err)
			}
			accepted := outcome == "passed SPQR, failed the MAC"
			t.Logf("%s receives pq_ratchet %-46s %x: %s (%s)", rx.role, p.name, p.pq, outcome, detail)
			if accepted != p.accept {
				t.Errorf("%s receives pq_ratchet %s (%x): libsignal %s: %s; want accepted=%v", rx.role, p.name, p.pq, outcome, detail, p.accept)
			}
		}
	}
}
