package server_test

// A small wire client for the tests: real Signal keys, one request at a time.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

// testServer is a Server serving on a random loopback port.
type testServer struct {
	*server.Server
	t    testing.TB
	url  string // ws://127.0.0.1:port
	http string // http://127.0.0.1:port
	cfg  server.Config
	stop func() // stops Serve and closes the server
}

// logBuffer collects log output for the tests that inspect it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer opens a server in cfg.DataDir (a new temporary folder if
// empty) and serves it until the test ends or stop is called.
func startServer(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	ts := &testServer{Server: s, t: t, cfg: cfg, url: "ws://" + ln.Addr().String(), http: "http://" + ln.Addr().String()}
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// testWriter sends logs to t.Log while the test runs.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// identity is a user's keys as the client keeps them.
type identity struct {
	user     string
	identity signal.KeyPair
	device   signal.KeyPair
	regID    uint32
	nextKey  uint32
}

func newIdentity(t testing.TB, user string) *identity {
	t.Helper()
	id, err := signal.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := signal.GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return &identity{user: user, identity: id, device: dev, regID: 1234, nextKey: 1}
}

// keys returns an upload of n one-time prekeys of each kind, with a new
// signed and last-resort key when full is set.
func (id *identity) keys(t testing.TB, n int, full bool) wire.UploadKeys {
	t.Helper()
	var u wire.UploadKeys
	now := time.Now()
	if full {
		spk, err := signal.GenerateSignedPreKey(id.identity, id.nextKey, now)
		if err != nil {
			t.Fatal(err)
		}
		u.SignedPreKey = &wire.SignedPreKey{ID: spk.ID, Key: spk.Key.Public.Bytes(), Signature: spk.Signature}
		lr, err := signal.GenerateKyberPreKey(id.identity, 100000+id.nextKey, now, true)
		if err != nil {
			t.Fatal(err)
		}
		u.LastResortKyber = &wire.KyberPreKey{ID: lr.ID, Key: lr.Key.Public.Bytes(), Signature: lr.Signature}
	}
	for i := 0; i < n; i++ {
		pk, err := signal.GeneratePreKey(id.nextKey)
		if err != nil {
			t.Fatal(err)
		}
		u.PreKeys = append(u.PreKeys, wire.PreKey{ID: pk.ID, Key: pk.Key.Public.Bytes()})
		kk, err := signal.GenerateKyberPreKey(id.identity, id.nextKey, now, false)
		if err != nil {
			t.Fatal(err)
		}
		u.KyberPreKeys = append(u.KyberPreKeys, wire.KyberPreKey{ID: kk.ID, Key: kk.Key.Public.Bytes(), Signature: kk.Signature})
		id.nextKey++
	}
	return u
}

// client is one connection.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	hello  *wire.Hello
	nextID uint64
	queue  []*wire.Frame // frames read while waiting for a response
}

func dial(t testing.TB, ts *testServer) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, ts.url+wire.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(parley.MaxFrameSize)
	c := &client{t: t, ws: ws, nextID: 1}
	t.Cleanup(func() { ws.CloseNow() })
	f := c.read()
	h, ok := f.Body.(*wire.Hello)
	if !ok || f.Op != wire.OpHello || h.Version != wire.ProtocolVersion {
		t.Fatalf("first frame: %+v", f)
	}
	c.hello = h
	return c
}

// read returns the next frame from the socket, failing the test on error.
func (c *client) read() *wire.Frame {
	c.t.Helper()
	f, err := c.tryRead(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) tryRead(timeout time.Duration) (*wire.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, errors.New("text message")
	}
	return wire.DecodeFrame(b)
}

// next returns the next frame that is not a response: queued ones first.
func (c *client) next() *wire.Frame {
	c.t.Helper()
	if len(c.queue) > 0 {
		f := c.queue[0]
		c.queue = c.queue[1:]
		return f
	}
	return c.read()
}

func (c *client) writeRaw(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, b)
}

func (c *client) write(f *wire.Frame) {
	c.t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.writeRaw(b); err != nil {
		c.t.Fatal(err)
	}
}

// call sends a request and returns its response, queueing other frames.
func (c *client) call(op wire.Op, body any) *wire.Frame {
	c.t.Helper()
	id := c.nextID
	c.nextID++
	c.write(&wire.Frame{Type: wire.TypeRequest, ID: id, Op: op, Body: body})
	return c.await(id)
}

