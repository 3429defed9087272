package tunnel

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOpenSkipsKindLeft: a spare is not dialled in a kind the Link left
// lately (each failed QUIC dial costs 13 KB of Initials), unless every
// kind was left; and the waits between failed spare dials double.
func TestOpenSkipsKindLeft(t *testing.T) {
	var mu sync.Mutex
	var dialled []string
	l := &Link{
		cfg: LinkConfig{
			Ticket: func(context.Context) (*Ticket, error) {
				return &Ticket{Ticket: "t", URLs: []string{"https://h/wt", "wss://h/ws"}, Expires: time.Now().Add(time.Hour)}, nil
			},
			Dial: func(_ context.Context, u string, _ *Ticket, _ RoomID) (Carrier, error) {
				mu.Lock()
				defer mu.Unlock()
				dialled = append(dialled, u)
				return nil, errors.New("refused")
			},
		},
		log: slog.New(slog.DiscardHandler),
		ctx: context.Background(),
		bad: map[string]time.Time{"webtransport": time.Now().Add(time.Minute)},
	}
	try := func() []string {
		mu.Lock()
		dialled = nil
		mu.Unlock()
		if _, err := l.open(context.Background(), ""); !errors.Is(err, ErrNoCarrier) {
			t.Fatalf("open: %v, want ErrNoCarrier", err)
		}
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(dialled)
		return dialled
	}
	if got := try(); !slices.Equal(got, []string{"wss://h/ws"}) {
		t.Errorf("with WebTransport left, dialled %q", got)
	}
	l.bad["websocket"] = time.Now().Add(time.Minute)
	if got := try(); !slices.Equal(got, []string{"https://h/wt", "wss://h/ws"}) {
		t.Errorf("with both kinds left, dialled %q", got)
	}

	var waits []time.Duration
	for f := range 7 {
		waits = append(waits, redialWait(f))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("redial waits %v, want %v", waits, want)
	}
}

// TestOnlyCarrier: a ticket source kept to one carrier kind hands out only
// its URLs, leaves the source's ticket as it was, and names the kind it
// lacks.
func TestOnlyCarrier(t *testing.T) {
	orig := &Ticket{Ticket: "t", URLs: []string{"https://h/wt", "wss://h/ws", "ws://h/ws2"}}
	get := func(context.Context) (*Ticket, error) { return orig, nil }
	for kind, want := range map[string][]string{
		"websocket":    {"wss://h/ws", "ws://h/ws2"},
		"webtransport": {"https://h/wt"},
		"any":          orig.URLs,
		"":             orig.URLs,
	} {
		got, err := OnlyCarrier(get, kind)(context.Background())
		if err != nil || !slices.Equal(got.URLs, want) || got.Ticket != "t" {
			t.Errorf("%q: %+v, %v; want URLs %q", kind, got, err, want)
		}
	}
	if len(orig.URLs) != 3 {
		t.Errorf("the source's ticket was changed: %q", orig.URLs)
	}
	wsOnly := func(context.Context) (*Ticket, error) { return &Ticket{URLs: []string{"wss://h/ws"}}, nil }
	if _, err := OnlyCarrier(wsOnly, "webtransport")(context.Background()); err == nil || !strings.Contains(err.Error(), "no webtransport carrier") {
		t.Errorf("no WebTransport URL: %v, want an error naming it", err)
	}
}
