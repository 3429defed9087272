package tunnel_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley"
	hub "github.com/parleychat/parley/server/tunnel"
	"github.com/parleychat/parley/tunnel"
)

// memCarrier is a Carrier that keeps what the Hub sends it.
type memCarrier struct {
	mu  sync.Mutex
	got [][]byte
}

func (c *memCarrier) Send(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, msg)
	return true
}

func (c *memCarrier) Close(parley.Kind, string) {}

// media returns the media payloads sent to c so far.
func (c *memCarrier) media() [][]byte { return c.of(tunnel.MsgMedia) }

// of returns the payloads of the messages of type typ sent to c so far.
func (c *memCarrier) of(typ tunnel.MsgType) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, m := range c.got {
		if tunnel.MsgType(m[0]) == typ {
			out = append(out, m[1:])
		}
	}
	return out
}

func join(t *testing.T, h *hub.Hub, room tunnel.RoomID, user string) (*hub.Session, *memCarrier) {
	t.Helper()
	c := &memCarrier{}
	ticket, _ := h.Ticket(parley.Address{User: parley.UserID(user), Device: 1})
	s, err := h.Join(ticket, room, c)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func receive(t *testing.T, s *hub.Session, msg []byte) {
	t.Helper()
	if err := s.Receive(msg); err != nil {
		t.Fatal(err)
	}
}

// TestHubLateCopy: a device in a trial sends each packet on two carriers;
// the copy that comes on the slower one after the trial has ended is
// dropped, not forwarded a second time, and does not take the device's
// media back to that carrier.
func TestHubLateCopy(t *testing.T) {
	t.Parallel()
	h := hub.NewHub(hub.Config{})
	room := randomRoom(t)
	fast, fastIn := join(t, h, room, "alice")
	slow, slowIn := join(t, h, room, "alice")
	bob, bobIn := join(t, h, room, "bob")

	receive(t, fast, tunnel.AppendSelectAll(nil, false))
	p1, p2, p3 := []byte("packet one, with its tag"), []byte("packet two, with its tag"), []byte("packet three, with its tag")
	receive(t, fast, tunnel.AppendMedia(nil, p1))
	receive(t, slow, tunnel.AppendMedia(nil, p1)) // in the trial
	receive(t, fast, tunnel.AppendMedia(nil, p2))
	receive(t, fast, tunnel.AppendSelect(nil, false)) // the trial ends: fast is kept
	receive(t, slow, tunnel.AppendMedia(nil, p2))     // p2's late copy
	// Bob's media goes to alice's active carrier, which must still be
	// the fast one.
	receive(t, bob, tunnel.AppendMedia(nil, []byte("from bob")))
	receive(t, fast, tunnel.AppendMedia(nil, p3))

	got := bobIn.media()
	if len(got) != 3 || !bytes.Equal(got[0], p1) || !bytes.Equal(got[1], p2) || !bytes.Equal(got[2], p3) {
		t.Errorf("bob got %q, want each packet once", got)
	}
	if st := h.Stats(); st.Duplicates != 2 {
		t.Errorf("stats %+v, want 2 duplicates", st)
	}

	if m := slowIn.media(); len(m) != 0 {
		t.Errorf("alice's slow carrier got %q; the late copy moved her media there", m)
	}
	if m := fastIn.media(); len(m) != 1 {
		t.Errorf("alice's fast carrier got %q, want bob's packet", m)
	}
}

// TestHubReplay: a device that moves with a Select asking for replay (the
// carrier its media went to froze) gets the media of the last half second
// again on the new carrier, marked Replay (a receiver must not take its
// lateness for the path's), and then the new media as Media; a move
// without replay, or one after the half second, replays nothing.
func TestHubReplay(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	h := hub.NewHub(hub.Config{Now: func() time.Time { return now }})
	room := randomRoom(t)
	_, frozenIn := join(t, h, room, "alice")
	fresh, freshIn := join(t, h, room, "alice")
	other, otherIn := join(t, h, room, "alice")
	bob, _ := join(t, h, room, "bob")
	p1, p2, p3 := []byte("packet one, with its tag"), []byte("packet two, with its tag"), []byte("packet three, with its tag")
	receive(t, bob, tunnel.AppendMedia(nil, p1))
	receive(t, bob, tunnel.AppendMedia(nil, p2))
	if got := frozenIn.media(); len(got) != 2 {
		t.Fatalf("alice's first carrier got %q, want bob's two packets", got)
	}

	receive(t, fresh, tunnel.AppendSelect(nil, true))
	receive(t, bob, tunnel.AppendMedia(nil, p3))
	if got := freshIn.of(tunnel.MsgReplay); len(got) != 2 || !bytes.Equal(got[0], p1) || !bytes.Equal(got[1], p2) {
		t.Errorf("the new carrier's replay: %q, want the two packets before the move", got)
	}
	if got := freshIn.media(); len(got) != 1 || !bytes.Equal(got[0], p3) {
		t.Errorf("the new carrier's media: %q, want only the packet after the move", got)
	}

	receive(t, other, tunnel.AppendSelect(nil, false))
	now = now.Add(time.Second)
	receive(t, fresh, tunnel.AppendSelect(nil, true))
	if got := otherIn.of(tunnel.MsgReplay); len(got) != 0 {
		t.Errorf("a move without replay replayed %q", got)
	}
	if got := freshIn.of(tunnel.MsgReplay); len(got) != 2 {
		t.Errorf("a move back after a second replayed %d more packets, want none (older than half a second)", len(got)-2)
	}
}
