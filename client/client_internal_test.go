package client

import "testing"

func TestServerURLs(t *testing.T) {
	for _, tc := range []struct{ in, base, ws string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws"},
		{"https://chat.example/", "https://chat.example", "wss://chat.example/v1/ws"},
		{"https://example/parley", "https://example/parley", "wss://example/parley/v1/ws"},
	} {
		base, err := NormalizeServer(tc.in)
		if err != nil || base != tc.base {
			t.Errorf("NormalizeServer(%q) = %q, %v; want %q", tc.in, base, err, tc.base)
		}
		ws, err := WebSocketURL(tc.in)
		if err != nil || ws != tc.ws {
			t.Errorf("WebSocketURL(%q) = %q, %v; want %q", tc.in, ws, err, tc.ws)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", "::"} {
		if _, err := NormalizeServer(bad); err == nil {
			t.Errorf("NormalizeServer(%q) succeeded", bad)
		}
	}
}
