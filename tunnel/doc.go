// Package tunnel is the client's side of tier 2 of Parley's calls
// (DESIGN.md, "Calls"): a call's media carried as end-to-end encrypted
// packets through parleyd, on the same origin and port as the client's
// session, so that a network that blocks or throttles WebRTC's STUN, DTLS
// and RTP must block the web to stop it.
//
// The two devices of a call exchange 32-byte key shares inside the call's
// Signal-protocol signalling and derive from them (DeriveKeys) the room
// they meet in on the server and one SFrame key per direction (package
// sframe). A device joins the room over a carrier: a WebSocket at Path on
// the server's origin, or a WebTransport session whose QUIC datagrams suit
// media better where UDP gets through. The carrier protocol (proto.go) is a
// handful of one-byte-tagged messages; the server (package server/tunnel)
// forwards Media between the room's two devices without reading it.
//
// A Link keeps a call's carriers: the active one carries the media, a spare
// opened ahead takes over the moment the active one freezes (nothing heard
// for LinkConfig.FreezeAfter despite pings) or fails, and the server
// replays the last half second of media onto it, so that a stalled flow
// costs a short gap, not the call. When a flow froze after N bytes, later
// carriers are rotated at 60% of N, before they freeze.
//
// The media itself (packets with redundancy, the jitter buffer) is package
// tunnel/audio; encryption and the call's life are package call.
package tunnel
