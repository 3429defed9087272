package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/tlsmux"
)

// startTURNServer starts an in-process parleyd with a self-signed TLS
// certificate for 127.0.0.1 and a TURN relay (UDP and TCP on a free port,
// TLS on the HTTPS port) that may relay to 127.0.0.0/8, as
// "parleyd --tls-self-signed --relay-allow 127.0.0.0/8" would. It returns
// the server's https URL, a PEM file of its certificate (for --ca) and the
// certificate itself.
func startTURNServer(t *testing.T) (url, caFile string, cert *x509.Certificate) {
	t.Helper()
	tcert, _, err := tlsmux.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "parleyd.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tcert.Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := serveWithRelay(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, &tls.Config{Certificates: []tls.Certificate{tcert}})
	return "https://" + addr, caFile, tcert.Leaf
}

// serveWithRelay runs an in-process parleyd with its TURN relay (relaying
// to allow, besides public addresses) and TLS if tlsCfg is set, until the
// test ends; it returns the address it serves on. Its log is shown if the
// test fails.
func serveWithRelay(t *testing.T, allow []netip.Prefix, tlsCfg *tls.Config) string {
	t.Helper()
	ctx := context.Background()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	secret, err := relay.LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.Listen(relay.Config{Listen: "127.0.0.1:0", Secret: secret, Logger: log, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(ctx, server.Config{DataDir: dir, Logger: log, Relay: r, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return ln.Addr().String()
}

var connectedLine = regexp.MustCompile(`(?m)^connected in (\S+) \(([^)]*)\)$`)

// TestRelayCall: two CLI clients call through a real parleyd in relay-only
// mode over TURN/UDP, TURN/TCP and TURN/TLS in turn; the recorded Ogg
// holds at least 95% of the sent frames, in order, and both sides report
// the relay over the transport asked for.
func TestRelayCall(t *testing.T) {
	t.Parallel()
	url, ca, _ := startTURNServer(t)
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.must("--ca", ca, "register", "--server", url, "alice")
	bob.must("--ca", ca, "register", "--server", url, "bob")
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	const frames = 100 // 2 s
	speech := writeOgg(t, file("speech.ogg"), 'a', frames)
	reply := writeOgg(t, file("reply.ogg"), 'b', frames)

	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			heardByAlice, heardByBob := file(transport+"-alice-heard.ogg"), file(transport+"-bob-heard.ogg")
			bobOut, bobDone := bob.start("--ca", ca, "answer", "--relay-only", "--turn-transport", transport,
				"--send", file("reply.ogg"), "--record", heardByBob, "--wait", "30s")
			// bob listens once his client is online; a call before that
			// would ring while he is "offline" and not be answered.
			for deadline := time.Now().Add(20 * time.Second); !regexp.MustCompile(`(?m)^waiting for a call$`).MatchString(bobOut.String()); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("bob is not waiting for a call:\n%s", bobOut.String())
				}
			}
			aliceOut, aliceDone := alice.start("--ca", ca, "call", "bob", "--relay-only", "--turn-transport", transport,
				"--send", file("speech.ogg"), "--record", heardByAlice, "--duration", "2.5s")
			aliceCode, bobCode := <-aliceDone, <-bobDone
			out, bout := aliceOut.String(), bobOut.String()
			t.Logf("alice:\n%s", out)
			t.Logf("bob:\n%s", bout)
			if aliceCode != 0 || bobCode != 0 {
				t.Fatalf("call: exit %d, answer: exit %d", aliceCode, bobCode)
			}
			for who, o := range map[string]string{"alice": out, "bob": bout} {
				if m := connectedLine.FindStringSubmatch(o); m == nil || m[2] != "relay over "+transport {
					t.Errorf("%s's path: %q, want relay over %s", who, m, transport)
				}
			}
			if c, s := connectedLine.FindStringSubmatch(out), setupLine.FindStringSubmatch(out); c != nil && s != nil {
				t.Logf("TURN/%s: alice connected in %s, set-up time %s%s", transport, c[1], s[1], s[2])
			} else {
				t.Errorf("call printed no connection or set-up time")
			}
			m := packetsLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("call printed no packet counts")
			}
			if sent, _ := strconv.Atoi(m[1]); sent != frames {
				t.Errorf("alice sent %s packets, want %d", m[1], frames)
			}
			checkRecording(t, heardByAlice, reply)
			checkRecording(t, heardByBob, speech)
		})
	}
}
