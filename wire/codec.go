package wire

// The binary encoding of frames.
//
// A frame is encoded in the protocol-buffers wire format (varints, tags and
// length-delimited fields; https://protobuf.dev/programming-guides/encoding/),
// written and read by hand with protowire: no generated code, no reflection.
// Any protobuf library can read it with the schema below; unknown fields are
// skipped, so fields may be added without a ProtocolVersion bump. Field
// numbers are never reused.
//
// Conventions: integers are varints; a time is sint64 (zigzag) Unix
// milliseconds, absent when the time is zero; a MessageID is 16 bytes, the
// Hello challenge 32; a field holding its zero value (0, "", empty bytes,
// zero time) is omitted. Lists of device ids are packed varints.
//
//	Frame           1 type (FrameType)  2 id  3 op (Op)
//	                4 err (Error)       5 body (the message of Op, see the Op constants)
//	Error           1 kind (string)     2 message (string)
//	Hello           1 version  2 challenge (32 bytes)  3 server_time
//	Register        1 version  2 username  3 device_key  4 signature
//	                5 identity_key  6 registration_id  7 keys (UploadKeys)
//	Login           1 version  2 username  3 device  4 signature
//	Session         1 user  2 device  3 counts (KeyCounts)
//	SignedPreKey    1 id  2 key  3 signature
//	PreKey          1 id  2 key
//	KyberPreKey     1 id  2 key  3 signature
//	UploadKeys      1 signed_prekey (SignedPreKey)  2 last_resort_kyber (KyberPreKey)
//	                3 prekeys (repeated PreKey)     4 kyber_prekeys (repeated KyberPreKey)
//	GetKeyCounts    (no fields)
//	KeyCounts       1 prekeys  2 kyber_prekeys
//	GetBundles      1 user  2 device
//	Bundles         1 identity_key  2 devices (repeated Bundle)
//	Bundle          1 device  2 registration_id  3 signed_prekey (SignedPreKey)
//	                4 prekey (PreKey, absent when none)  5 kyber_prekey (KyberPreKey)
//	Send            1 to  2 id (16 bytes)  3 sent_at  4 messages (repeated OutgoingMessage)
//	OutgoingMessage 1 device  2 registration_id  3 type (EnvelopeType)  4 content
//	SendResult      1 server_at
//	StaleDevices    1 missing  2 extra  3 stale (each packed repeated device)
//	Deliver         1 envelope (Envelope)
//	Envelope        1 id (16 bytes)  2 from_user  3 from_device  4 to_user
//	                5 to_device  6 type  7 content  8 sent_at  9 server_seq  10 server_at
//	QueueEmpty      (no fields)
//	Ping            1 nonce
//	GetTURNCredentials (no fields)
//	TURNCredentials 1 username  2 password  3 ttl_seconds  4 urls (repeated string)
//	GetTunnelTicket (no fields)
//	TunnelTicket    1 ticket  2 ttl_seconds  3 urls (repeated string)
//	                4 cert_hashes (repeated bytes)
//
// The body of a request or push is the message listed beside its Op; the
// body of a successful response is the Op's result message (none for
// OpDeliver). A failed response carries err and, only for
// parley.KindStaleDevices, a StaleDevices body.
//
// Limits enforced by both encoder and decoder: a frame is at most
// parley.MaxFrameSize bytes, an envelope's content at most
// parley.MaxMessageSize, an upload at most parley.MaxPreKeysPerUpload keys per
// list, and device lists (Send, Bundles, StaleDevices) at most
// parley.MaxDevicesPerUser entries; TURNCredentials and TunnelTicket at most
// MaxTURNURLs URLs, TunnelTicket at most MaxCertHashes hashes.

