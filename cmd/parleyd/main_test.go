package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/server/relay"
	"github.com/parleychat/parley/server/relay/relaytest"
	"github.com/parleychat/parley/server/tlsmux"
)

func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--data", t.TempDir(), "--log-level", "debug"}, func(string) string { return "" }, pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL: %v (stderr: %s)", err, stderr.String())
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("first line = %q, want http://127.0.0.1:PORT/", url)
	}
	go io.Copy(io.Discard, pr)
	resp, err := http.Get(url + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %s", resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown after cancel")
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &out)
	if err == nil {
		t.Fatal("--help: no error")
	}
	for _, want := range []string{"--listen", "--data", "--log-level", "PARLEY_DATA", "mailbox", "ciphertext",
		"--tls-cert", "--tls-key", "--tls-self-signed", "--turn-listen", "--relay-ip", "--relay-host", "--relay-allow", "--turn-ttl", "stun.turn"} {
		if !strings.Contains(out.String(), strings.TrimPrefix(want, "--")) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunTLS starts parleyd with a self-signed certificate and the relay
// on free ports: the first line is an https URL, the fingerprint is on
// stderr, HTTPS answers, TURN takes an allocation over TLS on the HTTPS
// port, and the secret is kept in the data folder.
func TestRunTLS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	pr, pw := io.Pipe()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--data", dir, "--tls-self-signed", "--relay-allow", "127.0.0.0/8"}, func(string) string { return "" }, pw, stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL: %v (stderr: %s)", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("first line = %q, want https://127.0.0.1:PORT/", url)
	}
	m := regexp.MustCompile(`fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no SHA-256 fingerprint on stderr:\n%s", stderr.String())
	}
	// The certificate is in the data folder, for parley --ca.
	pemBytes, err := os.ReadFile(filepath.Join(dir, selfSignedFile))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(pemBytes); b == nil || b.Type != "CERTIFICATE" || tlsmux.Fingerprint(b.Bytes) != m[1] {
		t.Errorf("%s does not hold the certificate with fingerprint %s", selfSignedFile, m[1])
	}
	if !strings.Contains(stderr.String(), "parley --ca "+filepath.Join(dir, selfSignedFile)) {
		t.Errorf("stderr does not say how clients trust the certificate:\n%s", stderr.String())
	}
	// Trust exactly the certificate with that fingerprint.
	pin := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		if got := tlsmux.Fingerprint(cs.PeerCertificates[0].Raw); got != m[1] {
			return fmt.Errorf("certificate %s, want %s", got, m[1])
		}
		return nil
	}}
	tr := &http.Transport{TLSClientConfig: pin}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %s", resp.Status)
	}
	// A credential made with the secret in the data folder opens an
	// allocation over TLS on the HTTPS port.
	secret, err := os.ReadFile(filepath.Join(dir, relay.SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	user := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ":test.1"
	hostPort := strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/")
	tlsCfg := pin.Clone()
	tlsCfg.NextProtos = []string{tlsmux.ProtoTURN}
	relaytest.MustAllocate(t, "tls", hostPort, tlsCfg, user, relay.Password([]byte(strings.TrimSpace(string(secret))), user))
	for i := 0; i < 100 && !strings.Contains(stderr.String(), "turns:127.0.0.1:"); i++ {
		time.Sleep(50 * time.Millisecond) // the relay logs its URLs as it starts
	}
	if !strings.Contains(stderr.String(), "turns:127.0.0.1:") {
		t.Errorf("the log does not show the turns: URL:\n%s", stderr.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown after cancel")
	}
}

func TestFlagErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--tls-cert", "x.pem"},
		{"--tls-self-signed", "--tls-key", "k.pem"},
		{"--relay-allow", "not-a-cidr"},
		{"--relay-ip", "nonsense"},
		{"--turn-listen", ":0"}, // no --relay-ip
	} {
		args = append(args, "--listen", "127.0.0.1:0", "--data", t.TempDir())
		if err := run(context.Background(), args, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWebTransport: by default the call tunnel's WebTransport is on the
// HTTP listener's port number over UDP, with self-signed certificates
// whose hashes tickets carry; with an operator certificate, that one and
// no hashes.
func TestWebTransport(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wt, err := webTransport("same", "", ln.Addr(), nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Conn.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if want := "https://127.0.0.1:" + port + "/v1/tunnel"; wt.URL != want || wt.Conn.LocalAddr().String() != "127.0.0.1:"+port {
		t.Errorf("URL %q on %v, want %q on the same port", wt.URL, wt.Conn.LocalAddr(), want)
	}
	if h := wt.Hashes(); wt.TLS == nil || len(h) != 1 || len(h[0]) != 32 {
		t.Errorf("self-signed: TLS %v, hashes %x", wt.TLS != nil, h)
	}

	cert, _, err := tlsmux.SelfSigned("parley.example")
	if err != nil {
		t.Fatal(err)
	}
	op, err := webTransport("127.0.0.1:0", "", ln.Addr(), []string{"parley.example"}, &tls.Config{Certificates: []tls.Certificate{cert}}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer op.Conn.Close()
	if op.Hashes != nil || len(op.TLS.Certificates) != 1 || !strings.HasPrefix(op.URL, "https://parley.example:") {
		t.Errorf("operator certificate: URL %q, hashes %v", op.URL, op.Hashes != nil)
	}
}
