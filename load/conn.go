package load

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

// device is one load device: its credentials and, while connected, its
// WebSocket.
type device struct {
	user     parley.UserID
	id       parley.DeviceID
	regID    uint32
	key      signal.KeyPair // device authentication key
	ws       *websocket.Conn
	nextID   atomic.Uint64
	username string
}

// wsURL turns a server base URL into its WebSocket endpoint.
func wsURL(base string) string {
	u := strings.TrimSuffix(base, "/")
	u = strings.Replace(u, "http://", "ws://", 1)
	u = strings.Replace(u, "https://", "wss://", 1)
	return u + wire.Path
}

// newDevice makes keys for a device that will register as name.
func newDevice(name string, regID uint32) (*device, error) {
	key, err := signal.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	return &device{username: name, regID: regID, key: key}, nil
}

// connect dials the server and reads its Hello.
func (d *device) connect(ctx context.Context, base string) (*wire.Hello, error) {
	ws, _, err := websocket.Dial(ctx, wsURL(base), nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(parley.MaxFrameSize)
	d.ws = ws
	f, err := d.read(ctx)
	if err != nil {
		return nil, err
	}
	h, ok := f.Body.(*wire.Hello)
	if f.Op != wire.OpHello || !ok {
		return nil, fmt.Errorf("load: first frame is %v, not hello", f.Op)
	}
	return h, nil
}

func (d *device) read(ctx context.Context) (*wire.Frame, error) {
	_, b, err := d.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.DecodeFrame(b)
}

func (d *device) write(ctx context.Context, f *wire.Frame) error {
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	return d.ws.Write(ctx, websocket.MessageBinary, b)
}

// call sends a request and waits for its response, ignoring anything else
// that arrives meanwhile. Only for set-up, before the device's reader runs.
func (d *device) call(ctx context.Context, op wire.Op, body any) (*wire.Frame, error) {
	id := d.nextID.Add(1)
	if err := d.write(ctx, &wire.Frame{Type: wire.TypeRequest, ID: id, Op: op, Body: body}); err != nil {
		return nil, err
	}
	for {
		f, err := d.read(ctx)
		if err != nil {
			return nil, err
		}
		if f.Type == wire.TypeResponse && f.ID == id {
			if f.Err != nil {
				return f, f.Err
			}
			return f, nil
		}
	}
}

// register creates the device's account on a fresh connection. The
// connection stays open.
func (d *device) register(ctx context.Context, base string) error {
	h, err := d.connect(ctx, base)
	if err != nil {
		return err
	}
	identity, err := signal.GenerateKeyPair()
	if err != nil {
		return err
	}
	spk, err := signal.GenerateSignedPreKey(identity, 1, time.Now())
	if err != nil {
		return err
	}
	kpk, err := signal.GenerateKyberPreKey(identity, 1, time.Now(), true)
	if err != nil {
		return err
	}
	sig, err := d.key.Private.Sign(wire.AuthPayload(h.Challenge, d.username, 0))
	if err != nil {
		return err
	}
	f, err := d.call(ctx, wire.OpRegister, &wire.Register{
		Version:        wire.ProtocolVersion,
		Username:       d.username,
		DeviceKey:      d.key.Public.Bytes(),
		Signature:      sig,
		IdentityKey:    identity.Public.Bytes(),
		RegistrationID: d.regID,
		Keys: wire.UploadKeys{
			SignedPreKey:    &wire.SignedPreKey{ID: spk.ID, Key: spk.Key.Public.Bytes(), Signature: spk.Signature},
			LastResortKyber: &wire.KyberPreKey{ID: kpk.ID, Key: kpk.Key.Public.Bytes(), Signature: kpk.Signature},
		},
	})
	if err != nil {
		return fmt.Errorf("register %s: %w", d.username, err)
	}
	s, ok := f.Body.(*wire.Session)
	if !ok {
		return fmt.Errorf("register %s: answer has no session", d.username)
	}
	d.user, d.id = s.User, s.Device
	return nil
}

// login authenticates a registered device on a fresh connection.
func (d *device) login(ctx context.Context, base string) error {
	h, err := d.connect(ctx, base)
	if err != nil {
		return err
	}
	sig, err := d.key.Private.Sign(wire.AuthPayload(h.Challenge, string(d.user), d.id))
	if err != nil {
		return err
	}
	_, err = d.call(ctx, wire.OpLogin, &wire.Login{Version: wire.ProtocolVersion, Username: string(d.user), Device: d.id, Signature: sig})
	if err != nil {
		return fmt.Errorf("login %s: %w", d.user, err)
	}
	return nil
}

func (d *device) close() {
	if d.ws != nil {
		d.ws.Close(websocket.StatusNormalClosure, "")
		d.ws = nil
	}
}
