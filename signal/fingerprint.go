package signal

// Safety numbers: libsignal's NumericFingerprintGenerator
// (rust/protocol/src/fingerprint.rs), so that a Parley user and a Signal-style
// client compute the same 60 digits and the same QR payload.
//
// For each party, with key the 33-byte encoding of its identity key:
//
//	h = SHA-512(0x00 0x00 || key || id || key)        // 0x0000: hash version
//	repeat iterations-1 times: h = SHA-512(h || key)
//
// The party's 30 digits are its first 30 bytes of h read as six 5-byte
// big-endian numbers, each mod 100000 and printed as 5 digits. The displayable
// safety number is the two 30-digit strings, the smaller first, so both sides
// see the same 60 digits.
//
// The scannable form is the protobuf CombinedFingerprints (fingerprint.proto):
//
//	version            = 1 (uint32)               // FingerprintVersion
//	local_fingerprint  = 2 { content = 1 (bytes) } // first 32 bytes of our h
//	remote_fingerprint = 3 { content = 1 (bytes) } // first 32 bytes of theirs
//
// Scanning the other side's code compares their local with our remote and
// their remote with our local (CompareScannable).

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
)

// Safety number parameters, as libsignal's clients use them.
const (
	FingerprintVersion    = 2    // the version in the scannable encoding
	FingerprintIterations = 5200 // SHA-512 rounds per identity

	fingerprintScannableLen = 32 // bytes of each hash in the scannable form
	fingerprintDigitsLen    = 30 // digits per party
)

// Errors from CompareScannable.
var (
	ErrFingerprintVersion = errors.New("signal: safety number version mismatch")
	ErrFingerprintFormat  = errors.New("signal: malformed scannable safety number")
)

// SafetyNumber returns libsignal's displayable fingerprint (60 digits, version
// 2, 5200 iterations) for two identities, each given as a stable identifier
// (the username's bytes) and identity key, and the scannable encoding.
//
// The digits are the same on both sides (swap local and remote and they do
// not change); the scannable encoding is the caller's own: it carries the
// local hash first, and is what the other side scans and passes to
// CompareScannable.
func SafetyNumber(localID []byte, localKey PublicKey, remoteID []byte, remoteKey PublicKey) (digits string, scannable []byte, err error) {
	lk, rk := localKey.Bytes(), remoteKey.Bytes()
	if len(lk) != PublicKeySize || len(rk) != PublicKeySize {
		return "", nil, fmt.Errorf("signal: safety number: identity keys must encode to %d bytes, got %d and %d", PublicKeySize, len(lk), len(rk))
	}
	local := fingerprintHash(FingerprintIterations, localID, lk)
	remote := fingerprintHash(FingerprintIterations, remoteID, rk)

	ld, rd := fingerprintDigits(local[:]), fingerprintDigits(remote[:])
	if ld < rd {
		digits = ld + rd
	} else {
		digits = rd + ld
	}
	return digits, scannableFingerprint(FingerprintVersion, local[:fingerprintScannableLen], remote[:fingerprintScannableLen]), nil
}

// CompareScannable reports whether theirs, the scannable safety number shown
// by the other side and scanned by us, matches ours, the one SafetyNumber
// returned to us for the same pair of identities. The comparison of the hashes
// is in constant time. A code of another version gives ErrFingerprintVersion;
// bytes that do not parse give ErrFingerprintFormat.
func CompareScannable(ours, theirs []byte) (bool, error) {
	ov, ol, or, err := parseScannable(ours)
	if err != nil {
		return false, fmt.Errorf("ours: %w", err)
	}
	tv, tl, tr, err := parseScannable(theirs)
	if err != nil {
		return false, fmt.Errorf("theirs: %w", err)
	}
	if tv != ov {
		return false, fmt.Errorf("%w: theirs %d, ours %d", ErrFingerprintVersion, tv, ov)
	}
	same := subtle.ConstantTimeCompare(tl, or) & subtle.ConstantTimeCompare(tr, ol)
	return same == 1, nil
}