import (
	"math"
	"time"

	"github.com/parleychat/parley"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of Frame.
const (
	frameType protowire.Number = 1
	frameID   protowire.Number = 2
	frameOp   protowire.Number = 3
	frameErr  protowire.Number = 4
	frameBody protowire.Number = 5
)

// ops describes each Op: its name, and the bodies of its request (or push)
// and of its successful response. Add a row with every new Op.
var ops = [...]struct {
	name     string
	request  bodyKind
	response bodyKind
}{
	OpHello:      {"hello", bHello, bNone},
	OpRegister:   {"register", bRegister, bSession},
	OpLogin:      {"login", bLogin, bSession},
	OpUploadKeys: {"upload_keys", bUploadKeys, bKeyCounts},
	OpGetBundles: {"get_bundles", bGetBundles, bBundles},
	OpKeyCounts:  {"key_counts", bGetKeyCounts, bKeyCounts},
	OpSend:       {"send", bSend, bSendResult},
	OpDeliver:    {"deliver", bDeliver, bNone},
	OpQueueEmpty: {"queue_empty", bQueueEmpty, bNone},
	OpLowKeys:    {"low_keys", bKeyCounts, bNone},
	OpPing:       {"ping", bPing, bPing},

	OpTURNCredentials: {"turn_credentials", bGetTURNCredentials, bTURNCredentials},
	OpTunnelTicket:    {"tunnel_ticket", bGetTunnelTicket, bTunnelTicket},
}

// Known reports whether op is an operation of this protocol version.
func (op Op) Known() bool { return int(op) < len(ops) && ops[op].name != "" }

func (op Op) String() string {
	if op.Known() {
		return ops[op].name
	}
	return "op(" + itoa(uint64(op)) + ")"
}

func (t FrameType) String() string {
	switch t {
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypePush:
		return "push"
	}
	return "type(" + itoa(uint64(t)) + ")"
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

// bodyKind names the Go type of a frame body.
type bodyKind uint8

const (
	bNone bodyKind = iota
	bHello
	bRegister
	bLogin
	bSession
	bUploadKeys
	bKeyCounts
	bGetKeyCounts
	bGetBundles
	bBundles
	bSend
	bSendResult
	bStaleDevices
	bDeliver
	bQueueEmpty
	bPing
	bGetTURNCredentials
	bTURNCredentials
	bGetTunnelTicket
	bTunnelTicket
	bOther // a type that is no body
)

var bodyNames = [...]string{
	bNone: "no body", bHello: "*wire.Hello", bRegister: "*wire.Register",
	bLogin: "*wire.Login", bSession: "*wire.Session", bUploadKeys: "*wire.UploadKeys",
	bKeyCounts: "*wire.KeyCounts", bGetKeyCounts: "*wire.GetKeyCounts",
	bGetBundles: "*wire.GetBundles", bBundles: "*wire.Bundles", bSend: "*wire.Send",
	bSendResult: "*wire.SendResult", bStaleDevices: "*wire.StaleDevices",
	bDeliver: "*wire.Deliver", bQueueEmpty: "*wire.QueueEmpty", bPing: "*wire.Ping",
	bGetTURNCredentials: "*wire.GetTURNCredentials", bTURNCredentials: "*wire.TURNCredentials",
	bGetTunnelTicket: "*wire.GetTunnelTicket", bTunnelTicket: "*wire.TunnelTicket",
	bOther: "an unknown type",
}

func kindOf(body any) bodyKind {
	switch body.(type) {
	case nil:
		return bNone
	case *Hello:
		return bHello
	case *Register:
		return bRegister
	case *Login:
		return bLogin
	case *Session:
		return bSession
	case *UploadKeys:
		return bUploadKeys
	case *KeyCounts:
		return bKeyCounts
	case *GetKeyCounts:
		return bGetKeyCounts
	case *GetBundles:
		return bGetBundles
	case *Bundles:
		return bBundles
	case *Send:
		return bSend
	case *SendResult:
		return bSendResult
	case *StaleDevices:
		return bStaleDevices
	case *Deliver:
		return bDeliver
	case *QueueEmpty:
		return bQueueEmpty
	case *Ping:
		return bPing
	case *GetTURNCredentials:
		return bGetTURNCredentials
	case *TURNCredentials:
		return bTURNCredentials
	case *GetTunnelTicket:
		return bGetTunnelTicket
	case *TunnelTicket:
		return bTunnelTicket
	}
	return bOther
}

// expectedBody returns the body kind a frame of this type, op and error
// carries.
func expectedBody(t FrameType, op Op, errKind parley.Kind, hasErr bool) (bodyKind, error) {
	switch t {
	case TypeRequest, TypePush:
	case TypeResponse:
		if hasErr {
			if errKind == parley.KindStaleDevices {
				return bStaleDevices, nil
			}
			return bNone, nil
		}
	default:
		return 0, parley.Errorf(parley.KindInvalid, "wire: frame type %d is not request, response or push", t)
	}
	if !op.Known() {
		return 0, parley.Errorf(parley.KindUnsupported, "wire: unsupported operation %d", op)
	}
	if t == TypeResponse {
		return ops[op].response, nil
	}
	return ops[op].request, nil
}

// MarshalBinary encodes f. It fails with KindInvalid when f's Body does not
// match its Type and Op, and with KindTooLarge when f breaks a size limit.
func (f *Frame) MarshalBinary() ([]byte, error) {
	return f.AppendBinary(make([]byte, 0, sizeHint(f.Body)))
}

// AppendBinary appends the encoding of f to b (see MarshalBinary). On error
// it returns b unchanged.
func (f *Frame) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	var kind parley.Kind
	if f.Err != nil {
		kind = f.Err.Kind
	}
	want, err := expectedBody(f.Type, f.Op, kind, f.Err != nil)
	if err != nil {
		return b, err
	}
	if f.Type == TypeResponse && f.Err != nil && f.Body == nil {
		want = bNone // a StaleDevices body is optional
	}
	if got := kindOf(f.Body); got != want && !(got == bNone && f.Type != TypeResponse) {
		return b, parley.Errorf(parley.KindInvalid, "wire: %s %s frame with body %s, want %s", f.Op, f.Type, bodyNames[got], bodyNames[want])
	}
	if err := checkLimits(f.Body); err != nil {
		return b, err
	}
	b = appendVarint(b, frameType, uint64(f.Type))
	b = appendVarint(b, frameID, f.ID)
	b = appendVarint(b, frameOp, uint64(f.Op))
	if f.Err != nil {
		m := beginMessage(b, frameErr)
		b = appendString(m.b, 1, string(f.Err.Kind))
		b = appendString(b, 2, f.Err.Message)
		b = m.end(b)
	}
	if f.Body != nil {
		m := beginMessage(b, frameBody)
		b = appendBody(m.b, f.Body)
		b = m.end(b)
	}
	if n := len(b) - start; n > parley.MaxFrameSize {
		return b[:start], parley.Errorf(parley.KindTooLarge, "wire: %s frame of %d bytes is over the limit of %d", f.Op, n, parley.MaxFrameSize)
	}
	return b, nil
}

// checkLimits applies the limits that the decoder enforces, so that a peer
// learns of a mistake before sending.
func checkLimits(body any) error {
	switch m := body.(type) {
	case *Deliver:
		return checkContent(len(m.Envelope.Content))
	case *Send:
		if len(m.Messages) > parley.MaxDevicesPerUser {
			return tooMany("Send.Messages", parley.MaxDevicesPerUser)
		}
		for i := range m.Messages {
			if err := checkContent(len(m.Messages[i].Content)); err != nil {
				return err
			}
		}
	case *Register:
		return checkLimits(&m.Keys)
	case *UploadKeys:
		if len(m.PreKeys) > parley.MaxPreKeysPerUpload {
			return tooMany("UploadKeys.PreKeys", parley.MaxPreKeysPerUpload)
		}
		if len(m.KyberPreKeys) > parley.MaxPreKeysPerUpload {
			return tooMany("UploadKeys.KyberPreKeys", parley.MaxPreKeysPerUpload)
		}
	case *Bundles:
		if len(m.Devices) > parley.MaxDevicesPerUser {
			return tooMany("Bundles.Devices", parley.MaxDevicesPerUser)
		}
	case *StaleDevices:
		if len(m.Missing) > parley.MaxDevicesPerUser || len(m.Extra) > parley.MaxDevicesPerUser || len(m.Stale) > parley.MaxDevicesPerUser {
			return tooMany("StaleDevices lists", parley.MaxDevicesPerUser)
		}
	case *TURNCredentials:
		if len(m.URLs) > MaxTURNURLs {
			return tooMany("TURNCredentials.URLs", MaxTURNURLs)
		}
	case *TunnelTicket:
		if len(m.URLs) > MaxTURNURLs {
			return tooMany("TunnelTicket.URLs", MaxTURNURLs)
		}
		if len(m.CertHashes) > MaxCertHashes {
			return tooMany("TunnelTicket.CertHashes", MaxCertHashes)
		}
	}
	return nil
}

func checkContent(n int) error {
	if n > parley.MaxMessageSize {
		return parley.Errorf(parley.KindTooLarge, "wire: message content of %d bytes is over the limit of %d", n, parley.MaxMessageSize)
	}
	return nil
}

func tooMany(what string, max int) error {
	return parley.Errorf(parley.KindTooLarge, "wire: %s holds more than %d entries", what, max)
}

// decodeRepeated decodes the field r is on as one more element of the
// repeated message field *list, refusing more than max elements.
func decodeRepeated[T any, P interface {
	*T
	decode([]byte) error
}](r *reader, list *[]T, max int, name string) error {
	if len(*list) >= max {
		return tooMany(name, max)
	}
	var v T
	if b := r.bytes(); r.err == nil {
		r.err = P(&v).decode(b)
	}
	*list = append(*list, v)
	return nil
}

// sizeHint guesses the encoded size of a frame with this body, so that
// MarshalBinary allocates once.
func sizeHint(body any) int {
	const base = 64
	switch m := body.(type) {
	case *Deliver:
		return base + 96 + len(m.Envelope.Content)
	case *Send:
		n := base + 32
		for i := range m.Messages {
			n += 24 + len(m.Messages[i].Content)
		}
		return n
	case *Register:
		return base + 160 + uploadHint(&m.Keys)
	case *UploadKeys:
		return base + uploadHint(m)
	case *Bundles:
		return base + len(m.Devices)*1800
	}
	return base + 64
}

func uploadHint(m *UploadKeys) int {
	n := 1800 + 120
	n += len(m.PreKeys) * 45
	n += len(m.KyberPreKeys) * 1650
	return n
}

// Encoding helpers.

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(t.UnixMilli()))
}

