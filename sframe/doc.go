// Package sframe is Secure Frame (SFrame, RFC 9605): end-to-end encryption
// of call media frames, so that relays forward frames they cannot read.
//
// Specification: https://www.rfc-editor.org/rfc/rfc9605. Every protocol
// step in the code links the section it implements.
//
// A Context holds the base keys of one cipher suite by key ID (KID); it
// derives each KID's AEAD key and salt with HKDF (section 4.4.2). Encrypt
// writes header || ciphertext || tag (section 4.4.3), where the header
// carries the KID and the frame counter (CTR) in the compact encoding of
// section 4.3; Decrypt parses the header, picks the key and verifies the
// tag over header || metadata (section 4.4.4). A Sender hands out counters
// for one KID so that none repeats.
//
// # Cipher suites
//
// The five of RFC 9605's IANA registry (section 8.1):
// AES_128_CTR_HMAC_SHA256_80, _64 and _32 (0x0001–0x0003, section 4.5.1),
// AES_128_GCM_SHA256_128 (0x0004) and AES_256_GCM_SHA512_128 (0x0005).
// Also 0x0006–0x0008, AES-256-CTR with HMAC-SHA512 and 80/64/32-bit tags,
// proposed by draft-barnes-sframe-iana-256 and present in the shared test
// vectors but not in RFC 9605; see their constants before relying on them.
//
// With reused dst buffers, a GCM frame costs no allocation each way; a
// CTR+HMAC frame one (the standard library's AES-CTR stream).
//
// # Test vectors
//
// The tests read ../shared/vectors/sframe/test-vectors.json relative to
// the repository root (the RFC's vectors: header encodings, the
// AES-CTR+HMAC construction, and full derivation and encryption for each
// suite). Without the file they skip, unless CI is set.
//
// # What it does not do
//
// There is no replay window: Decrypt accepts the same frame twice, and
// returns its KID and CTR so the caller can de-duplicate. Key management
// (who gets which base key, when KIDs rotate) belongs to the caller, as
// does the framing that carries metadata. Counters are not persisted.
//
// # Files
//
// header.go is the header encoding; suite.go the cipher suites and their
// sizes; sframe.go the Context, key derivation and the encryption and
// decryption steps; ctrhmac.go the AES-CTR+HMAC AEAD; sender.go the
// counter-keeping Sender; errors.go the sentinel errors.
package sframe
