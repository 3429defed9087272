package call

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pion/rtp"
)

func TestRecorderOrdersAndConceals(t *testing.T) {
	var b bytes.Buffer
	w, err := NewOggWriter(&b, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(w)
	pkt := func(i int) *rtp.Packet {
		seq := uint16(65530 + i) // wraps
		return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(1000 + 960*i)}, Payload: testPacket(i)}
	}
	var order []int
	for i := range 40 {
		switch i {
		case 5, 6, 30: // lost
		case 10: // comes after 11
		case 11:
			order = append(order, 11, 10)
		case 20:
			order = append(order, 20, 20) // twice
		default:
			order = append(order, i)
		}
	}
	order = append(order, 6) // far too late
	for _, i := range order {
		r.push(pkt(i))
	}
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	received, lost, late, gaps := r.counts()
	if received != 37 || lost != 3 || late != 2 || gaps != 2 {
		t.Errorf("received %d, lost %d, late %d, gaps %d; want 37, 3, 2, 2", received, lost, late, gaps)
	}
	var want [][]byte
	for i := range 40 {
		switch i {
		case 5, 6, 30:
			want = append(want, []byte{31 << 3}) // 20 ms concealed
		default:
			want = append(want, testPacket(i))
		}
	}
	if diff := cmp.Diff(want, readAll(t, b.Bytes())); diff != "" {
		t.Errorf("recording (-want +got):\n%s", diff)
	}
}