func appendDevices(b []byte, num protowire.Number, ds []parley.DeviceID) []byte {
	if len(ds) == 0 {
		return b
	}
	m := beginMessage(b, num)
	b = m.b
	for _, d := range ds {
		b = protowire.AppendVarint(b, uint64(d))
	}
	return m.end(b)
}

// nested is a length-delimited field being written: beginMessage reserves
// one byte for the length, end fills it in and, for bodies of 128 bytes or
// more, moves the body up to make room for a longer varint. A move costs
// less than computing every size twice.
type nested struct {
	b     []byte
	start int // index of the reserved length byte
}

func beginMessage(b []byte, num protowire.Number) nested {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return nested{b: append(b, 0), start: len(b)}
}

func (m nested) end(b []byte) []byte {
	n := len(b) - m.start - 1
	if n < 0x80 {
		b[m.start] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	var pad [9]byte
	b = append(b, pad[:extra]...)
	copy(b[m.start+1+extra:], b[m.start+1:m.start+1+n])
	protowire.AppendVarint(b[m.start:m.start], uint64(n))
	return b
}

func appendBody(b []byte, body any) []byte {
	switch m := body.(type) {
	case *Hello:
		b = appendVarint(b, 1, uint64(m.Version))
		if m.Challenge != ([32]byte{}) {
			b = appendBytes(b, 2, m.Challenge[:])
		}
		b = appendTime(b, 3, m.ServerTime)
	case *Register:
		b = appendVarint(b, 1, uint64(m.Version))
		b = appendString(b, 2, m.Username)
		b = appendBytes(b, 3, m.DeviceKey)
		b = appendBytes(b, 4, m.Signature)
		b = appendBytes(b, 5, m.IdentityKey)
		b = appendVarint(b, 6, uint64(m.RegistrationID))
		if !m.Keys.empty() {
			n := beginMessage(b, 7)
			b = n.end(m.Keys.append(n.b))
		}
	case *Login:
		b = appendVarint(b, 1, uint64(m.Version))
		b = appendString(b, 2, m.Username)
		b = appendVarint(b, 3, uint64(m.Device))
		b = appendBytes(b, 4, m.Signature)
	case *Session:
		b = appendString(b, 1, string(m.User))
		b = appendVarint(b, 2, uint64(m.Device))
		if m.Counts != (KeyCounts{}) {
			n := beginMessage(b, 3)
			b = n.end(m.Counts.append(n.b))
		}
	case *UploadKeys:
		b = m.append(b)
	case *KeyCounts:
		b = m.append(b)
	case *GetKeyCounts, *QueueEmpty, *GetTURNCredentials, *GetTunnelTicket:
	case *GetBundles:
		b = appendString(b, 1, string(m.User))
		b = appendVarint(b, 2, uint64(m.Device))
	case *Bundles:
		b = appendBytes(b, 1, m.IdentityKey)
		for i := range m.Devices {
			n := beginMessage(b, 2)
			b = n.end(m.Devices[i].append(n.b))
		}
	case *Send:
		b = appendString(b, 1, string(m.To))
		if m.ID != (parley.MessageID{}) {
			b = appendBytes(b, 2, m.ID[:])
		}
		b = appendTime(b, 3, m.SentAt)
		for i := range m.Messages {
			o := &m.Messages[i]
			n := beginMessage(b, 4)
			b = n.b
			b = appendVarint(b, 1, uint64(o.Device))
			b = appendVarint(b, 2, uint64(o.RegistrationID))
			b = appendVarint(b, 3, uint64(o.Type))
			b = appendBytes(b, 4, o.Content)
			b = n.end(b)
		}
	case *SendResult:
		b = appendTime(b, 1, m.ServerAt)
	case *StaleDevices:
		b = appendDevices(b, 1, m.Missing)
		b = appendDevices(b, 2, m.Extra)
		b = appendDevices(b, 3, m.Stale)
	case *Deliver:
		n := beginMessage(b, 1)
		b = n.end(appendEnvelope(n.b, &m.Envelope))
	case *Ping:
		b = appendVarint(b, 1, m.Nonce)
	case *TURNCredentials:
		b = appendString(b, 1, m.Username)
		b = appendString(b, 2, m.Password)
		b = appendVarint(b, 3, uint64(m.TTLSeconds))
		for _, u := range m.URLs { // every element, even an empty one
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			b = protowire.AppendString(b, u)
		}
	case *TunnelTicket:
		b = appendString(b, 1, m.Ticket)
		b = appendVarint(b, 2, uint64(m.TTLSeconds))
		for _, u := range m.URLs {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendString(b, u)
		}
		for _, h := range m.CertHashes {
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			b = protowire.AppendBytes(b, h)
		}
	}
	return b
}

func (m *UploadKeys) empty() bool {
	return m.SignedPreKey == nil && m.LastResortKyber == nil && len(m.PreKeys) == 0 && len(m.KyberPreKeys) == 0
}

func (m *UploadKeys) append(b []byte) []byte {
	if m.SignedPreKey != nil {
		n := beginMessage(b, 1)
		b = n.end(m.SignedPreKey.append(n.b))
	}
	if m.LastResortKyber != nil {
		n := beginMessage(b, 2)
		b = n.end(m.LastResortKyber.append(n.b))
	}
	for i := range m.PreKeys {
		n := beginMessage(b, 3)
		b = n.end(m.PreKeys[i].append(n.b))
	}
	for i := range m.KyberPreKeys {
		n := beginMessage(b, 4)
		b = n.end(m.KyberPreKeys[i].append(n.b))
	}
	return b
}

func (m *SignedPreKey) append(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.ID))
	b = appendBytes(b, 2, m.Key)
	return appendBytes(b, 3, m.Signature)
}

