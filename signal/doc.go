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
// @signalapp/libsignal-client.
//
// The package holds no I/O: keys, sessions and prekeys live in a Store the
// caller provides, so the same code runs natively and in WebAssembly.
package signal
