package signal

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Storage encodings of the prekey records, for the client's stores. The
// layout is libsignal's PreKeyRecordStructure and SignedPreKeyRecordStructure
// (rust/protocol/src/proto/storage.proto; libsignal stores Kyber prekeys in
// the latter too), timestamps in milliseconds, plus Parley's field 6 for a
// Kyber prekey's last-resort flag.
const (
	recID         = 1
	recPublic     = 2
	recPrivate    = 3
	recSignature  = 4
	recTimestamp  = 5 // fixed64, ms since the Unix epoch
	recLastResort = 6 // Parley: bool
)

// MarshalBinary encodes the prekey record.
func (r PreKeyRecord) MarshalBinary() ([]byte, error) {
	var b []byte
	b = appendVarintField(b, recID, uint64(r.ID))
	b = appendBytesField(b, recPublic, r.Key.Public.Bytes())
	b = appendBytesField(b, recPrivate, r.Key.Private.k[:])
	return b, nil
}

// MarshalBinary encodes the signed prekey record.
func (r SignedPreKeyRecord) MarshalBinary() ([]byte, error) {
	var b []byte
	b = appendVarintField(b, recID, uint64(r.ID))
	b = appendBytesField(b, recPublic, r.Key.Public.Bytes())
	b = appendBytesField(b, recPrivate, r.Key.Private.k[:])
	b = appendBytesField(b, recSignature, r.Signature)
	b = protowire.AppendTag(b, recTimestamp, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(r.Timestamp.UnixMilli())), nil
}

// MarshalBinary encodes the Kyber prekey record.
func (r KyberPreKeyRecord) MarshalBinary() ([]byte, error) {
	var b []byte
	b = appendVarintField(b, recID, uint64(r.ID))
	b = appendBytesField(b, recPublic, r.Key.Public.b)
	b = appendBytesField(b, recPrivate, r.Key.Private.b)
	b = appendBytesField(b, recSignature, r.Signature)
	b = protowire.AppendTag(b, recTimestamp, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(r.Timestamp.UnixMilli()))
	if r.LastResort {
		b = appendVarintField(b, recLastResort, 1)
	}
	return b, nil
}

// recordFields is a decoded prekey record of any kind.
type recordFields struct {
	id         uint32
	pub, priv  []byte
	signature  []byte
	timestamp  time.Time
	lastResort bool
}

func unmarshalRecord(b []byte, what string) (recordFields, error) {
	var r recordFields
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
		switch num {
		case recID, recLastResort:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			if num == recID {
				r.id = uint32(v)
			} else {
				r.lastResort = v != 0
			}
		case recTimestamp:
			if err := wantType(num, typ, protowire.Fixed64Type); err != nil {
				return err
			}
			r.timestamp = time.UnixMilli(int64(v))
		case recPublic, recPrivate, recSignature:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			d = append([]byte(nil), d...)
			switch num {
			case recPublic:
				r.pub = d
			case recPrivate:
				r.priv = d
			default:
				r.signature = d
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("unmarshal %s: %w: %v", what, ErrInvalidRecord, err)
	}
	return r, nil
}

func (r recordFields) keyPair(what string) (KeyPair, error) {
	pub, err := DecodePublicKey(r.pub)
	if err != nil {
		return KeyPair{}, fmt.Errorf("unmarshal %s: %w: %v", what, ErrInvalidRecord, err)
	}
	priv, err := DecodePrivateKey(r.priv)
	if err != nil {
		return KeyPair{}, fmt.Errorf("unmarshal %s: %w: %v", what, ErrInvalidRecord, err)
	}
	return KeyPair{Public: pub, Private: priv}, nil
}

// UnmarshalPreKeyRecord decodes PreKeyRecord.MarshalBinary's encoding.
func UnmarshalPreKeyRecord(b []byte) (PreKeyRecord, error) {
	r, err := unmarshalRecord(b, "prekey record")
	if err != nil {
		return PreKeyRecord{}, err
	}
	kp, err := r.keyPair("prekey record")
	if err != nil {
		return PreKeyRecord{}, err
	}
	return PreKeyRecord{ID: r.id, Key: kp}, nil
}

// UnmarshalSignedPreKeyRecord decodes SignedPreKeyRecord.MarshalBinary's
// encoding.
func UnmarshalSignedPreKeyRecord(b []byte) (SignedPreKeyRecord, error) {
	r, err := unmarshalRecord(b, "signed prekey record")
	if err != nil {
		return SignedPreKeyRecord{}, err
	}
	kp, err := r.keyPair("signed prekey record")
	if err != nil {
		return SignedPreKeyRecord{}, err
	}
	return SignedPreKeyRecord{ID: r.id, Timestamp: r.timestamp, Key: kp, Signature: r.signature}, nil
}

// UnmarshalKyberPreKeyRecord decodes KyberPreKeyRecord.MarshalBinary's
// encoding.
func UnmarshalKyberPreKeyRecord(b []byte) (KyberPreKeyRecord, error) {
	r, err := unmarshalRecord(b, "kyber prekey record")
	if err != nil {
		return KyberPreKeyRecord{}, err
	}
	pub, err := DecodeKyberPublicKey(r.pub)
	if err != nil {
		return KyberPreKeyRecord{}, fmt.Errorf("unmarshal kyber prekey record: %w: %v", ErrInvalidRecord, err)
	}
	priv, err := DecodeKyberPrivateKey(r.priv)
	if err != nil {
		return KyberPreKeyRecord{}, fmt.Errorf("unmarshal kyber prekey record: %w: %v", ErrInvalidRecord, err)
	}
	return KyberPreKeyRecord{
		ID: r.id, Timestamp: r.timestamp, Key: KyberKeyPair{Public: pub, Private: priv},
		Signature: r.signature, LastResort: r.lastResort,
	}, nil
}
