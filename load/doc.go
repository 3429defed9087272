// Package load drives a real parleyd the way established messaging servers
// are benchmarked, and reports what it sustains.
//
// # Throughput mode
//
// P sender→receiver pairs of connected devices exchange messages of a fixed
// size (1 KiB by default). The aggregate rate rises step by step (20 s a
// step by default). Every message has a scheduled send time; its latency is
// measured from that schedule to its delivery, so a server that falls behind
// cannot hide its queue (no coordinated omission). Each step reports the
// delivered rate, p50/p99/max latency, the sender's wait (p50/p99 from
// the schedule to the server's answer, which comes once the message is
// durable: on the server's disk or on the recipient's device), messages
// late (acknowledged by the server but not delivered 5 s after the step),
// duplicated, the server's CPU, and the share of message copies the
// server wrote to disk (from its /metrics; the others their recipient
// acknowledged first); at the end of the run, after waiting up to 30 s for what is
// late, the messages lost (acknowledged but never delivered). The answer is
// the highest rate with p99 under 100 ms and nothing late or lost.
//
// The payloads are opaque random bytes of the stated size, sent as
// EnvelopeSignal content: the server relays ciphertext it cannot read, so it
// does the same work for them as for real Signal messages, and the load
// generator does not spend its core on encryption. The first 16 bytes carry
// the message's sequence number and scheduled time for the receiver.
//
// # Idle mode
//
// N devices register; the server restarts on the same data (so that memory
// left over from registration cannot hide what connections cost); then all
// N connect and stay idle. The server's resident memory before and after
// they connect, divided by N, is the memory per idle connected device. The
// report also gives the Go heap in use, the goroutine stacks and the
// goroutines each device adds, from the server's /metrics: RSS is roughly
// twice the heap and stacks, the headroom the garbage collector keeps
// (GOGC=100).
//
// # Standby mode
//
// N calls of two devices each: after the same restart as the idle mode,
// both sides of every call open the call's tunnel and hold it, as a call
// whose audio WebRTC carries keeps it standing by. The report gives the
// server's memory, goroutines and CPU per call, against the devices
// connected without tunnels (standby.go).
//
// # Relay mode
//
// RunTURN loads a TURN relay with calls of two pion/turn clients that relay
// 50 packets/s of audio-sized ChannelData to each other, climbing in steps
// of concurrent calls; RunTURNCompare starts parleyd's relay and Debian's
// coturn in turn and compares them (see turn.go and docs/benchmarks.md).
//
// # Pinning
//
// When the tool starts parleyd itself it pins the server to one core and
// itself to another with taskset, so that the figures are per core.
package load
