// Package call is tier 1 of Parley's voice calls (DESIGN.md, "Calls"): a
// one-to-one audio call over WebRTC (github.com/pion/webrtc/v4), Opus only,
// set up through the end-to-end encrypted call signals of package client.
//
// A Phone is one device's calling endpoint. It places calls (Dial), offers
// incoming ones to its user (Rings, then Incoming.Accept or Decline), and
// answers "busy" to an offer while a call is ringing or in progress. It does
// not read the network itself: the caller of Phone feeds it every received
// call signal (client.EventCall) through Handle, and it sends its own through
// a Signaller, which *client.Client is. Tests use a fake Signaller and two
// Phones in one process.
//
// Signalling follows the WebRTC offer/answer model with trickle ICE: the
// caller sends the offer, then each local ICE candidate as it is found; the
// callee answers, then trickles its own. Candidates that arrive before the
// description they belong to are queued. A hang-up from either side ends the
// call on both; "decline" and "busy" end the caller's attempt; no answer
// within Config.RingTimeout ends it too (and tells the callee). Signals travel
// in order through one bounded queue per Phone (see Phone.Run).
//
// Media has no codec in Go: what a call sends is read, packet by packet, from
// an Ogg Opus file (OggReader, which splits pages into packets by their
// lacing values, RFC 3533 and RFC 7845) and paced in real time by each
// packet's duration, read from its TOC byte (RFC 6716 section 3.1). What
// arrives is written, in RTP sequence order, to an Ogg Opus file (OggWriter);
// a packet that never came is recorded as an empty Opus frame, which a
// decoder conceals (RFC 6716 section 3.2.1), so that the recording keeps its
// timing and shows its gaps.
//
// Each call measures its set-up time (from dialling, or answering, to the
// first audio packet received), the packets sent and received, and those
// lost, counted from RTP sequence numbers (Stats), and records its path:
// the candidate types of the selected pair and, when ours is relayed, how
// it reaches the TURN server (udp, tcp or tls).
//
// The STUN and TURN servers are the caller's to give (Config.ICEServers;
// the CLI asks parleyd for a TURN credential). TURN over TLS verifies the
// server's certificate: pion's ICE agent trusts the system's roots and
// offers no other setting, so with Config.TURNTLS the Phone dials the
// agent's TCP connections to TURN servers itself (SetICEProxyDialer) and
// does the TLS handshake with that configuration.
//
// Tier 2, the server's tunnel, is in tunnel.go. A WebRTC call can race it
// and move between the two without hanging up (Config.Fallback): the offer
// and the answer then carry both shares of the tunnel secret beside the
// SDP, and both sides open the tunnel beside ICE. The call starts on
// WebRTC if it comes up within RaceGrace (1 s) of the answer, else on
// whichever comes first; one that started in the tunnel moves up to WebRTC
// when that comes up over UDP; one on WebRTC moves down to the tunnel
// when ICE fails or nothing comes for 1.5 s (ICE consent checks every half
// second), and tells the other side with a "move" signal; it moves back up
// when WebRTC has been up again for a while (the caller restarts ICE if it
// does not come back by itself), or the other side did. Each
// side records the audio of the way the other sends on, with silence for
// the time between, so that the recording keeps time.
//
// What is not here yet: fresh TURN credentials for a call that outlives
// them, and "answered on another device" for a callee with several devices
// (the other devices ring until the caller hangs up).
package call
