package signaltest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

// LibsignalVersion is the version of @signalapp/libsignal-client that
// node/package.json pins; Start fails if the installed one differs.
const LibsignalVersion = "0.103.0"

// InstallHint is the command that installs the harness' dependencies.
const InstallHint = "cd signal/signaltest/node && npm ci"

// callTimeout bounds one harness command; bench commands get benchTimeout.
const (
	callTimeout  = 60 * time.Second
	benchTimeout = 5 * time.Minute
)

// NodeDir returns the directory holding harness.mjs and package.json.
func NodeDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "node"
	}
	return filepath.Join(filepath.Dir(file), "node")
}

// Harness is a running node/harness.mjs: one Node process holding any number
// of libsignal parties with in-memory stores. Its methods are safe for
// concurrent use; commands run one at a time.
type Harness struct {
	mu     sync.Mutex // serialises commands: guards stdin and nextID
	stdin  io.WriteCloser
	nextID int

	lines  chan []byte // response lines from the reader goroutine; closed when stdout ends
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// Unavailable skips t with msg, or fails it when the CI environment variable
// is set: in CI a missing reference implementation is an error, not a reason
// to pass.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("libsignal interop tests cannot run and CI is set: %s", msg)
	}
	t.Skipf("libsignal interop tests skipped: %s", msg)
}

// ErrUnavailable is wrapped by Launch's error when node or the harness'
// node_modules are missing; the message says what to run.
var ErrUnavailable = errors.New("libsignal harness unavailable")

// Start starts the harness for the duration of t (it is stopped by
// t.Cleanup). When node or the harness' node_modules are missing it calls
// Unavailable, which skips t (fails it under CI) naming the command to run.
func Start(t testing.TB) *Harness {
	t.Helper()
	h, err := Launch()
	if errors.Is(err, ErrUnavailable) {
		Unavailable(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// Launch starts the harness and checks libsignal's version; the caller
// closes it. Use Start in tests.
func Launch() (*Harness, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: node is not on PATH: install Node 20 (apt-get install nodejs npm), then run `%s`", ErrUnavailable, InstallHint)
	}
	dir := NodeDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@signalapp", "libsignal-client", "package.json")); err != nil {
		return nil, fmt.Errorf("%w: @signalapp/libsignal-client is not installed: run `%s` (or `make interop-deps`)", ErrUnavailable, InstallHint)
	}
	h, err := startHarness(node, dir)
	if err != nil {
		return nil, fmt.Errorf("start libsignal harness: %w", err)
	}
	var ping struct {
		Version string `json:"version"`
		Node    string `json:"node"`
	}
	if err := h.Call("ping", nil, &ping); err != nil {
		h.Close()
		return nil, err
	}
	if ping.Version != LibsignalVersion {
		h.Close()
		return nil, fmt.Errorf("libsignal harness runs @signalapp/libsignal-client %s, want %s: run `%s`", ping.Version, LibsignalVersion, InstallHint)
	}
	return h, nil
}

func startHarness(node, dir string) (*Harness, error) {
	cmd := exec.Command(node, "harness.mjs")
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h := &Harness{
		stdin:  stdin,
		lines:  make(chan []byte, 1),
		cmd:    cmd,
		stderr: new(syncBuffer),
	}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(h.lines)
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				h.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return h, nil
}

// Close asks the harness to quit and waits for it, killing it after a few
// seconds.
func (h *Harness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stdin == nil {
		return
	}
	io.WriteString(h.stdin, `{"id":0,"cmd":"quit"}`+"\n")
	h.stdin.Close()
	h.stdin = nil
	exited := make(chan struct{})
	go func() {
		for range h.lines { // drain until stdout ends
		}
	}()
	go func() { h.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-exited
	}
}

// Error is a command that failed inside the harness, usually an error thrown
// by libsignal.
type Error struct {
	Cmd     string // the harness command
	Message string // the JavaScript error's message
	Code    string // libsignal's ErrorCode name, if any
	Name    string // the JavaScript error's name
	// Log holds libsignal's own warnings and errors logged during the
	// command: a failed decrypt's error says "decryption failed", its log
	// says why (bad MAC, unknown version, no chain, …).
	Log []string
}

func (e *Error) Error() string {
	s := "libsignal " + e.Cmd + ": " + e.Message
	if e.Code != "" {
		s += " (ErrorCode " + e.Code + ")"
	}
	if len(e.Log) > 0 {
		s += "\n\tlibsignal's log:\n\t  " + strings.Join(e.Log, "\n\t  ")
	}
	return s
}

// Call runs one harness command with args (a map or struct, marshalled to
// the request's fields) and unmarshals the response's fields into result,
// if not nil. A command that failed in the harness returns an *Error.
func (h *Harness) Call(cmd string, args, result any) error {
	timeout := callTimeout
	if cmd == "bench" {
		timeout = benchTimeout
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stdin == nil {
		return fmt.Errorf("libsignal harness: %s: harness closed", cmd)
	}
	h.nextID++
	id := h.nextID
	req := map[string]any{}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("libsignal harness: %s: %w", cmd, err)
		}
		if err := json.Unmarshal(b, &req); err != nil {
			return fmt.Errorf("libsignal harness: %s: arguments must marshal to an object: %w", cmd, err)
		}
	}
	req["id"], req["cmd"] = id, cmd
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("libsignal harness: %s: %w", cmd, err)
	}
	if _, err := h.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("libsignal harness: %s: write: %w (stderr: %s)", cmd, err, h.stderr.tail())
	}
	var resp []byte
	select {
	case r, ok := <-h.lines:
		if !ok {
			return fmt.Errorf("libsignal harness: %s: harness exited (stderr: %s)", cmd, h.stderr.tail())
		}
		resp = r
	case <-time.After(timeout):
		return fmt.Errorf("libsignal harness: %s: no answer in %v (stderr: %s)", cmd, timeout, h.stderr.tail())
	}
	var head struct {
		ID    int      `json:"id"`
		OK    bool     `json:"ok"`
		Error string   `json:"error"`
		Code  string   `json:"code"`
		Name  string   `json:"name"`
		Log   []string `json:"log"`
	}
	if err := json.Unmarshal(resp, &head); err != nil {
		return fmt.Errorf("libsignal harness: %s: bad response %q: %w", cmd, resp, err)
	}
	if head.ID != id {
		return fmt.Errorf("libsignal harness: %s: response for request %d, want %d", cmd, head.ID, id)
	}
	if !head.OK {
		return &Error{Cmd: cmd, Message: head.Error, Code: head.Code, Name: head.Name, Log: head.Log}
	}
	if result != nil {
		if err := json.Unmarshal(resp, result); err != nil {
			return fmt.Errorf("libsignal harness: %s: decode response: %w", cmd, err)
		}
	}
	return nil
}

