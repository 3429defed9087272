// Package audio is the media logic of tier 2 of calls (DESIGN.md, "Calls"):
// Opus audio through the client's ordinary session with the server, where
// packets may be lost (a QUIC datagram, a frozen TCP flow being replaced),
// delayed or reordered. It holds the packet format, the Sender (bundling,
// redundancy and the bitrate it recommends) and the JitterBuffer (adaptive
// playout delay and concealment). Package sframe encrypts each packet and
// package tunnel carries it; this package does no I/O, starts no goroutine
// and reads no clock: every method takes now, so tests are deterministic.
//
// # Packet format, version 1
//
// A packet is the plaintext inside one SFrame ciphertext. It carries one or
// more consecutive Opus packets ("frames") of one duration D (20 ms),
// numbered by sequence number from 0, newest first: the fresh frames, new
// in this packet, then earlier frames repeated so that a lost packet is
// repaired by the next one without a round trip. Optionally, it carries
// the sender's report on the audio it receives the other way.
//
// Fields in order; "varint" is an unsigned LEB128 number (7 bits a byte,
// least significant group first, high bit set on all but the last byte),
// as Go's encoding/binary writes it, in its shortest form (no trailing
// 0x00 byte after the first), of at most 8 bytes:
//
//	version   1 byte   1 (Version); decoders reject others
//	flags     1 byte   bit 0: feedback present; other bits 0 (rejected otherwise)
//	seq       varint   sequence number of the newest frame, ≤ 2⁵³−1
//	clock     varint   sender clock: ms since the sender's first frame, ≤ 2³²−1
//	n         1 byte   number of frames, 1..16 (MaxFrames); seq ≥ n−1
//	fresh     1 byte   frames new in this packet, 1..n: seq, seq−1, ..., seq−fresh+1
//	n × frame:         sequence numbers seq, seq−1, ..., seq−n+1
//	  length  varint   0..1275 (MaxFrameLen); 0: the sender had no audio for it
//	  data    length bytes, one Opus packet (RFC 6716)
//	if feedback present, the report on the other direction:
//	  highest varint   highest sequence number received, ≤ 2⁵³−1
//	  loss    1 byte   share of the frames of the last 100 playout slots that were
//	                   lost before repair, in 1/256 (255 for all): their first-hand
//	                   copy (a fresh frame of its packet) had not come by their slot,
//	                   nor within 0.3 s after it (that is lateness, not loss); slots
//	                   less than 0.3 s old do not count yet, nor those before the
//	                   buffer had measured 20 frames' lateness (its target was a
//	                   guess); 0 while fewer than 10 slots count
//	  burst   1 byte   longest run of such frames among them (255 for more)
//	  queue   varint   queueing delay estimate, ms ≤ 2³²−1: the one-way delay
//	                   (arrival − clock) over the last second above that over the
//	                   last 30 s, both as minima (of 250 ms buckets)
//	  target  varint   the jitter buffer's target delay, ms ≤ 2³²−1
//	  echo    varint   clock of the latest packet received (the highest clock), ms
//	  held    varint   ms since that packet arrived
//
// Nothing may follow. A whole packet is at most 1072 bytes (MaxPacket), so
// that with SFrame's header and tag it fits one tunnel media payload
// (1100 bytes). A decoder rejects anything else with an error wrapping
// ErrMalformed. The round trip, as RTCP's SR/RR (RFC 3550 section 6.4.1):
// RTT = (sender clock now) − echo − held.
//
// Example: seq 5, clock 100, frames 5 (bytes AA BB) and 4 (empty), one
// fresh, no feedback: 01 00 05 64 02 01 02 AA BB 00.
//
// # Sender
//
// Push is called once per frame and returns a packet once FramesPerPacket
// frames are pending (1, or 2–3 on a slow path, up to 8 once the bitrate is
// at its lowest). Each packet repeats the
// Depth frames before its fresh ones (0..MaxDepth, 12), fewer if they
// would not fit MaxPacket or the 16 frames a packet holds. From each report of the peer the Sender tells
// two causes of trouble apart:
//   - Loss without queueing (a censor's random or bursty drops): the depth
//     rises at once to the larger of the longest burst reported and the
//     depth at which random loss of that rate leaves 0.1 % after repair
//     (loss^(depth+1) ≤ 0.001), and falls one frame per 2 s once it has
//     not been needed for 10 s. Bitrate and bundling do not change.
//   - A slow path: a queueing delay (the peer's estimate, or half the rise
//     of the round trip over its minimum) of 100 ms or more. At most once
//     per 0.5 s plus the base round trip, unless the queue is draining,
//     the Sender steps down. While the redundancy is above 1, a step
//     halves it and, unless the queue is 200 ms or more, leaves the audio
//     alone: on a lossy path the repeats are what fill it (QUIC's
//     congestion window, which takes the loss for congestion, leaves a
//     lossy path little room). Then each step lowers
//     the bitrate one rung of its ladder (6, 8, 12, 16, 24, 32 kbit/s) and
//     bundles one more frame per packet (fewer headers), one more of each
//     per 200 ms of queue. For 30 s, and until the bitrate is back, the
//     redundancy stays within what the steps left it; loss seen while the
//     queueing delay is 50 ms or more does not raise it. After 5 s of a
//     clear path (under 20 ms) it steps back up, one step per 5 s: to 3
//     frames a packet, then half as much redundancy again (at least one
//     frame more) if the loss asks for more, then the bitrate, then fewer
//     frames a packet; a step up that makes a queue (40 ms) within 5 s is
//     taken back at once, and the next waits twice as long (up to a
//     minute).
//
// Stats.Reason says why the last change was made, e.g. "redundancy 2→3: 11%
// loss, bursts of 1". The bitrate is a recommendation: a browser sets it on
// its encoder; the CLI sends recorded audio and only reports it.
//
// # Jitter buffer
//
// Push takes every copy of every frame; the first copy counts, the others
// are duplicates. Pop, called once per D by the playout clock, gives the
// frame of the next slot: Played, Repaired (from a redundant copy; its
// first copy did not come in time), Concealed (missing; play an empty Opus
// frame so that the decoder conceals it), or Waiting before playout starts,
// at the first frame's arrival plus the target delay.
//
// The target is the 99.5th percentile of the frames' lateness over the
// last 5 s plus D/2, within MinDelay (20 ms) and MaxDelay (1 s); 60 ms
// until 20 frames have been measured. A frame's lateness is the arrival
// of its first copy, fresh or repeated, − seq×D, above the minimum of that
// over the window: when the frame could be played. With bursty loss the
// target grows for the repairs to come in time; on a path that delays
// packets unevenly, a frame whose own packet is late often comes in time
// in a later one, and the target follows the copies that come first, not
// the late ones (which would ask for ~100 ms more on the lab's jitter-150
// profile for what the redundancy already repairs). The loss before
// repair that the sender sizes its redundancy by is still that of the
// first-hand copies. The target is also at least the repair
// horizon of the sender's redundancy, R×D + D/2 for packets that repeat R
// earlier frames (the most over the last second, so that it comes down
// soon after the sender repeats less): a repair of the longest burst the
// sender covers comes that late.
//
// The delay grows by a concealment slot inserted where the next frame is
// missing anyway (it may be only late), while it is D/2 short of the
// target, and shrinks by skipping a frame while it is 1.5 D over: a
// missing or silent (≤ 3 bytes) frame at once, any other at most once per
// 25 slots, more often the further over the target (down to every other
// slot at 1 s over). A frame that comes after its slot is Late, and
// dropped. The buffer holds frames up to 128 ahead of the playout and
// remembers 128 behind (older ones are dropped and counted). A frame
// further ahead restarts playout from it if the buffer is empty (Resyncs),
// and otherwise skips the oldest frames to make room; a playout delay
// more than MaxDelay over the target (the playout clock stopped) skips
// frames at once to catch up.
package audio
