package signaltest

// A minimal reader for libsignal's message encodings, so that a failure can
// say which field of which message was involved (counter, ratchet key, …) and
// the tamper tests can flip bits inside named fields. Field numbers are those
// of libsignal's rust/protocol/src/proto/wire.proto.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/parleychat/parley"
)

const macSize = 8 // SignalMessage's truncated HMAC-SHA256

var signalMessageFields = map[int]string{1: "ratchet_key", 2: "counter", 3: "previous_counter", 4: "ciphertext", 5: "pq_ratchet", 6: "addresses"}

var preKeyMessageFields = map[int]string{5: "registration_id", 1: "pre_key_id", 6: "signed_pre_key_id", 7: "kyber_pre_key_id", 8: "kyber_ciphertext", 2: "base_key", 3: "identity_key", 4: "message"}

// pbField is one protobuf field: its number, wire type, the varint value or
// the byte range [start, end) of its value within the parsed buffer.
type pbField struct {
	num, wire  int
	value      uint64
	start, end int
}

func pbVarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// pbFields parses b (offsets are relative to b plus base).
func pbFields(b []byte, base int) ([]pbField, error) {
	var fs []pbField
	for i := 0; i < len(b); {
		tag, n := pbVarint(b[i:])
		if n == 0 {
			return fs, errors.New("bad tag")
		}
		i += n
		f := pbField{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case 0:
			v, n := pbVarint(b[i:])
			if n == 0 {
				return fs, errors.New("bad varint")
			}
			f.value, f.start, f.end = v, base+i, base+i+n
			i += n
		case 2:
			l, n := pbVarint(b[i:])
			if n == 0 || l > uint64(len(b)-i-n) {
				return fs, errors.New("bad length")
			}
			f.value, f.start, f.end = l, base+i+n, base+i+n+int(l)
			i += n + int(l)
		default:
			return fs, fmt.Errorf("wire type %d", f.wire)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// region is a named byte range of a serialised message.
type region struct {
	name       string
	start, end int
}

// messageRegions names the parts of a serialised message: the version byte,
// each protobuf field's value, the MAC; for a PreKeySignalMessage also the
// parts of the SignalMessage inside it (prefixed "message.").
func messageRegions(typ parley.EnvelopeType, b []byte) ([]region, error) {
	if len(b) < 1 {
		return nil, errors.New("empty message")
	}
	rs := []region{{"version", 0, 1}}
	switch typ {
	case parley.EnvelopeSignal:
		if len(b) < 1+macSize {
			return nil, fmt.Errorf("SignalMessage of %d bytes is shorter than version+MAC", len(b))
		}
		fs, err := pbFields(b[1:len(b)-macSize], 1)
		if err != nil {
			return nil, fmt.Errorf("SignalMessage protobuf: %w", err)
		}
		for _, f := range fs {
			rs = append(rs, region{fieldName(signalMessageFields, f.num), f.start, f.end})
		}
		return append(rs, region{"mac", len(b) - macSize, len(b)}), nil
	case parley.EnvelopePreKey:
		fs, err := pbFields(b[1:], 1)
		if err != nil {
			return nil, fmt.Errorf("PreKeySignalMessage protobuf: %w", err)
		}
		for _, f := range fs {
			rs = append(rs, region{fieldName(preKeyMessageFields, f.num), f.start, f.end})
			if f.num == 4 {
				inner, err := messageRegions(parley.EnvelopeSignal, b[f.start:f.end])
				if err != nil {
					return nil, fmt.Errorf("message: %w", err)
				}
				for _, r := range inner {
					rs = append(rs, region{"message." + r.name, f.start + r.start, f.start + r.end})
				}
			}
		}
		return rs, nil
	}
	return nil, fmt.Errorf("unknown message type %d", typ)
}

func fieldName(names map[int]string, num int) string {
	if n, ok := names[num]; ok {
		return n
	}
	return fmt.Sprintf("field%d", num)
}

// describeMessage summarises a serialised message for a failure report:
// type, size, version byte and the header fields.
func describeMessage(typ parley.EnvelopeType, b []byte) string {
	var sb strings.Builder
	switch typ {
	case parley.EnvelopeSignal:
		sb.WriteString("SignalMessage")
	case parley.EnvelopePreKey:
		sb.WriteString("PreKeySignalMessage")
	default:
		fmt.Fprintf(&sb, "type %d", typ)
	}
	fmt.Fprintf(&sb, ", %d bytes", len(b))
	if len(b) > 0 {
		fmt.Fprintf(&sb, ", version byte %#02x", b[0])
	}
	var walk func(prefix string, names map[int]string, body []byte)
	walk = func(prefix string, names map[int]string, body []byte) {
		fs, err := pbFields(body, 0)
		if err != nil {
			fmt.Fprintf(&sb, ", %sunparsable (%v)", prefix, err)
		}
		for _, f := range fs {
			name := prefix + fieldName(names, f.num)
			switch {
			case f.wire == 0:
				fmt.Fprintf(&sb, ", %s=%d", name, f.value)
			case names[f.num] == "message" && f.end-f.start > 1+macSize:
				inner := body[f.start:f.end]
				fmt.Fprintf(&sb, ", %s=[version %#02x", name, inner[0])
				walk(name+".", signalMessageFields, inner[1:len(inner)-macSize])
				fmt.Fprintf(&sb, ", mac %x]", inner[len(inner)-macSize:])
			case f.end-f.start <= 8:
				fmt.Fprintf(&sb, ", %s=%x", name, body[f.start:f.end])
			default:
				fmt.Fprintf(&sb, ", %s=%d bytes %x…", name, f.end-f.start, body[f.start:f.start+6])
			}
		}
	}
	switch {
	case typ == parley.EnvelopeSignal && len(b) > 1+macSize:
		walk("", signalMessageFields, b[1:len(b)-macSize])
		fmt.Fprintf(&sb, ", mac %x", b[len(b)-macSize:])
	case typ == parley.EnvelopePreKey && len(b) > 1:
		walk("", preKeyMessageFields, b[1:])
	}
	return sb.String()
}