// jsAddress is an address as the harness takes it.
type jsAddress struct {
	Name   string `json:"name"`
	Device uint32 `json:"device"`
}

func toJS(a parley.Address) jsAddress {
	return jsAddress{Name: string(a.User), Device: uint32(a.Device)}
}

// Create makes a libsignal party called party at address addr with a new
// identity key pair and registration id regID, and returns the serialised
// identity public key (0x05 || 32 bytes).
func (h *Harness) Create(party string, addr parley.Address, regID uint32) ([]byte, error) {
	var r struct {
		IdentityKey []byte `json:"identityKey"`
	}
	err := h.Call("create", map[string]any{"party": party, "name": string(addr.User), "device": uint32(addr.Device), "registrationId": regID}, &r)
	return r.IdentityKey, err
}

// Bundle is a PreKeyBundle as the harness speaks it: libsignal's
// serialisations (0x05 || 32 bytes, 0x08 || 1568 bytes), base64 in JSON.
type Bundle struct {
	RegistrationID        uint32  `json:"registrationId"`
	DeviceID              uint32  `json:"deviceId"`
	PreKeyID              *uint32 `json:"preKeyId"` // nil: no one-time prekey
	PreKey                []byte  `json:"preKey"`
	SignedPreKeyID        uint32  `json:"signedPreKeyId"`
	SignedPreKey          []byte  `json:"signedPreKey"`
	SignedPreKeySignature []byte  `json:"signedPreKeySignature"`
	KyberPreKeyID         uint32  `json:"kyberPreKeyId"`
	KyberPreKey           []byte  `json:"kyberPreKey"`
	KyberPreKeySignature  []byte  `json:"kyberPreKeySignature"`
	IdentityKey           []byte  `json:"identityKey"`
}

// BundleRequest says which prekeys the harness generates for a bundle.
type BundleRequest struct {
	PreKeyID        *uint32 `json:"preKeyId,omitempty"` // nil: no one-time prekey
	SignedPreKeyID  uint32  `json:"signedPreKeyId"`
	KyberPreKeyID   uint32  `json:"kyberPreKeyId"`
	KyberLastResort bool    `json:"kyberLastResort,omitempty"`
}

