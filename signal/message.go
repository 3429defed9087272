package signal

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire messages, as libsignal's rust/protocol/src/protocol.rs and
// rust/protocol/src/proto/wire.proto. Each starts with one version byte,
// (session version << 4) | current version, which is 0x44 for PQXDH
// sessions; the rest is protobuf:
//
//	SignalMessage         = version || proto || mac[8]
//	  1 ratchet_key       bytes   sender's ratchet public key (0x05 || 32)
//	  2 counter           uint32  index in the sender's chain
//	  3 previous_counter  uint32  length of the sender's previous chain
//	  4 ciphertext        bytes   AES-256-CBC/PKCS7 of the plaintext
//	  5 pq_ratchet        bytes   SPQR message (see doc.go)
//	  6 addresses         bytes   sender/recipient service ids (not used by Parley)
//	PreKeySignalMessage   = version || proto
//	  5 registration_id   uint32
//	  1 pre_key_id        uint32  optional one-time prekey
//	  6 signed_pre_key_id uint32
//	  7 kyber_pre_key_id  uint32
//	  8 kyber_ciphertext  bytes   0x08 || 1568
//	  2 base_key          bytes   the initiator's ephemeral key
//	  3 identity_key      bytes   the initiator's identity key
//	  4 message           bytes   a serialized SignalMessage
//
// The MAC is the first 8 bytes of HMAC-SHA256(mac_key, sender identity ||
// receiver identity || version || proto), both identities serialised
// (0x05 || 32). It is checked over the bytes received, never re-serialised
// ones. Decoders accept fields in any order, skip unknown fields, and keep
// the last occurrence of a repeated scalar, as prost does.

// Message versions.
const (
	// MessageVersion is libsignal's CIPHERTEXT_MESSAGE_CURRENT_VERSION: PQXDH.
	MessageVersion = 4
	versionByte    = MessageVersion<<4 | MessageVersion // 0x44
	macSize        = 8
	// MaxMessageBytes bounds what the decoders accept, far above any real
	// message (parley.MaxMessageSize is 64 KiB).
	MaxMessageBytes = 1 << 20
)

// signalMessage is a decoded SignalMessage.
type signalMessage struct {
	version         uint8
	ratchetKey      PublicKey
	counter         uint32
	previousCounter uint32
	ciphertext      []byte
	pqRatchet       []byte
	addresses       []byte // nil when absent
	serialized      []byte // everything received, MAC included
}

// preKeySignalMessage is a decoded PreKeySignalMessage.
type preKeySignalMessage struct {
	version         uint8
	registrationID  uint32
	hasPreKeyID     bool
	preKeyID        uint32
	signedPreKeyID  uint32
	kyberPreKeyID   uint32
	kyberCiphertext []byte
	baseKey         PublicKey
	identityKey     PublicKey
	message         *signalMessage
	serialized      []byte
}

func checkVersion(b byte) error {
	if v := b >> 4; v != MessageVersion {
		return fmt.Errorf("message version %d: %w", v, ErrUnsupportedVersion)
	}
	return nil
}

// encodeSignalMessage builds a SignalMessage and appends its MAC.
func encodeSignalMessage(macKey []byte, sender, receiver PublicKey, ratchetKey PublicKey, counter, previousCounter uint32, ciphertext, pqRatchet []byte) []byte {
	b := make([]byte, 0, 1+2+PublicKeySize+12+3+len(ciphertext)+2+len(pqRatchet)+macSize)
	b = append(b, versionByte)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, ratchetKey.Bytes())
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(counter))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(previousCounter))
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, ciphertext)
	if len(pqRatchet) > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, pqRatchet)
	}
	return append(b, messageMAC(macKey, sender, receiver, b)...)
}

// messageMAC is libsignal's SignalMessage::compute_mac.
func messageMAC(macKey []byte, sender, receiver PublicKey, content []byte) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write(sender.Bytes())
	m.Write(receiver.Bytes())
	m.Write(content)
	return m.Sum(nil)[:macSize]
}

// verifyMAC checks the MAC of the received bytes.
func (m *signalMessage) verifyMAC(macKey []byte, sender, receiver PublicKey) bool {
	content, mac := m.serialized[:len(m.serialized)-macSize], m.serialized[len(m.serialized)-macSize:]
	return subtle.ConstantTimeCompare(messageMAC(macKey, sender, receiver, content), mac) == 1
}