func (m *PreKey) append(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.ID))
	return appendBytes(b, 2, m.Key)
}

func (m *KyberPreKey) append(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.ID))
	b = appendBytes(b, 2, m.Key)
	return appendBytes(b, 3, m.Signature)
}

func (m *KeyCounts) append(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.PreKeys))
	return appendVarint(b, 2, uint64(m.KyberPreKeys))
}

func (m *Bundle) append(b []byte) []byte {
	b = appendVarint(b, 1, uint64(m.Device))
	b = appendVarint(b, 2, uint64(m.RegistrationID))
	n := beginMessage(b, 3)
	b = n.end(m.SignedPreKey.append(n.b))
	if m.PreKey != nil {
		n := beginMessage(b, 4)
		b = n.end(m.PreKey.append(n.b))
	}
	n = beginMessage(b, 5)
	return n.end(m.KyberPreKey.append(n.b))
}

func appendEnvelope(b []byte, e *parley.Envelope) []byte {
	if e.ID != (parley.MessageID{}) {
		b = appendBytes(b, 1, e.ID[:])
	}
	b = appendString(b, 2, string(e.From.User))
	b = appendVarint(b, 3, uint64(e.From.Device))
	b = appendString(b, 4, string(e.To.User))
	b = appendVarint(b, 5, uint64(e.To.Device))
	b = appendVarint(b, 6, uint64(e.Type))
	b = appendBytes(b, 7, e.Content)
	b = appendTime(b, 8, e.SentAt)
	b = appendVarint(b, 9, e.ServerSeq)
	return appendTime(b, 10, e.ServerAt)
}