// Bundle generates and stores prekeys for party and returns its bundle.
func (h *Harness) Bundle(party string, req BundleRequest) (*Bundle, error) {
	var r struct {
		Bundle *Bundle `json:"bundle"`
	}
	args := map[string]any{"party": party, "signedPreKeyId": req.SignedPreKeyID, "kyberPreKeyId": req.KyberPreKeyID, "kyberLastResort": req.KyberLastResort}
	if req.PreKeyID != nil {
		args["preKeyId"] = *req.PreKeyID
	}
	err := h.Call("bundle", args, &r)
	if err == nil && r.Bundle == nil {
		err = errors.New("libsignal bundle: empty answer")
	}
	return r.Bundle, err
}

// EncodeBundle converts a Go bundle to the harness' form.
func EncodeBundle(b *signal.PreKeyBundle) *Bundle {
	out := &Bundle{
		RegistrationID:        b.RegistrationID,
		DeviceID:              uint32(b.DeviceID),
		SignedPreKeyID:        b.SignedPreKeyID,
		SignedPreKey:          b.SignedPreKey.Bytes(),
		SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID:         b.KyberPreKeyID,
		KyberPreKey:           b.KyberPreKey.Bytes(),
		KyberPreKeySignature:  b.KyberPreKeySignature,
		IdentityKey:           b.IdentityKey.Bytes(),
	}
	if b.HasPreKey {
		id := b.PreKeyID
		out.PreKeyID = &id
		out.PreKey = b.PreKey.Bytes()
	}
	return out
}

// Decode converts the harness' bundle to a Go one with package signal's
// decoders; an error names the field that did not decode.
func (b *Bundle) Decode() (*signal.PreKeyBundle, error) {
	out := &signal.PreKeyBundle{
		RegistrationID:        b.RegistrationID,
		DeviceID:              parley.DeviceID(b.DeviceID),
		SignedPreKeyID:        b.SignedPreKeyID,
		SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID:         b.KyberPreKeyID,
		KyberPreKeySignature:  b.KyberPreKeySignature,
	}
	var err error
	if b.PreKeyID != nil {
		out.HasPreKey, out.PreKeyID = true, *b.PreKeyID
		if out.PreKey, err = signal.DecodePublicKey(b.PreKey); err != nil {
			return nil, fmt.Errorf("libsignal bundle's preKey %x: %w", b.PreKey, err)
		}
	}
	if out.SignedPreKey, err = signal.DecodePublicKey(b.SignedPreKey); err != nil {
		return nil, fmt.Errorf("libsignal bundle's signedPreKey %x: %w", b.SignedPreKey, err)
	}
	if out.IdentityKey, err = signal.DecodePublicKey(b.IdentityKey); err != nil {
		return nil, fmt.Errorf("libsignal bundle's identityKey %x: %w", b.IdentityKey, err)
	}
	if out.KyberPreKey, err = signal.DecodeKyberPublicKey(b.KyberPreKey); err != nil {
		return nil, fmt.Errorf("libsignal bundle's kyberPreKey (%d bytes, starts %x): %w", len(b.KyberPreKey), b.KyberPreKey[:min(8, len(b.KyberPreKey))], err)
	}
	return out, nil
}

// Process has party run libsignal's processPreKeyBundle for remote.
func (h *Harness) Process(party string, remote parley.Address, b *Bundle) error {
	return h.Call("process", map[string]any{"party": party, "remote": toJS(remote), "bundle": b}, nil)
}

// Encrypt has party encrypt plaintext to remote with signalEncrypt.
func (h *Harness) Encrypt(party string, remote parley.Address, plaintext []byte) (signal.CiphertextMessage, error) {
	var r struct {
		Type       int    `json:"type"`
		Ciphertext []byte `json:"ciphertext"`
	}
	err := h.Call("encrypt", map[string]any{"party": party, "remote": toJS(remote), "plaintext": b64(plaintext)}, &r)
	return signal.CiphertextMessage{Type: parley.EnvelopeType(r.Type), Serialized: r.Ciphertext}, err
}

// Decrypt has party decrypt a message from remote: signalDecryptPreKey for
// EnvelopePreKey, signalDecrypt for EnvelopeSignal.
func (h *Harness) Decrypt(party string, remote parley.Address, typ parley.EnvelopeType, ciphertext []byte) ([]byte, error) {
	var r struct {
		Plaintext []byte `json:"plaintext"`
	}
	err := h.Call("decrypt", map[string]any{"party": party, "remote": toJS(remote), "type": int(typ), "ciphertext": b64(ciphertext)}, &r)
	if err == nil && r.Plaintext == nil {
		r.Plaintext = []byte{}
	}
	return r.Plaintext, err
}

