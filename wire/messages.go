package wire

import (
	"time"

	"github.com/parleychat/parley"
)

// ProtocolVersion is the version of this protocol; see the package doc for
// when to bump it.
const ProtocolVersion = 1

// Path is the HTTP path of the WebSocket endpoint.
const Path = "/v1/ws"

// FrameType says whether a frame is a request, a response or a push.
type FrameType uint8

const (
	TypeRequest  FrameType = 1 // expects exactly one Response with the same ID
	TypeResponse FrameType = 2 // answers the Request with the same ID
	TypePush     FrameType = 3 // expects no answer; ID is 0
)

// Op names the operation of a request or push. The Body of a frame has the Go
// type listed beside its Op; a response carries the listed result type (or
// nil on error).
type Op uint16

const (
	OpHello      Op = 1  // push, server→client: *Hello
	OpRegister   Op = 2  // request: *Register → *Session
	OpLogin      Op = 3  // request: *Login → *Session
	OpUploadKeys Op = 4  // request: *UploadKeys → *KeyCounts
	OpGetBundles Op = 5  // request: *GetBundles → *Bundles
	OpKeyCounts  Op = 6  // request: *GetKeyCounts → *KeyCounts
	OpSend       Op = 7  // request: *Send → *SendResult
	OpDeliver    Op = 8  // request, server→client: *Deliver → nil (the ack)
	OpQueueEmpty Op = 9  // push, server→client: *QueueEmpty
	OpLowKeys    Op = 10 // push, server→client: *KeyCounts
	OpPing       Op = 11 // request: *Ping → *Ping
	// request: *GetTURNCredentials → *TURNCredentials
	OpTURNCredentials Op = 12
	// request: *GetTunnelTicket → *TunnelTicket
	OpTunnelTicket Op = 13
)

// Frame is one WebSocket binary message.
type Frame struct {
	Type FrameType
	ID   uint64 // requests and responses; 0 for pushes
	Op   Op     // requests and pushes; responses echo their request's Op
	// Err is set on a failed response; Body is then nil, except for
	// KindStaleDevices, whose Body is *StaleDevices.
	Err  *parley.Error
	Body any // one of the types in this file, by Op (see the Op constants)
}

// Hello is the server's first frame on a connection.
type Hello struct {
	Version    uint32
	Challenge  [32]byte  // signed by the device in Register or Login
	ServerTime time.Time // lets a client notice a wrong clock
}

// Register creates an account and its first device (parley.PrimaryDevice)
// and authenticates this connection as that device.
type Register struct {
	Version        uint32
	Username       string // checked with parley.ParseUserID
	DeviceKey      []byte // 33 bytes, 0x05 || Curve25519: the device's authentication key
	Signature      []byte // XEdDSA by DeviceKey over AuthPayload(challenge, username, 0)
	IdentityKey    []byte // 33 bytes, 0x05 || Curve25519: the account's Signal identity key
	RegistrationID uint32 // libsignal registration id of this device (1..16380)
	Keys           UploadKeys
}

// Login authenticates this connection as an existing device.
type Login struct {
	Version   uint32
	Username  string
	Device    parley.DeviceID
	Signature []byte // XEdDSA by the device key over AuthPayload(challenge, username, device)
}

// Session is the answer to Register and Login.
type Session struct {
	User   parley.UserID
	Device parley.DeviceID
	Counts KeyCounts // prekeys left on the server, so the client can top up
}

// AuthPayload is the byte string a device signs to authenticate: a label,
// the connection's challenge, the username and the device (0 when
// registering). Binding the challenge makes every signature single-use.
func AuthPayload(challenge [32]byte, username string, device parley.DeviceID) []byte {
	const label = "parley-auth-v1\x00"
	b := make([]byte, 0, len(label)+32+len(username)+1+4)
	b = append(b, label...)
	b = append(b, challenge[:]...)
	b = append(b, username...)
	b = append(b, 0)
	return append(b, byte(device>>24), byte(device>>16), byte(device>>8), byte(device))
}

// SignedPreKey is a signed Curve25519 prekey. Signature is XEdDSA by the
// identity key over Key (all 33 bytes), as libsignal.
type SignedPreKey struct {
	ID        uint32
	Key       []byte // 33 bytes, 0x05 || Curve25519
	Signature []byte // 64 bytes
}

// PreKey is a one-time Curve25519 prekey.
type PreKey struct {
	ID  uint32
	Key []byte // 33 bytes, 0x05 || Curve25519
}

// KyberPreKey is a signed Kyber-1024 prekey. Signature is XEdDSA by the
// identity key over Key (all 1569 bytes), as libsignal.
type KyberPreKey struct {
	ID        uint32
	Key       []byte // 1569 bytes, 0x08 || Kyber-1024 public key
	Signature []byte // 64 bytes
}

