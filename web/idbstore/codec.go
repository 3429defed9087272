//go:build js && wasm

package idbstore

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"syscall/js"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// This file holds the stored form of the client's values, and the
// encodings that carry them to and from idbstore.js.

// marshalBatch converts b into the argument of idbstore.js's apply.
func marshalBatch(b *client.Batch) js.Value {
	account := js.Null()
	if b.Account != nil {
		account = js.ValueOf(jsonText(newAccountRecord(b.Account)))
	}
	records := js.Global().Get("Array").New(len(b.Records))
	for i, r := range b.Records {
		value := js.Null()
		if r.Value != nil {
			value = js.Global().Get("Uint8Array").New(len(r.Value))
			js.CopyBytesToJS(value, r.Value)
		}
		records.SetIndex(i, map[string]any{"kind": string(r.Kind), "key": r.Key, "value": value})
	}
	msgs := make([]messageRecord, len(b.Messages))
	for i := range b.Messages {
		msgs[i] = newMessageRecord(&b.Messages[i])
	}
	states := make([]stateRecord, len(b.States))
	for i, c := range b.States {
		states[i] = stateRecord{Peer: string(c.Peer), Outgoing: boolInt(c.Outgoing), ID: c.ID.String(), State: uint8(c.State), At: ms(c.At), Error: c.Error}
	}
	return js.ValueOf(map[string]any{
		"account":  account,
		"records":  records,
		"messages": jsonText(msgs),
		"states":   jsonText(states),
	})
}

// jsonText encodes v, a value of the types below, which hold only
// strings, numbers and byte slices and so cannot fail to encode.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("idbstore: " + err.Error())
	}
	return string(b)
}

// accountRecord is the account as stored. Its JSON names are the stored
// field names: never change one. It holds private keys: never log it.
type accountRecord struct {
	Server             string `json:"server"`
	User               string `json:"user"`
	Device             uint32 `json:"device"`
	RegistrationID     uint32 `json:"registration_id"`
	IdentityKey        []byte `json:"identity_key"` // base64; null for nil
	DeviceKey          []byte `json:"device_key"`
	NextPreKeyID       uint32 `json:"next_prekey_id"`
	NextKyberPreKeyID  uint32 `json:"next_kyber_prekey_id"`
	NextSignedPreKeyID uint32 `json:"next_signed_prekey_id"`
	SignedPreKeyID     uint32 `json:"signed_prekey_id"`
	LastResortKyberID  uint32 `json:"last_resort_kyber_id"`
	RotatedAt          int64  `json:"rotated_at"` // Unix ms, 0 for the zero time
	Created            int64  `json:"created"`
}

func newAccountRecord(a *client.Account) accountRecord {
	return accountRecord{
		Server: a.Server, User: string(a.User), Device: uint32(a.Device), RegistrationID: a.RegistrationID,
		IdentityKey: a.IdentityKey, DeviceKey: a.DeviceKey,
		NextPreKeyID: a.NextPreKeyID, NextKyberPreKeyID: a.NextKyberPreKeyID, NextSignedPreKeyID: a.NextSignedPreKeyID,
		SignedPreKeyID: a.SignedPreKeyID, LastResortKyberID: a.LastResortKyberID,
		RotatedAt: ms(a.RotatedAt), Created: ms(a.Created),
	}
}

func (r *accountRecord) account() *client.Account {
	return &client.Account{
		Server: r.Server, User: parley.UserID(r.User), Device: parley.DeviceID(r.Device), RegistrationID: r.RegistrationID,
		IdentityKey: r.IdentityKey, DeviceKey: r.DeviceKey,
		NextPreKeyID: r.NextPreKeyID, NextKyberPreKeyID: r.NextKyberPreKeyID, NextSignedPreKeyID: r.NextSignedPreKeyID,
		SignedPreKeyID: r.SignedPreKeyID, LastResortKyberID: r.LastResortKyberID,
		RotatedAt: fromMS(r.RotatedAt), Created: fromMS(r.Created),
	}
}

// messageRecord is a message as stored in the messages object store. Its
// JSON names are the stored field names: never change one. idbstore.js
// indexes seq, peer, outgoing, id and state, so those are never omitted.
type messageRecord struct {
	Seq        uint64 `json:"seq,omitempty"` // never sent: the key generator sets it on insert
	ID         string `json:"id"`            // hex
	Peer       string `json:"peer"`
	Outgoing   int    `json:"outgoing"` // 0 or 1: booleans are not IndexedDB keys
	FromUser   string `json:"from_user,omitempty"`
	FromDevice uint32 `json:"from_device,omitempty"`
	Notice     bool   `json:"notice,omitempty"`
	Text       string `json:"text"`
	SentAt     int64  `json:"sent_at"` // Unix ms, 0 for the zero time
	At         int64  `json:"at"`
	State      uint8  `json:"state"`
	Error      string `json:"error,omitempty"`
}

func newMessageRecord(m *client.Message) messageRecord {
	return messageRecord{
		ID: m.ID.String(), Peer: string(m.Peer), Outgoing: boolInt(m.Outgoing),
		FromUser: string(m.From.User), FromDevice: uint32(m.From.Device), Notice: m.Notice, Text: m.Text,
		SentAt: ms(m.SentAt), At: ms(m.At), State: uint8(m.State), Error: m.Error,
	}
}

// decodeMessages reads messages in the layout that encodeMessages in
// idbstore.js writes (see there); change the two together.
func decodeMessages(b []byte) ([]client.Message, error) {
	d := decoder{b: b}
	var out []client.Message
	for len(d.b) > 0 && d.err == nil {
		var m client.Message
		m.Seq = uint64(d.float64())
		m.SentAt = fromMS(int64(d.float64()))
		m.At = fromMS(int64(d.float64()))
		m.From.Device = parley.DeviceID(d.uint32())
		m.Outgoing = d.byte() != 0
		m.Notice = d.byte() != 0
		m.State = client.MessageState(d.byte())
		if id := d.bytes(); d.err == nil && (len(id) != 2*len(m.ID) || hexDecode(m.ID[:], id) != nil) {
			d.err = fmt.Errorf("message %d: id %q is not 32 hex digits", m.Seq, id)
		}
		m.Peer = parley.UserID(d.bytes())
		m.From.User = parley.UserID(d.bytes())
		m.Text = string(d.bytes())
		m.Error = string(d.bytes())
		out = append(out, m)
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

func hexDecode(dst, src []byte) error {
	_, err := hex.Decode(dst, src)
	return err
}

// decoder reads little-endian values from b; after the first error, it
// reads zeros.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated message list")

func (d *decoder) next(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = cmp.Or(d.err, errShort)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if v := d.next(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) uint32() uint32 {
	if v := d.next(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) float64() float64 {
	if v := d.next(8); v != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(v))
	}
	return 0
}

// bytes reads a uint32 length and that many bytes.
func (d *decoder) bytes() []byte {
	return d.next(int(d.uint32()))
}

// stateRecord is a client.StateChange on its way to idbstore.js.
type stateRecord struct {
	Peer     string `json:"peer"`
	Outgoing int    `json:"outgoing"`
	ID       string `json:"id"`
	State    uint8  `json:"state"`
	At       int64  `json:"at"`    // 0: keep
	Error    string `json:"error"` // "": keep
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}