// Archive archives party's current session state with remote
// (SessionRecord.archiveCurrentState), as a reset does.
func (h *Harness) Archive(party string, remote parley.Address) error {
	return h.Call("archive", map[string]any{"party": party, "remote": toJS(remote)}, nil)
}

// Verify reports whether libsignal's PublicKey.verify accepts sig, an XEdDSA
// signature over msg by key (0x05 || 32 bytes).
func (h *Harness) Verify(key, msg, sig []byte) (bool, error) {
	var r struct {
		Valid bool `json:"valid"`
	}
	err := h.Call("verify", map[string]any{"key": b64(key), "message": b64(msg), "signature": b64(sig)}, &r)
	return r.Valid, err
}

// Fingerprint returns libsignal's Fingerprint.new(5200, 2, ...): the
// displayable digits and the scannable encoding.
func (h *Harness) Fingerprint(localID, localKey, remoteID, remoteKey []byte) (digits string, scannable []byte, err error) {
	var r struct {
		Displayable string `json:"displayable"`
		Scannable   []byte `json:"scannable"`
	}
	err = h.Call("fingerprint", map[string]any{
		"version": signal.FingerprintVersion, "iterations": signal.FingerprintIterations,
		"localId": b64(localID), "localKey": b64(localKey), "remoteId": b64(remoteID), "remoteKey": b64(remoteKey),
	}, &r)
	return r.Displayable, r.Scannable, err
}

// BenchResult is libsignal's speed, measured inside Node between two
// libsignal parties (no harness round trips in the figures).
type BenchResult struct {
	Libsignal            string  `json:"libsignal"`
	Node                 string  `json:"node"`
	N                    int     `json:"n"`                    // PQXDH set-ups timed
	Messages             int     `json:"messages"`             // encrypt+decrypt pairs timed
	BundlesPerSec        float64 `json:"bundlesPerSec"`        // prekey bundle generation (untimed in set-ups)
	SetupsPerSec         float64 `json:"setupsPerSec"`         // processPreKeyBundle + encrypt + decrypt of the PreKeySignalMessage
	SetupMicros          float64 `json:"setupMicros"`          //
	EncryptDecryptPerSec float64 `json:"encryptDecryptPerSec"` // one message encrypted and decrypted, direction alternating every 10
	EncryptDecryptMicros float64 `json:"encryptDecryptMicros"` //
	MessageBytes         int     `json:"messageBytes"`         // plaintext size
}

// Bench runs libsignal's benchmark: n PQXDH set-ups and messages
// encrypt+decrypt pairs.
func (h *Harness) Bench(n, messages int) (BenchResult, error) {
	var r BenchResult
	err := h.Call("bench", map[string]any{"n": n, "messages": messages}, &r)
	return r, err
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// syncBuffer collects the harness' stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.buf.String())
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	if s == "" {
		return "empty"
	}
	return s
}

// ProbePQRatchet reports what libsignal's party does with a SignalMessage
// from remote (a session must exist) whose pq_ratchet field is pq: the
// outcome is "passed SPQR, failed the MAC" when libsignal's SPQR accepted the
// payload (the probe's MAC is made with a zero key, so the decrypt fails
// after SPQR), "rejected by SPQR" when it did not; detail is libsignal's
// logged reason.
func (h *Harness) ProbePQRatchet(party string, remote parley.Address, pq []byte) (outcome, detail string, err error) {
	var r struct {
		Outcome string `json:"outcome"`
		Detail  string `json:"detail"`
	}
	err = h.Call("probePqRatchet", map[string]any{"party": party, "remote": toJS(remote), "pqRatchet": b64(pq)}, &r)
	return r.Outcome, r.Detail, err
}

// SessionInfo is what libsignal's SessionRecord says about a session.
type SessionInfo struct {
	Exists               bool   `json:"exists"`
	HasCurrentState      bool   `json:"hasCurrentState"`
	LocalRegistrationID  uint32 `json:"localRegistrationId"`
	RemoteRegistrationID uint32 `json:"remoteRegistrationId"`
}

// Session returns party's session record summary for remote.
func (h *Harness) Session(party string, remote parley.Address) (SessionInfo, error) {
	var r SessionInfo
	err := h.Call("session", map[string]any{"party": party, "remote": toJS(remote)}, &r)
	return r, err
}