// DecodeFrame decodes one frame. It does not retain b: the frame's byte
// slices share one copy of it.
//
// A frame over parley.MaxFrameSize, or a body over one of the limits in the
// package doc, is a KindTooLarge error; an unknown Op is KindUnsupported;
// anything else malformed is KindInvalid. On error the returned Frame, when
// not nil, holds the header fields (Type, ID, Op) that were read, so that a
// bad request can still be answered by its ID; its Body is nil.
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) > parley.MaxFrameSize {
		return nil, parley.Errorf(parley.KindTooLarge, "wire: frame of %d bytes is over the limit of %d", len(b), parley.MaxFrameSize)
	}
	f := new(Frame)
	var errField, body []byte
	var hasErr, hasBody bool
	r := reader{b: b, msg: "Frame"}
	for r.next() {
		switch r.num {
		case frameType:
			if v := r.varint(); v > math.MaxUint8 {
				r.outOfRange()
			} else {
				f.Type = FrameType(v)
			}
		case frameID:
			f.ID = r.varint()
		case frameOp:
			if v := r.varint(); v > math.MaxUint16 {
				r.outOfRange()
			} else {
				f.Op = Op(v)
			}
		case frameErr:
			errField, hasErr = r.bytes(), true
		case frameBody:
			body, hasBody = r.bytes(), true
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return f, r.err
	}
	if hasErr {
		e, err := decodeError(errField)
		if err != nil {
			return f, err
		}
		f.Err = e
	}
	var kind parley.Kind
	if f.Err != nil {
		kind = f.Err.Kind
	}
	want, err := expectedBody(f.Type, f.Op, kind, hasErr)
	if err != nil {
		return f, err
	}
	if hasErr && (want == bNone || !hasBody) {
		return f, nil // a body on other errors is ignored, for kinds yet to come
	}
	if want == bNone {
		if hasBody && len(body) > 0 {
			return f, parley.Errorf(parley.KindInvalid, "wire: %s %s frame carries a body it should not have", f.Op, f.Type)
		}
		return f, nil
	}
	// One copy of the body; every byte slice decoded from it points into it.
	body = append([]byte(nil), body...)
	v, err := decodeBody(want, body)
	if err != nil {
		return f, err
	}
	f.Body = v
	return f, nil
}