// fingerprintHash is one party's iterated hash.
func fingerprintHash(iterations int, id, key []byte) [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte{0, 0}) // hash version 0x0000
	h.Write(key)
	h.Write(id)
	h.Write(key)
	var buf [sha512.Size]byte
	h.Sum(buf[:0])
	for i := 1; i < iterations; i++ {
		h.Reset()
		h.Write(buf[:])
		h.Write(key)
		h.Sum(buf[:0])
	}
	return buf
}

// fingerprintDigits encodes the first 30 bytes of a hash as 30 digits.
func fingerprintDigits(h []byte) string {
	out := make([]byte, 0, fingerprintDigitsLen)
	for i := 0; i < 6; i++ {
		var x uint64
		for _, c := range h[5*i : 5*i+5] {
			x = x<<8 | uint64(c)
		}
		s := strconv.FormatUint(x%100000, 10)
		for j := len(s); j < 5; j++ {
			out = append(out, '0')
		}
		out = append(out, s...)
	}
	return string(out)
}

// scannableFingerprint encodes CombinedFingerprints. Both hashes are 32 bytes
// and the version is below 128, so every length fits one varint byte.
func scannableFingerprint(version uint8, local, remote []byte) []byte {
	b := make([]byte, 0, 2+2*(4+fingerprintScannableLen))
	b = append(b, 0x08, version) // field 1, varint
	b = append(b, 0x12, byte(2+len(local)), 0x0a, byte(len(local)))
	b = append(b, local...) // field 2 { field 1, bytes }
	b = append(b, 0x1a, byte(2+len(remote)), 0x0a, byte(len(remote)))
	b = append(b, remote...) // field 3 { field 1, bytes }
	return b
}

// parseScannable decodes CombinedFingerprints as libsignal does: fields in any
// order, unknown fields skipped, version and both contents required.
func parseScannable(b []byte) (version uint64, local, remote []byte, err error) {
	var haveVersion bool
	for len(b) > 0 {
		tag, n := protoVarint(b)
		if n == 0 {
			return 0, nil, nil, ErrFingerprintFormat
		}
		b = b[n:]
		field, wire := tag>>3, tag&7
		switch wire {
		case 0:
			v, n := protoVarint(b)
			if n == 0 {
				return 0, nil, nil, ErrFingerprintFormat
			}
			b = b[n:]
			switch field {
			case 1:
				version, haveVersion = v, true
			case 2, 3:
				return 0, nil, nil, ErrFingerprintFormat
			}
		case 2:
			l, n := protoVarint(b)
			if n == 0 || l > uint64(len(b)-n) {
				return 0, nil, nil, ErrFingerprintFormat
			}
			val := b[n : n+int(l)]
			b = b[n+int(l):]
			switch field {
			case 1:
				return 0, nil, nil, ErrFingerprintFormat
			case 2, 3:
				content, err := parseLogicalFingerprint(val)
				if err != nil {
					return 0, nil, nil, err
				}
				if field == 2 {
					local = content
				} else {
					remote = content
				}
			}
		case 1, 5:
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(b) < size {
				return 0, nil, nil, ErrFingerprintFormat
			}
			b = b[size:]
		default:
			return 0, nil, nil, ErrFingerprintFormat
		}
	}
	if !haveVersion || local == nil || remote == nil {
		return 0, nil, nil, ErrFingerprintFormat
	}
	return version, local, remote, nil
}

// parseLogicalFingerprint returns the content field of a LogicalFingerprint.
func parseLogicalFingerprint(b []byte) ([]byte, error) {
	var content []byte
	for len(b) > 0 {
		tag, n := protoVarint(b)
		if n == 0 {
			return nil, ErrFingerprintFormat
		}
		b = b[n:]
		switch tag & 7 {
		case 0:
			_, n := protoVarint(b)
			if n == 0 {
				return nil, ErrFingerprintFormat
			}
			b = b[n:]
		case 2:
			l, n := protoVarint(b)
			if n == 0 || l > uint64(len(b)-n) {
				return nil, ErrFingerprintFormat
			}
			if tag>>3 == 1 {
				content = append([]byte{}, b[n:n+int(l)]...)
			}
			b = b[n+int(l):]
		default:
			return nil, ErrFingerprintFormat
		}
	}
	if content == nil {
		return nil, ErrFingerprintFormat
	}
	return content, nil
}

// protoVarint decodes a protobuf varint; n is 0 if b does not hold one.
func protoVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