// protoFields calls f for each field of a protobuf message; f gets the field
// number, type and, for varints and fixed64, the value, for bytes, the
// contents (aliasing b).
func protoFields(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

func wantType(num protowire.Number, got, want protowire.Type) error {
	if got != want {
		return fmt.Errorf("field %d has wire type %d", num, got)
	}
	return nil
}

// decodeSignalMessage parses a SignalMessage (rust/protocol/src/protocol.rs,
// TryFrom<&[u8]> for SignalMessage). It does not check the MAC.
func decodeSignalMessage(b []byte) (*signalMessage, error) {
	if len(b) < 1+macSize {
		return nil, fmt.Errorf("decode signal message: %d bytes: %w", len(b), ErrInvalidMessage)
	}
	if len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("decode signal message: %d bytes: %w", len(b), ErrInvalidMessage)
	}
	if err := checkVersion(b[0]); err != nil {
		return nil, fmt.Errorf("decode signal message: %w", err)
	}
	m := &signalMessage{version: b[0] >> 4, serialized: b}
	var haveKey, haveCounter, haveCiphertext bool
	err := protoFields(b[1:len(b)-macSize], func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case 1:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			k, err := DecodePublicKey(data)
			if err != nil {
				return err
			}
			m.ratchetKey, haveKey = k, true
		case 2:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			m.counter, haveCounter = uint32(v), true
		case 3:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			m.previousCounter = uint32(v)
		case 4:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			m.ciphertext, haveCiphertext = data, true
		case 5:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			m.pqRatchet = data
		case 6:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			m.addresses = append([]byte{}, data...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode signal message: %w: %v", ErrInvalidMessage, err)
	}
	if !haveKey || !haveCounter || !haveCiphertext {
		return nil, fmt.Errorf("decode signal message: missing field: %w", ErrInvalidMessage)
	}
	return m, nil
}

// encodePreKeySignalMessage wraps a serialized SignalMessage.
func encodePreKeySignalMessage(m *preKeySignalMessage, inner []byte) []byte {
	b := make([]byte, 0, 32+2*PublicKeySize+KyberCiphertextSize+len(inner))
	b = append(b, versionByte)
	if m.hasPreKeyID {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.preKeyID))
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, m.baseKey.Bytes())
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, m.identityKey.Bytes())
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, inner)
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.registrationID))
	b = protowire.AppendTag(b, 6, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.signedPreKeyID))
	b = protowire.AppendTag(b, 7, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.kyberPreKeyID))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendBytes(b, m.kyberCiphertext)
	return b
}

// decodePreKeySignalMessage parses a PreKeySignalMessage
// (rust/protocol/src/protocol.rs, TryFrom<&[u8]> for PreKeySignalMessage).
// Version 4 requires the Kyber prekey id and ciphertext.
func decodePreKeySignalMessage(b []byte) (*preKeySignalMessage, error) {
	if len(b) == 0 || len(b) > MaxMessageBytes {
		return nil, fmt.Errorf("decode prekey message: %d bytes: %w", len(b), ErrInvalidMessage)
	}
	if err := checkVersion(b[0]); err != nil {
		return nil, fmt.Errorf("decode prekey message: %w", err)
	}
	m := &preKeySignalMessage{version: b[0] >> 4, serialized: b}
	var baseKey, identityKey, inner []byte
	var haveSigned, haveKyberID, haveKyberCT bool
	err := protoFields(b[1:], func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		want := protowire.VarintType
		switch num {
		case 2, 3, 4, 8:
			want = protowire.BytesType
		case 1, 5, 6, 7:
		default:
			return nil
		}
		if err := wantType(num, typ, want); err != nil {
			return err
		}
		switch num {
		case 1:
			m.hasPreKeyID, m.preKeyID = true, uint32(v)
		case 2:
			baseKey = data
		case 3:
			identityKey = data
		case 4:
			inner = data
		case 5:
			m.registrationID = uint32(v)
		case 6:
			m.signedPreKeyID, haveSigned = uint32(v), true
		case 7:
			m.kyberPreKeyID, haveKyberID = uint32(v), true
		case 8:
			m.kyberCiphertext, haveKyberCT = data, true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("decode prekey message: %w: %v", ErrInvalidMessage, err)
	}
	if baseKey == nil || identityKey == nil || inner == nil || !haveSigned {
		return nil, fmt.Errorf("decode prekey message: missing field: %w", ErrInvalidMessage)
	}
	if !haveKyberID || !haveKyberCT {
		return nil, fmt.Errorf("decode prekey message: kyber prekey id and ciphertext are required: %w", ErrInvalidMessage)
	}
	if m.baseKey, err = DecodePublicKey(baseKey); err != nil {
		return nil, fmt.Errorf("decode prekey message: base key: %w: %v", ErrInvalidMessage, err)
	}
	if m.identityKey, err = DecodePublicKey(identityKey); err != nil {
		return nil, fmt.Errorf("decode prekey message: identity key: %w: %v", ErrInvalidMessage, err)
	}
	if m.message, err = decodeSignalMessage(inner); err != nil {
		return nil, fmt.Errorf("decode prekey message: %w", err)
	}
	return m, nil
}