// UploadKeys adds prekeys for the authenticated device. Any field may be
// empty; at most parley.MaxPreKeysPerUpload keys of each list are accepted.
// A new SignedPreKey or LastResortKyber replaces the old one.
type UploadKeys struct {
	SignedPreKey    *SignedPreKey
	LastResortKyber *KyberPreKey
	PreKeys         []PreKey
	KyberPreKeys    []KyberPreKey // one-time Kyber prekeys
}

// GetKeyCounts asks how many one-time prekeys the device has left.
type GetKeyCounts struct{}

// KeyCounts is how many one-time prekeys a device has left on the server.
// The server pushes it (OpLowKeys) when either falls below LowKeyThreshold.
type KeyCounts struct {
	PreKeys      uint32
	KyberPreKeys uint32
}

// LowKeyThreshold is the count below which the server warns a device.
const LowKeyThreshold = 10

// GetBundles fetches prekey bundles to start sessions with a user's devices:
// one device, or every device when Device is 0. One-time keys in the answer
// are consumed.
type GetBundles struct {
	User   parley.UserID
	Device parley.DeviceID
}

// Bundles is the answer to GetBundles.
type Bundles struct {
	IdentityKey []byte // 33 bytes
	Devices     []Bundle
}

// Bundle is the prekey bundle of one device. PreKey is nil when the device
// has run out of one-time prekeys; KyberPreKey is then a one-time Kyber
// prekey or, when those are gone too, the last-resort one.
type Bundle struct {
	Device         parley.DeviceID
	RegistrationID uint32
	SignedPreKey   SignedPreKey
	PreKey         *PreKey
	KyberPreKey    KyberPreKey
}

// Send stores a message for every device of one recipient. It must hold
// exactly one message for each of the recipient's devices (and none for the
// sender's own device); otherwise the answer is a KindStaleDevices error whose
// Body is *StaleDevices.
type Send struct {
	To       parley.UserID
	ID       parley.MessageID
	SentAt   time.Time
	Messages []OutgoingMessage
}

// OutgoingMessage is the ciphertext for one device.
type OutgoingMessage struct {
	Device         parley.DeviceID
	RegistrationID uint32 // the registration id the sender's session has for this device
	Type           parley.EnvelopeType
	Content        []byte
}

// SendResult is the answer to a successful Send: every copy is on disk.
type SendResult struct {
	ServerAt time.Time
}

// StaleDevices tells a sender how its device list differs from the server's.
type StaleDevices struct {
	Missing []parley.DeviceID // devices the server has that the send lacked
	Extra   []parley.DeviceID // devices in the send that do not exist
	Stale   []parley.DeviceID // devices whose registration id changed: start a new session
}

// Deliver hands one stored message to its recipient device.
type Deliver struct {
	Envelope parley.Envelope
}

// QueueEmpty says that every message stored for the device when it connected
// has been sent; later ones arrive live.
type QueueEmpty struct{}

// Ping measures round trips and keeps idle connections open.
type Ping struct {
	Nonce uint64
}

// GetTURNCredentials asks for a credential of the server's TURN relay for
// the authenticated device. A server without a relay answers
// KindUnavailable.
type GetTURNCredentials struct{}

// TURNCredentials is a short-lived credential of the server's TURN relay
// (the TURN REST API scheme: Username is "EXPIRY:user.device", Password
// base64(HMAC-SHA1(secret, Username))), with the relay's URLs (RFC 7065,
// e.g. "turn:relay.example:3478?transport=udp"), as WebRTC's RTCIceServer
// takes them. Ask again before TTLSeconds have passed.
type TURNCredentials struct {
	Username   string
	Password   string
	TTLSeconds uint32
	URLs       []string // at most MaxTURNURLs
}

// MaxTURNURLs bounds TURNCredentials.URLs.
const MaxTURNURLs = 16

// GetTunnelTicket asks for a ticket to the server's call tunnel (tier 2 of
// calls, package tunnel) for the authenticated device. A server without the
// tunnel answers KindUnavailable.
type GetTunnelTicket struct{}

// TunnelTicket lets a device join the server's call tunnel on a connection
// of its own (a sibling WebSocket, or WebTransport over QUIC) until
// TTLSeconds have passed. URLs are the tunnel's endpoints, best first
// ("ws://host/v1/tunnel", "https://host:port/v1/tunnel" for WebTransport);
// CertHashes, when set, are SHA-256 hashes of the self-signed certificates
// a WebTransport endpoint presents (what a browser's
// serverCertificateHashes takes).
type TunnelTicket struct {
	Ticket     string
	TTLSeconds uint32
	URLs       []string // at most MaxTURNURLs
	CertHashes [][]byte // at most MaxCertHashes, each 32 bytes
}

// MaxCertHashes bounds TunnelTicket.CertHashes.
const MaxCertHashes = 4
