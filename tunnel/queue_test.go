package tunnel

import (
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	q := make(Queue, 2)
	if !q.Offer(AppendMedia(nil, []byte{1})) || !q.Offer(AppendPing(nil, MsgPing, 1)) {
		t.Fatal("an empty queue refused a message")
	}
	if q.Offer(AppendMedia(nil, []byte{2})) {
		t.Error("a full queue took a message")
	}
	media, ping := <-q, <-q
	later := time.Now().Add(MaxQueueAge + time.Millisecond)
	if media.Stale(time.Now()) || !media.Stale(later) {
		t.Errorf("media queued at %v: stale now %v, after MaxQueueAge %v", media.At, media.Stale(time.Now()), media.Stale(later))
	}
	if ping.Stale(later) {
		t.Error("a ping went stale: only media does")
	}
}
