package client

import (
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley"
)

func TestContentRoundTrip(t *testing.T) {
	id := parley.NewMessageID()
	at := time.UnixMilli(1764300000123)
	for _, text := range []string{"", "hello", strings.Repeat("x", 159), strings.Repeat("ü", 500), "nul\x00inside"} {
		p, err := encodeContent(textContent(id, text, at))
		if err != nil {
			t.Fatal(err)
		}
		if len(p)%paddingBlock != 0 {
			t.Errorf("len %d is not padded to %d", len(p), paddingBlock)
		}
		c, err := decodeContent(p)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if c.Text != text || c.ID != id.String() || c.SentAt != at.UnixMilli() || c.V != 1 || c.Type != "text" {
			t.Errorf("round trip of %q gave %+v", text, c)
		}
	}
}

func TestContentRejects(t *testing.T) {
	for _, p := range []string{"", "\x80", "{}\x80", "{\"v\":1}", "not json\x80\x00"} {
		if _, err := decodeContent([]byte(p)); err == nil {
			t.Errorf("decodeContent(%q) succeeded", p)
		}
	}
}

func FuzzDecodeContent(f *testing.F) {
	p, _ := encodeContent(textContent(parley.NewMessageID(), "hi", time.Now()))
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) { decodeContent(b) })
}
