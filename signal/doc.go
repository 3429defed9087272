// Package signal is the Signal protocol, byte-compatible with libsignal:
// Curve25519 identity keys with XEdDSA signatures, one-time, signed and
// Kyber-1024 prekeys, PQXDH session set-up, the Double Ratchet, and
// PreKeySignalMessage / SignalMessage in libsignal's encoding (version 4).
//
// Specifications:
//   - XEdDSA: https://signal.org/docs/specifications/xeddsa/
//   - PQXDH: https://signal.org/docs/specifications/pqxdh/
//   - Double Ratchet: https://signal.org/docs/specifications/doubleratchet/
//
// The wire format follows libsignal's Rust sources (rust/protocol), and is
// proven by the interop tests in signal/signaltest against
// @signalapp/libsignal-client 0.103.0.
//
// The package holds no I/O: keys, sessions and prekeys live in a Store the
// caller provides, so the same code runs natively and in WebAssembly. Each
// operation loads what it needs, works on a copy, and stores the result only
// when it has fully succeeded: a rejected message changes nothing. Calls for
// the same remote address must not overlap (each loads, updates and stores
// its session record); the caller serialises them.
//
// # Files
//
// keys.go, xeddsa.go and kyber.go are the key types and their encodings
// (0x05 || 32 bytes, 0x08 || 1568 bytes); prekeys.go and records.go generate
// and encode prekeys; pqxdh.go is the key agreement; ratchet.go the KDF
// chains; state.go one Double Ratchet session state; session.go the
// SessionRecord (current and archived states) and its storage encoding;
// message.go the wire messages; spqr.go the SPQR compatibility below;
// cipher.go the API (ProcessPreKeyBundle, Encrypt, DecryptPreKey, Decrypt);
// errors.go the sentinel errors.
//
// # Facts from libsignal
//
// Read in libsignal's Rust sources (v0.101, August 2026, with the SPQR crate
// it pins) and confirmed against 0.103.0 by the interop tests:
//
//   - XEdDSA (rust/core/src/curve/curve25519.rs) signs with the clamped
//     scalar as is and stores the sign bit of the Edwards public key in the
//     top bit of the signature's last byte; the verifier takes the sign from
//     there, reduces S mod L after checking its top three bits are zero, and
//     accepts u-coordinates as curve25519-dalek does.
//   - PQXDH (rust/protocol/src/pqxdh.rs): secret = 0xFF*32 || DH(IKa,SPKb) ||
//     DH(EKa,IKb) || DH(EKa,SPKb) [|| DH(EKa,OPKb)] || Kyber shared secret;
//     HKDF-SHA256 without salt, info
//     "WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024", 96 bytes: root key,
//     chain key, and the initial SPQR key. The recipient rejects a base key
//     that is not canonical (u >= p or with a small-order component). The
//     initiator's first receiving chain is the recipient's signed prekey with
//     the PQXDH chain key; its first sending chain is one DH step from it.
//   - Double Ratchet (ratchet/keys.rs, double_ratchet.rs): chain key steps
//     are HMAC-SHA256(ck, 0x02), message seeds HMAC-SHA256(ck, 0x01); message
//     keys are HKDF(salt = SPQR key, ikm = seed, "WhisperMessageKeys") into
//     cipher key 32 || MAC key 32 || IV 16; root steps are HKDF(salt = root
//     key, DH, "WhisperRatchet") into root 32 || chain 32. AES-256-CBC with
//     PKCS#7. previous_counter is the old sending index minus one. Skipped
//     keys are kept as seeds, newest first, 2,000 per chain; 5 receiver
//     chains; a jump of more than 25,000 is refused; 40 archived states.
//   - Messages (protocol.rs): version byte 0x44; MAC = first 8 bytes of
//     HMAC-SHA256(mac key, sender identity || receiver identity || version
//     byte || protobuf), checked over the received bytes. A version-4
//     PreKeySignalMessage must carry the Kyber prekey id and ciphertext
//     (0x08 || 1568 bytes). SignalMessage field 6 (addresses) is only set
//     for Signal service ids; libsignal rejects a message whose addresses do
//     not match, so we reject any message that has them.
//   - Decryption (session_management.rs) tries the current state, then,
//     for SignalMessages only, each archived state, promoting the one that
//     works; a duplicate stops the search. A PreKeySignalMessage whose base
//     key matches an existing state reuses it instead of running PQXDH again.
//     Trust is checked with IsTrustedIdentity (Sending when processing a
//     bundle and encrypting, Receiving when decrypting) before the identity
//     is saved with SaveIdentity; sessions whose PreKeySignalMessages were not
//     answered within 30 days are not used for sending.
//
// # SPQR: there is no classic fallback in libsignal 0.103
//
// Version-4 SignalMessages carry pq_ratchet, a message of SPQR, the Sparse
// Post-Quantum Ratchet (github.com/signalapp/SparsePostQuantumRatchet).
// libsignal used to accept peers without it (min_version V0), but since
// v0.92.0 (commit "Force SPQR v1", April 2026) every new session requires
// SPQR V1: a message with an empty pq_ratchet fails with "post-quantum
// ratchet error: Minimum version" and a message with an unknown SPQR version
// fails to decode (signaltest's TestLibsignalSPQRAcceptance pins this down
// against 0.103.0). So a classic Double Ratchet cannot talk to 0.103 at all,
// and the brief's premise that libsignal falls back is wrong for it.
//
// What we do instead (spqr.go) needs no ML-KEM: SPQR V1 message keys come
// from a KDF chain per epoch, and a message is 0x01 || epoch (varint) ||
// index (varint) || payload type || optional 32-byte chunk. Epoch 1 uses the
// chain that HKDF(salt = 32 zero bytes, ikm = the PQXDH SPQR key,
// "Signal PQ Ratchet V1 Chain  Start") starts (bytes 32-64 for A→B, 64-96
// for B→A; each step is HKDF(salt = zeros, ikm = next, BE32(counter) ||
// "Signal PQ Ratchet V1 Chain Next") into next 32 || key 32, counter from 1).
// Index 0 names no key: the message keys then have no SPQR salt. A later
// epoch needs an ML-KEM-768 exchange carried in the payloads. We
// send payload None (type 0) in epoch 1 with our chain's index, which
// libsignal accepts and which never starts that exchange, and we take the
// key of any epoch-1 message from our receiving chain, ignoring the chunks
// libsignal sends. The session keeps PQXDH's post-quantum protection of the
// initial secret, but gains none of SPQR's post-quantum healing; a message
// from a later epoch (which libsignal cannot reach with us) is rejected.
// Real SPQR is future work.
//
// # Storage encodings
//
// SessionRecord, the prekey records and KeyPair have MarshalBinary and
// Unmarshal… functions. They are protobuf written and read by hand with
// google.golang.org/protobuf/encoding/protowire, in libsignal's layouts
// (rust/protocol/src/proto/storage.proto: RecordStructure,
// SessionStructure, PreKeyRecordStructure, SignedPreKeyRecordStructure)
// with the same field numbers, plus Parley fields numbered from 101 (the
// SPQR chains; libsignal's own pq_ratchet_state, field 15, is never
// written). Hand-written rather than generated because the messages are few
// and small, the decoders must be strict and fuzzed anyway, and it keeps
// protoc and generated code out of the build. The wire messages are encoded
// the same way.
//
// Our decoders are stricter than libsignal's in one place: a public key must
// be exactly 33 bytes (libsignal ignores trailing bytes).
package signal
