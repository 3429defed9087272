package tunnel

import "time"

// MaxQueueAge is how long media may wait in a carrier's queue (a client's
// or the server's) before it is dropped unsent: audio that late is no use
// to the listener's jitter buffer, and sending it would only delay the
// audio behind it. On a link slower than the media, a queue that kept
// everything would grow into seconds of delay that never drain.
const MaxQueueAge = 500 * time.Millisecond

// Queued is a message waiting for a carrier's writer.
type Queued struct {
	Msg []byte
	At  time.Time // when it was queued
}

// Stale reports whether q is media that has waited longer than
// MaxQueueAge at now. Other messages are never stale.
func (q Queued) Stale(now time.Time) bool {
	return len(q.Msg) > 0 && IsMedia(MsgType(q.Msg[0])) && now.Sub(q.At) > MaxQueueAge
}

// Queue holds the messages for one carrier's writer.
type Queue chan Queued

// Offer queues msg without blocking; it reports false, dropping msg, when
// the queue is full.
func (q Queue) Offer(msg []byte) bool {
	select {
	case q <- Queued{msg, time.Now()}:
		return true
	default:
		return false
	}
}