func decodeError(b []byte) (*parley.Error, error) {
	e := new(parley.Error)
	r := reader{b: b, msg: "Error"}
	for r.next() {
		switch r.num {
		case 1:
			e.Kind = parley.Kind(r.string())
		case 2:
			e.Message = r.string()
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if e.Kind == "" {
		return nil, parley.Errorf(parley.KindInvalid, "wire: malformed Error: no kind")
	}
	return e, nil
}

func decodeBody(k bodyKind, b []byte) (any, error) {
	switch k {
	case bHello:
		m := new(Hello)
		return m, m.decode(b)
	case bRegister:
		m := new(Register)
		return m, m.decode(b)
	case bLogin:
		m := new(Login)
		return m, m.decode(b)
	case bSession:
		m := new(Session)
		return m, m.decode(b)
	case bUploadKeys:
		m := new(UploadKeys)
		return m, m.decode(b)
	case bKeyCounts:
		m := new(KeyCounts)
		return m, m.decode(b)
	case bGetKeyCounts:
		return new(GetKeyCounts), skipAll(b, "GetKeyCounts")
	case bGetBundles:
		m := new(GetBundles)
		return m, m.decode(b)
	case bBundles:
		m := new(Bundles)
		return m, m.decode(b)
	case bSend:
		m := new(Send)
		return m, m.decode(b)
	case bSendResult:
		m := new(SendResult)
		return m, m.decode(b)
	case bStaleDevices:
		m := new(StaleDevices)
		return m, m.decode(b)
	case bDeliver:
		m := new(Deliver)
		return m, m.decode(b)
	case bQueueEmpty:
		return new(QueueEmpty), skipAll(b, "QueueEmpty")
	case bPing:
		m := new(Ping)
		return m, m.decode(b)
	case bGetTURNCredentials:
		return new(GetTURNCredentials), skipAll(b, "GetTURNCredentials")
	case bTURNCredentials:
		m := new(TURNCredentials)
		return m, m.decode(b)
	case bGetTunnelTicket:
		return new(GetTunnelTicket), skipAll(b, "GetTunnelTicket")
	case bTunnelTicket:
		m := new(TunnelTicket)
		return m, m.decode(b)
	}
	return nil, parley.Errorf(parley.KindInternal, "wire: no decoder for body kind %d", k)
}

// reader walks the fields of one message. The first error stops it and is
// kept in err; the accessors then return zero values.
type reader struct {
	b   []byte
	msg string // the message's name, for errors
	num protowire.Number
	typ protowire.Type
	err error
}

func (r *reader) next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.fail(n)
		return false
	}
	r.b = r.b[n:]
	r.num, r.typ = num, typ
	return true
}

func (r *reader) fail(n int) {
	if r.err == nil {
		r.err = parley.Errorf(parley.KindInvalid, "wire: malformed %s field %d: %v", r.msg, r.num, protowire.ParseError(n))
	}
}

func (r *reader) invalid(format string, args ...any) {
	if r.err == nil {
		r.err = parley.Errorf(parley.KindInvalid, "wire: malformed %s field %d: "+format, append([]any{r.msg, r.num}, args...)...)
	}
}

func (r *reader) outOfRange() { r.invalid("value out of range") }

func (r *reader) wrongType(want protowire.Type) bool {
	if r.typ == want {
		return false
	}
	r.invalid("wire type %d, want %d", r.typ, want)
	return true
}

