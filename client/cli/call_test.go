package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/call"
)

func TestTURNURLs(t *testing.T) {
	urls := []string{
		"turn:relay.example:3478?transport=udp",
		"turn:relay.example:3478?transport=tcp",
		"turns:relay.example:443?transport=tcp",
	}
	for _, tc := range []struct {
		transport string
		want      []string
	}{
		{"all", urls},
		{"udp", urls[:1]},
		{"tcp", urls[1:2]},
		{"tls", urls[2:]},
	} {
		got, err := turnURLs(urls, tc.transport)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.transport, diff)
		}
	}
	// Without ?transport, turn: is UDP and turns: is TCP (RFC 7065).
	got, err := turnURLs([]string{"turn:h:1", "turns:h:2"}, "tls")
	if err != nil || len(got) != 1 || got[0] != "turns:h:2" {
		t.Errorf("turns: without transport: %q, %v", got, err)
	}
	if _, err := turnURLs([]string{"http://h"}, "all"); err == nil {
		t.Error("a URL that is not TURN was taken")
	}
}

func TestPathName(t *testing.T) {
	for _, tc := range []struct {
		st   call.Stats
		want string
	}{
		{call.Stats{}, "path unknown"},
		{call.Stats{Path: "host/host"}, "direct"},
		{call.Stats{Path: "relay/relay", Relay: "tls"}, "relay over tls"},
		{call.Stats{Path: "relay/host", Relay: "udp"}, "relay over udp"},
		{call.Stats{Path: "host/relay"}, "the other side's relay"},
		{call.Stats{Path: "srflx/host"}, "direct, srflx/host candidates"},
	} {
		if got := pathName(tc.st); got != tc.want {
			t.Errorf("pathName(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestTURNTransportFlag(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{
		{"--home", home, "call", "bob", "--turn-transport", "dtls"},
		{"--home", home, "answer", "--turn-transport", "UDP"},
	} {
		code, _, errOut := run(t, "", args...)
		if code != exitUsage || !strings.Contains(errOut, "want one of udp, tcp, tls, all") {
			t.Errorf("%q: code %d, stderr %q", args, code, errOut)
		}
	}
}

func TestCAFile(t *testing.T) {
	home := t.TempDir()
	code, _, errOut := run(t, "", "--home", home, "--ca", home+"/none.pem", "register", "--server", "https://127.0.0.1:1", "alice")
	if code != exitError || !strings.Contains(errOut, "--ca:") {
		t.Errorf("missing --ca file: code %d, stderr %q", code, errOut)
	}
}
