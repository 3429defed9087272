package wire

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/parleychat/parley"
	"google.golang.org/protobuf/encoding/protowire"
)

var (
	t0  = time.UnixMilli(1_800_000_000_123).UTC()
	mid = parley.MessageID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
)

func fill(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

func sampleKeys() UploadKeys {
	return UploadKeys{
		SignedPreKey:    &SignedPreKey{ID: 7, Key: fill(33, 5), Signature: fill(64, 's')},
		LastResortKyber: &KyberPreKey{ID: 9, Key: fill(1569, 8), Signature: fill(64, 'k')},
		PreKeys:         []PreKey{{ID: 1, Key: fill(33, 1)}, {ID: 2, Key: fill(33, 2)}},
		KyberPreKeys:    []KyberPreKey{{ID: 100, Key: fill(1569, 3), Signature: fill(64, 4)}},
	}
}

func deliverFrame(content int) *Frame {
	return &Frame{Type: TypeRequest, ID: 1 << 40, Op: OpDeliver, Body: &Deliver{Envelope: parley.Envelope{
		ID:        mid,
		From:      parley.Address{User: "alice", Device: 2},
		To:        parley.Address{User: "bob", Device: 1},
		Type:      parley.EnvelopeSignal,
		Content:   fill(content, 0xAB),
		SentAt:    t0,
		ServerSeq: 123456,
		ServerAt:  t0.Add(time.Second),
	}}}
}

// sampleFrames holds one valid frame per Op (and per response shape); it
// doubles as the fuzz seed corpus.
func sampleFrames() map[string]*Frame {
	pk := &PreKey{ID: 3, Key: fill(33, 9)}
	return map[string]*Frame{
		"hello": {Type: TypePush, Op: OpHello, Body: &Hello{Version: ProtocolVersion, Challenge: [32]byte{1, 2, 3, 31: 9}, ServerTime: t0}},
		"register": {Type: TypeRequest, ID: 1, Op: OpRegister, Body: &Register{
			Version: 1, Username: "Alice", DeviceKey: fill(33, 5), Signature: fill(64, 1),
			IdentityKey: fill(33, 6), RegistrationID: 16380, Keys: sampleKeys(),
		}},
		"register-ok": {Type: TypeResponse, ID: 1, Op: OpRegister, Body: &Session{User: "alice", Device: 1, Counts: KeyCounts{PreKeys: 100, KyberPreKeys: 100}}},
		"login":       {Type: TypeRequest, ID: 2, Op: OpLogin, Body: &Login{Version: 1, Username: "alice", Device: 3, Signature: fill(64, 2)}},
		"login-ok":    {Type: TypeResponse, ID: 2, Op: OpLogin, Body: &Session{User: "alice", Device: 3}},
		"login-fail":  {Type: TypeResponse, ID: 2, Op: OpLogin, Err: &parley.Error{Kind: parley.KindUnauthorized, Message: "bad signature"}},
		"upload":      {Type: TypeRequest, ID: 3, Op: OpUploadKeys, Body: ptr(sampleKeys())},
		"upload-ok":   {Type: TypeResponse, ID: 3, Op: OpUploadKeys, Body: &KeyCounts{PreKeys: 2, KyberPreKeys: 1}},
		"bundles":     {Type: TypeRequest, ID: 4, Op: OpGetBundles, Body: &GetBundles{User: "bob", Device: 0}},
		"bundles-ok": {Type: TypeResponse, ID: 4, Op: OpGetBundles, Body: &Bundles{IdentityKey: fill(33, 7), Devices: []Bundle{
			{Device: 1, RegistrationID: 5, SignedPreKey: SignedPreKey{ID: 1, Key: fill(33, 1), Signature: fill(64, 1)}, PreKey: pk, KyberPreKey: KyberPreKey{ID: 2, Key: fill(1569, 2), Signature: fill(64, 3)}},
			{Device: 2, RegistrationID: 6, SignedPreKey: SignedPreKey{ID: 1, Key: fill(33, 1), Signature: fill(64, 1)}, KyberPreKey: KyberPreKey{ID: 2, Key: fill(1569, 2), Signature: fill(64, 3)}},
		}}},
		"counts":    {Type: TypeRequest, ID: 5, Op: OpKeyCounts, Body: &GetKeyCounts{}},
		"counts-ok": {Type: TypeResponse, ID: 5, Op: OpKeyCounts, Body: &KeyCounts{}},
		"send": {Type: TypeRequest, ID: 6, Op: OpSend, Body: &Send{To: "bob", ID: mid, SentAt: t0, Messages: []OutgoingMessage{
			{Device: 1, RegistrationID: 77, Type: parley.EnvelopePreKey, Content: fill(300, 1)},
			{Device: 2, RegistrationID: 78, Type: parley.EnvelopeSignal, Content: fill(10, 2)},
		}}},
		"send-ok":    {Type: TypeResponse, ID: 6, Op: OpSend, Body: &SendResult{ServerAt: t0}},
		"send-stale": {Type: TypeResponse, ID: 6, Op: OpSend, Err: &parley.Error{Kind: parley.KindStaleDevices, Message: "stale"}, Body: &StaleDevices{Missing: []parley.DeviceID{3, 300}, Extra: []parley.DeviceID{9}, Stale: []parley.DeviceID{1}}},
		"deliver":    deliverFrame(1024),
		"deliver-ok": {Type: TypeResponse, ID: 1 << 40, Op: OpDeliver},
		"empty":      {Type: TypePush, Op: OpQueueEmpty, Body: &QueueEmpty{}},
		"lowkeys":    {Type: TypePush, Op: OpLowKeys, Body: &KeyCounts{PreKeys: 3, KyberPreKeys: 9}},
		"ping":       {Type: TypeRequest, ID: 7, Op: OpPing, Body: &Ping{Nonce: 1<<64 - 1}},
		"ping-ok":    {Type: TypeResponse, ID: 7, Op: OpPing, Body: &Ping{Nonce: 1<<64 - 1}},
		"turn":       {Type: TypeRequest, ID: 9, Op: OpTURNCredentials, Body: &GetTURNCredentials{}},
		"turn-ok": {Type: TypeResponse, ID: 9, Op: OpTURNCredentials, Body: &TURNCredentials{
			Username: "1800000000:alice.2", Password: "c2VjcmV0IHBhc3N3b3JkIGhlcmU=", TTLSeconds: 43200,
			URLs: []string{"turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp", "", "turns:parley.example:443?transport=tcp"},
		}},
		"tunnel": {Type: TypeRequest, ID: 10, Op: OpTunnelTicket, Body: &GetTunnelTicket{}},
		"tunnel-ok": {Type: TypeResponse, ID: 10, Op: OpTunnelTicket, Body: &TunnelTicket{
			Ticket: "1800000000.alice.2.c2lnbmF0dXJl", TTLSeconds: 600,
			URLs:       []string{"https://127.0.0.1:8080/v1/tunnel", "ws://127.0.0.1:8080/v1/tunnel"},
			CertHashes: [][]byte{fill(32, 4)},
		}},
		"turn-unavailable": {Type: TypeResponse, ID: 9, Op: OpTURNCredentials, Err: &parley.Error{Kind: parley.KindUnavailable, Message: "no relay"}},
		"unsupported-fail": {Type: TypeResponse, ID: 8, Op: 999, Err: &parley.Error{Kind: parley.KindUnsupported, Message: "no such op"}},
	}
}

func ptr[T any](v T) *T { return &v }

func TestRoundTrip(t *testing.T) {
	seen := map[Op]bool{}
	for name, f := range sampleFrames() {
		t.Run(name, func(t *testing.T) {
			b, err := f.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			got, err := DecodeFrame(b)
			if err != nil {
				t.Fatalf("DecodeFrame: %v", err)
			}
			if diff := cmp.Diff(f, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// Appending to a prefix gives the same bytes.
			b2, err := f.AppendBinary([]byte("xyz"))
			if err != nil || !bytes.Equal(b2[3:], b) {
				t.Errorf("AppendBinary differs from MarshalBinary (err %v)", err)
			}
		})
		seen[f.Op] = true
	}
	for op := Op(1); op.Known(); op++ {
		if !seen[op] {
			t.Errorf("no round-trip sample for %v", op)
		}
	}
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	b, _ := deliverFrame(64).MarshalBinary()
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if c := f.Body.(*Deliver).Envelope.Content; c[0] != 0xAB {
		t.Error("decoded content aliases the input")
	}
}

func TestRequestBodyAlwaysSet(t *testing.T) {
	b, err := (&Frame{Type: TypeRequest, ID: 1, Op: OpKeyCounts}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Body.(*GetKeyCounts); !ok {
		t.Errorf("Body = %T, want *GetKeyCounts", f.Body)
	}
}

// raw builds a frame by hand, for inputs the encoder refuses to make.
func raw(typ FrameType, id uint64, op Op, body []byte) []byte {
	var b []byte
	b = appendVarint(b, frameType, uint64(typ))
	b = appendVarint(b, frameID, id)
	b = appendVarint(b, frameOp, uint64(op))
	if body != nil {
		b = protowire.AppendTag(b, frameBody, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	bigContent := protowire.AppendTag(nil, 7, protowire.BytesType)
	bigContent = protowire.AppendBytes(bigContent, fill(parley.MaxMessageSize+1, 1))
	var env []byte
	env = protowire.AppendTag(env, 1, protowire.BytesType)
	env = protowire.AppendBytes(env, bigContent)

	var prekeys []byte
	for i := 0; i <= parley.MaxPreKeysPerUpload; i++ {
		prekeys = protowire.AppendTag(prekeys, 3, protowire.BytesType)
		prekeys = protowire.AppendBytes(prekeys, []byte{8, 1})
	}

	var urls []byte
	for i := 0; i <= MaxTURNURLs; i++ {
		urls = protowire.AppendTag(urls, 4, protowire.BytesType)
		urls = protowire.AppendString(urls, "turn:x:1")
	}

	tests := []struct {
		name   string
		in     []byte
		kind   parley.Kind
		wantID uint64 // the header read despite the error
	}{
		{"empty", nil, parley.KindInvalid, 0},
		{"truncated varint", []byte{0x08, 0x80}, parley.KindInvalid, 0},
		{"bad type", raw(9, 1, OpPing, nil), parley.KindInvalid, 1},
		{"unknown op", raw(TypeRequest, 5, 77, []byte{}), parley.KindUnsupported, 5},
		{"op zero", raw(TypeRequest, 5, 0, nil), parley.KindUnsupported, 5},
		{"wire type", raw(TypeRequest, 6, OpPing, []byte{0x0a, 0x01, 0x00}), parley.KindInvalid, 6},
		{"body length", append(raw(TypeRequest, 6, OpPing, nil), 0x2a, 0x05, 0x08), parley.KindInvalid, 6},
		{"short message id", raw(TypeRequest, 7, OpSend, []byte{0x12, 0x02, 1, 2}), parley.KindInvalid, 7},
		{"content too large", raw(TypeRequest, 8, OpDeliver, env), parley.KindTooLarge, 8},
		{"too many prekeys", raw(TypeRequest, 9, OpUploadKeys, prekeys), parley.KindTooLarge, 9},
		{"frame too large", make([]byte, parley.MaxFrameSize+1), parley.KindTooLarge, 0},
		{"body on a no-body response", raw(TypeResponse, 10, OpDeliver, []byte{0x08, 0x01}), parley.KindInvalid, 10},
		{"error without kind", append(raw(TypeResponse, 11, OpPing, nil), 0x22, 0x00), parley.KindInvalid, 11},
		{"device out of range", raw(TypeRequest, 12, OpGetBundles, []byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x10}), parley.KindInvalid, 12},
		{"too many TURN URLs", raw(TypeResponse, 13, OpTURNCredentials, urls), parley.KindTooLarge, 13},
		{"TURN ttl out of range", raw(TypeResponse, 14, OpTURNCredentials, []byte{0x18, 0x80, 0x80, 0x80, 0x80, 0x10}), parley.KindInvalid, 14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := DecodeFrame(tt.in)
			if err == nil {
				t.Fatalf("DecodeFrame succeeded: %+v", f)
			}
			if k := parley.ErrorKind(err); k != tt.kind {
				t.Errorf("kind = %v, want %v (%v)", k, tt.kind, err)
			}
			if f != nil && f.ID != tt.wantID {
				t.Errorf("ID = %d, want %d", f.ID, tt.wantID)
			}
			if f != nil && f.Body != nil {
				t.Errorf("Body = %T on error", f.Body)
			}
			t.Logf("%v", err)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		f    *Frame
		kind parley.Kind
	}{
		{"wrong body", &Frame{Type: TypeRequest, ID: 1, Op: OpSend, Body: &Ping{}}, parley.KindInvalid},
		{"not a body", &Frame{Type: TypeRequest, ID: 1, Op: OpSend, Body: "hi"}, parley.KindInvalid},
		{"bad type", &Frame{Type: 0, Op: OpPing}, parley.KindInvalid},
		{"unknown op", &Frame{Type: TypeRequest, ID: 1, Op: 500}, parley.KindUnsupported},
		{"result missing", &Frame{Type: TypeResponse, ID: 1, Op: OpSend}, parley.KindInvalid},
		{"body on error", &Frame{Type: TypeResponse, ID: 1, Op: OpSend, Err: &parley.Error{Kind: parley.KindInvalid}, Body: &SendResult{}}, parley.KindInvalid},
		{"content", deliverFrame(parley.MaxMessageSize + 1), parley.KindTooLarge},
		{"TURN URLs", &Frame{Type: TypeResponse, ID: 1, Op: OpTURNCredentials, Body: &TURNCredentials{URLs: make([]string, MaxTURNURLs+1)}}, parley.KindTooLarge},
		{"frame", &Frame{Type: TypeRequest, ID: 1, Op: OpSend, Body: &Send{To: "bob", Messages: make([]OutgoingMessage, 16)}}, ""},
	}
	for i := range tests[len(tests)-1].f.Body.(*Send).Messages {
		tests[len(tests)-1].f.Body.(*Send).Messages[i].Content = fill(parley.MaxMessageSize, 1)
	}
	tests[len(tests)-1].kind = parley.KindTooLarge
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.f.AppendBinary([]byte{1, 2})
			if k := parley.ErrorKind(err); err == nil || k != tt.kind {
				t.Fatalf("err = %v (kind %v), want kind %v", err, k, tt.kind)
			}
			if !bytes.Equal(b, []byte{1, 2}) {
				t.Errorf("AppendBinary changed b on error")
			}
		})
	}
}

func TestUnknownFieldsSkipped(t *testing.T) {
	var body []byte
	body = protowire.AppendTag(body, 99, protowire.BytesType)
	body = protowire.AppendBytes(body, []byte("future"))
	body = protowire.AppendTag(body, 1, protowire.VarintType)
	body = protowire.AppendVarint(body, 42)
	in := raw(TypeRequest, 3, OpPing, body)
	in = protowire.AppendTag(in, 50, protowire.Fixed64Type)
	in = protowire.AppendFixed64(in, 1)
	f, err := DecodeFrame(in)
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Body.(*Ping); p.Nonce != 42 {
		t.Errorf("nonce = %d", p.Nonce)
	}
}

func TestStatus(t *testing.T) {
	for _, e := range kinds {
		if e.kind == parley.KindStaleDevices {
			continue // shares its codes with KindConflict
		}
		if got := CloseKind(CloseCode(e.kind)); got != e.kind {
			t.Errorf("CloseKind(CloseCode(%v)) = %v", e.kind, got)
		}
		if s := HTTPStatus(e.kind); s < 400 || s > 599 {
			t.Errorf("HTTPStatus(%v) = %d", e.kind, s)
		}
		if c := CloseCode(e.kind); c < 1000 || c > 4999 || c == 1005 || c == 1006 || c == 1015 {
			t.Errorf("CloseCode(%v) = %d is not sendable", e.kind, c)
		}
	}
	if HTTPStatus("nonsense") != 500 || CloseCode("nonsense") != CloseInternal {
		t.Error("unknown kinds should map to internal")
	}
}

func TestAllocs(t *testing.T) {
	f := deliverFrame(1024)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = f.AppendBinary(buf[:0])
		if err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("AppendBinary of a Deliver: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := DecodeFrame(buf); err != nil {
			t.Fatal(err)
		}
	}); n > 5 {
		t.Errorf("DecodeFrame of a Deliver: %v allocs, want at most 5", n)
	}
}

func BenchmarkDeliverRoundTrip(b *testing.B) {
	f := deliverFrame(1024)
	b.ReportAllocs()
	for b.Loop() {
		buf, err := f.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeFrame(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		b, err := fr.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			switch parley.ErrorKind(err) {
			case parley.KindInvalid, parley.KindUnsupported, parley.KindTooLarge:
			default:
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// What decodes re-encodes, and decodes to the same frame.
		out, err := fr.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of %+v: %v", fr, err)
		}
		back, err := DecodeFrame(out)
		if err != nil {
			t.Fatalf("decode of re-encoded frame: %v", err)
		}
		if diff := cmp.Diff(fr, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("re-encode round trip (-first +second):\n%s", diff)
		}
	})
}