func (r *reader) varint() uint64 {
	if r.wrongType(protowire.VarintType) {
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.fail(n)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint32() uint32 {
	v := r.varint()
	if v > math.MaxUint32 {
		r.outOfRange()
		return 0
	}
	return uint32(v)
}

func (r *reader) device() parley.DeviceID { return parley.DeviceID(r.uint32()) }

func (r *reader) time() time.Time {
	v := protowire.DecodeZigZag(r.varint())
	if r.err != nil {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// bytes returns the field's bytes, capped so that an append by the caller
// cannot overwrite what follows.
func (r *reader) bytes() []byte {
	if r.wrongType(protowire.BytesType) {
		return nil
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.fail(n)
		return nil
	}
	r.b = r.b[n:]
	if len(v) == 0 {
		return nil
	}
	return v[:len(v):len(v)]
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) fixed(dst []byte) {
	v := r.bytes()
	if r.err != nil {
		return
	}
	if len(v) != len(dst) {
		r.invalid("%d bytes, want %d", len(v), len(dst))
		return
	}
	copy(dst, v)
}

// sub returns a reader of the nested message in the current field.
func (r *reader) sub(msg string) reader {
	return reader{b: r.bytes(), msg: msg, err: r.err}
}

// done hands a nested reader's error back to its parent.
func (r *reader) done(sub *reader) {
	if r.err == nil {
		r.err = sub.err
	}
}

func (r *reader) devices(dst *[]parley.DeviceID, list string) {
	add := func(v uint64) {
		if v > math.MaxUint32 {
			r.outOfRange()
			return
		}
		if len(*dst) >= parley.MaxDevicesPerUser {
			if r.err == nil {
				r.err = tooMany(r.msg+"."+list, parley.MaxDevicesPerUser)
			}
			return
		}
		*dst = append(*dst, parley.DeviceID(v))
	}
	if r.typ == protowire.VarintType { // unpacked
		add(r.varint())
		return
	}
	b := r.bytes()
	for len(b) > 0 && r.err == nil {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			r.fail(n)
			return
		}
		b = b[n:]
		add(v)
	}
}

func (r *reader) skip() {
	n := protowire.ConsumeFieldValue(r.num, r.typ, r.b)
	if n < 0 {
		r.fail(n)
		return
	}
	r.b = r.b[n:]
}

func skipAll(b []byte, msg string) error {
	r := reader{b: b, msg: msg}
	for r.next() {
		r.skip()
	}
	return r.err
}

func (m *Hello) decode(b []byte) error {
	r := reader{b: b, msg: "Hello"}
	for r.next() {
		switch r.num {
		case 1:
			m.Version = r.uint32()
		case 2:
			r.fixed(m.Challenge[:])
		case 3:
			m.ServerTime = r.time()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Register) decode(b []byte) error {
	r := reader{b: b, msg: "Register"}
	for r.next() {
		switch r.num {
		case 1:
			m.Version = r.uint32()
		case 2:
			m.Username = r.string()
		case 3:
			m.DeviceKey = r.bytes()
		case 4:
			m.Signature = r.bytes()
		case 5:
			m.IdentityKey = r.bytes()
		case 6:
			m.RegistrationID = r.uint32()
		case 7:
			if v := r.bytes(); r.err == nil {
				r.err = m.Keys.decode(v)
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Login) decode(b []byte) error {
	r := reader{b: b, msg: "Login"}
	for r.next() {
		switch r.num {
		case 1:
			m.Version = r.uint32()
		case 2:
			m.Username = r.string()
		case 3:
			m.Device = r.device()
		case 4:
			m.Signature = r.bytes()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Session) decode(b []byte) error {
	r := reader{b: b, msg: "Session"}
	for r.next() {
		switch r.num {
		case 1:
			m.User = parley.UserID(r.string())
		case 2:
			m.Device = r.device()
		case 3:
			if v := r.bytes(); r.err == nil {
				r.err = m.Counts.decode(v)
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *UploadKeys) decode(b []byte) error {
	r := reader{b: b, msg: "UploadKeys"}
	for r.next() {
		switch r.num {
		case 1:
			m.SignedPreKey = new(SignedPreKey)
			if v := r.bytes(); r.err == nil {
				r.err = m.SignedPreKey.decode(v)
			}
		case 2:
			m.LastResortKyber = new(KyberPreKey)
			if v := r.bytes(); r.err == nil {
				r.err = m.LastResortKyber.decode(v)
			}
		case 3:
			if err := decodeRepeated(&r, &m.PreKeys, parley.MaxPreKeysPerUpload, "UploadKeys.PreKeys"); err != nil {
				return err
			}
		case 4:
			if err := decodeRepeated(&r, &m.KyberPreKeys, parley.MaxPreKeysPerUpload, "UploadKeys.KyberPreKeys"); err != nil {
				return err
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *SignedPreKey) decode(b []byte) error {
	r := reader{b: b, msg: "SignedPreKey"}
	for r.next() {
		switch r.num {
		case 1:
			m.ID = r.uint32()
		case 2:
			m.Key = r.bytes()
		case 3:
			m.Signature = r.bytes()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *PreKey) decode(b []byte) error {
	r := reader{b: b, msg: "PreKey"}
	for r.next() {
		switch r.num {
		case 1:
			m.ID = r.uint32()
		case 2:
			m.Key = r.bytes()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *KyberPreKey) decode(b []byte) error {
	r := reader{b: b, msg: "KyberPreKey"}
	for r.next() {
		switch r.num {
		case 1:
			m.ID = r.uint32()
		case 2:
			m.Key = r.bytes()
		case 3:
			m.Signature = r.bytes()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *KeyCounts) decode(b []byte) error {
	r := reader{b: b, msg: "KeyCounts"}
	for r.next() {
		switch r.num {
		case 1:
			m.PreKeys = r.uint32()
		case 2:
			m.KyberPreKeys = r.uint32()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *GetBundles) decode(b []byte) error {
	r := reader{b: b, msg: "GetBundles"}
	for r.next() {
		switch r.num {
		case 1:
			m.User = parley.UserID(r.string())
		case 2:
			m.Device = r.device()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Bundles) decode(b []byte) error {
	r := reader{b: b, msg: "Bundles"}
	for r.next() {
		switch r.num {
		case 1:
			m.IdentityKey = r.bytes()
		case 2:
			if err := decodeRepeated(&r, &m.Devices, parley.MaxDevicesPerUser, "Bundles.Devices"); err != nil {
				return err
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Bundle) decode(b []byte) error {
	r := reader{b: b, msg: "Bundle"}
	for r.next() {
		switch r.num {
		case 1:
			m.Device = r.device()
		case 2:
			m.RegistrationID = r.uint32()
		case 3:
			if v := r.bytes(); r.err == nil {
				r.err = m.SignedPreKey.decode(v)
			}
		case 4:
			m.PreKey = new(PreKey)
			if v := r.bytes(); r.err == nil {
				r.err = m.PreKey.decode(v)
			}
		case 5:
			if v := r.bytes(); r.err == nil {
				r.err = m.KyberPreKey.decode(v)
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Send) decode(b []byte) error {
	r := reader{b: b, msg: "Send"}
	for r.next() {
		switch r.num {
		case 1:
			m.To = parley.UserID(r.string())
		case 2:
			r.fixed(m.ID[:])
		case 3:
			m.SentAt = r.time()
		case 4:
			if len(m.Messages) >= parley.MaxDevicesPerUser {
				return tooMany("Send.Messages", parley.MaxDevicesPerUser)
			}
			if m.Messages == nil {
				m.Messages = make([]OutgoingMessage, 0, 2)
			}
			var o OutgoingMessage
			s := r.sub("OutgoingMessage")
			for s.next() {
				switch s.num {
				case 1:
					o.Device = s.device()
				case 2:
					o.RegistrationID = s.uint32()
				case 3:
					if v := s.varint(); v > math.MaxUint8 {
						s.outOfRange()
					} else {
						o.Type = parley.EnvelopeType(v)
					}
				case 4:
					o.Content = s.bytes()
					if s.err == nil {
						s.err = checkContent(len(o.Content))
					}
				default:
					s.skip()
				}
			}
			r.done(&s)
			m.Messages = append(m.Messages, o)
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *SendResult) decode(b []byte) error {
	r := reader{b: b, msg: "SendResult"}
	for r.next() {
		switch r.num {
		case 1:
			m.ServerAt = r.time()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *StaleDevices) decode(b []byte) error {
	r := reader{b: b, msg: "StaleDevices"}
	for r.next() {
		switch r.num {
		case 1:
			r.devices(&m.Missing, "Missing")
		case 2:
			r.devices(&m.Extra, "Extra")
		case 3:
			r.devices(&m.Stale, "Stale")
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *Deliver) decode(b []byte) error {
	r := reader{b: b, msg: "Deliver"}
	for r.next() {
		switch r.num {
		case 1:
			s := r.sub("Envelope")
			decodeEnvelope(&s, &m.Envelope)
			r.done(&s)
		default:
			r.skip()
		}
	}
	return r.err
}

func decodeEnvelope(r *reader, e *parley.Envelope) {
	for r.next() {
		switch r.num {
		case 1:
			r.fixed(e.ID[:])
		case 2:
			e.From.User = parley.UserID(r.string())
		case 3:
			e.From.Device = r.device()
		case 4:
			e.To.User = parley.UserID(r.string())
		case 5:
			e.To.Device = r.device()
		case 6:
			if v := r.varint(); v > math.MaxUint8 {
				r.outOfRange()
			} else {
				e.Type = parley.EnvelopeType(v)
			}
		case 7:
			e.Content = r.bytes()
			if r.err == nil {
				r.err = checkContent(len(e.Content))
			}
		case 8:
			e.SentAt = r.time()
		case 9:
			e.ServerSeq = r.varint()
		case 10:
			e.ServerAt = r.time()
		default:
			r.skip()
		}
	}
}

func (m *Ping) decode(b []byte) error {
	r := reader{b: b, msg: "Ping"}
	for r.next() {
		switch r.num {
		case 1:
			m.Nonce = r.varint()
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *TURNCredentials) decode(b []byte) error {
	r := reader{b: b, msg: "TURNCredentials"}
	for r.next() {
		switch r.num {
		case 1:
			m.Username = r.string()
		case 2:
			m.Password = r.string()
		case 3:
			m.TTLSeconds = r.uint32()
		case 4:
			if len(m.URLs) >= MaxTURNURLs {
				return tooMany("TURNCredentials.URLs", MaxTURNURLs)
			}
			m.URLs = append(m.URLs, r.string())
		default:
			r.skip()
		}
	}
	return r.err
}

func (m *TunnelTicket) decode(b []byte) error {
	r := reader{b: b, msg: "TunnelTicket"}
	for r.next() {
		switch r.num {
		case 1:
			m.Ticket = r.string()
		case 2:
			m.TTLSeconds = r.uint32()
		case 3:
			if len(m.URLs) >= MaxTURNURLs {
				return tooMany("TunnelTicket.URLs", MaxTURNURLs)
			}
			m.URLs = append(m.URLs, r.string())
		case 4:
			if len(m.CertHashes) >= MaxCertHashes {
				return tooMany("TunnelTicket.CertHashes", MaxCertHashes)
			}
			m.CertHashes = append(m.CertHashes, r.bytes())
		default:
			r.skip()
		}
	}
	return r.err
}