func (c *client) await(id uint64) *wire.Frame {
	c.t.Helper()
	for {
		f := c.read()
		if f.Type == wire.TypeResponse && f.ID == id {
			return f
		}
		c.queue = append(c.queue, f)
	}
}

// mustCall is call that fails the test on an error response.
func (c *client) mustCall(op wire.Op, body any) any {
	c.t.Helper()
	f := c.call(op, body)
	if f.Err != nil {
		c.t.Fatalf("%s: %s: %s", op, f.Err.Kind, f.Err.Message)
	}
	return f.Body
}

func (c *client) register(id *identity, keys wire.UploadKeys) *wire.Frame {
	c.t.Helper()
	sig, err := id.device.Private.Sign(wire.AuthPayload(c.hello.Challenge, id.user, 0))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.call(wire.OpRegister, &wire.Register{
		Version: wire.ProtocolVersion, Username: id.user, DeviceKey: id.device.Public.Bytes(), Signature: sig,
		IdentityKey: id.identity.Public.Bytes(), RegistrationID: id.regID, Keys: keys,
	})
}

func (c *client) login(id *identity, device parley.DeviceID) *wire.Frame {
	c.t.Helper()
	sig, err := id.device.Private.Sign(wire.AuthPayload(c.hello.Challenge, id.user, device))
	if err != nil {
		c.t.Fatal(err)
	}
	return c.call(wire.OpLogin, &wire.Login{Version: wire.ProtocolVersion, Username: id.user, Device: device, Signature: sig})
}

// registered returns a connection of a freshly registered user with n
// one-time prekeys of each kind.
func registered(t testing.TB, ts *testServer, user string, n int) (*client, *identity) {
	t.Helper()
	id := newIdentity(t, user)
	c := dial(t, ts)
	if f := c.register(id, id.keys(t, n, true)); f.Err != nil {
		t.Fatalf("register %s: %v", user, f.Err)
	}
	return c, id
}

// online logs in as device 1 and reads the backlog up to QueueEmpty,
// returning the Deliver requests (not yet acknowledged).
func online(t testing.TB, ts *testServer, id *identity) (*client, []*wire.Frame) {
	t.Helper()
	c := dial(t, ts)
	if f := c.login(id, 1); f.Err != nil {
		t.Fatalf("login %s: %v", id.user, f.Err)
	}
	return c, c.backlog()
}

// backlog reads Deliver requests up to QueueEmpty, skipping other pushes.
func (c *client) backlog() []*wire.Frame {
	c.t.Helper()
	var ds []*wire.Frame
	for {
		f := c.next()
		switch {
		case f.Op == wire.OpQueueEmpty:
			return ds
		case f.Op == wire.OpDeliver && f.Type == wire.TypeRequest:
			ds = append(ds, f)
		}
	}
}

// nextDeliver returns the next Deliver request, skipping pushes.
func (c *client) nextDeliver() *wire.Frame {
	c.t.Helper()
	for {
		f := c.next()
		if f.Op == wire.OpDeliver && f.Type == wire.TypeRequest {
			return f
		}
	}
}

func (c *client) ack(f *wire.Frame) {
	c.t.Helper()
	c.write(&wire.Frame{Type: wire.TypeResponse, ID: f.ID, Op: wire.OpDeliver})
}

// send sends one message to every device of a user that has one device.
func (c *client) send(to string, id parley.MessageID, content string, regID uint32) *wire.Frame {
	c.t.Helper()
	return c.sendAt(to, id, content, regID, time.Now())
}

// sendAt is send with the message's send time: a retry repeats it.
func (c *client) sendAt(to string, id parley.MessageID, content string, regID uint32, sentAt time.Time) *wire.Frame {
	c.t.Helper()
	return c.call(wire.OpSend, &wire.Send{To: parley.UserID(to), ID: id, SentAt: sentAt, Messages: []wire.OutgoingMessage{
		{Device: 1, RegistrationID: regID, Type: parley.EnvelopeSignal, Content: []byte(content)},
	}})
}

// closeStatus waits for the server to close the connection and returns the
// close code, or -1.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.tryRead(15 * time.Second)
		if err == nil {
			continue
		}
		return websocket.CloseStatus(err)
	}
}

func wantErr(t testing.TB, what string, f *wire.Frame, k parley.Kind) {
	t.Helper()
	if f.Err == nil || f.Err.Kind != k {
		t.Errorf("%s: error %+v, want kind %s", what, f.Err, k)
	}
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}
