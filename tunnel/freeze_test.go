package tunnel

import (
	"testing"
	"time"
)

// TestFreezeWait: a silent carrier is taken for frozen after FreezeAfter,
// or three round trips on a slow path, but never after more than
// maxSlowFreeze, however long its round trip has grown.
func TestFreezeWait(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct{ freeze, rtt, want time.Duration }{
		{250 * ms, 0, 250 * ms},
		{250 * ms, 10 * ms, 250 * ms},
		{250 * ms, 200 * ms, 600 * ms},
		{250 * ms, 30 * time.Second, maxSlowFreeze},
		{time.Second, 500 * ms, 1500 * ms},
	} {
		if got := freezeWait(c.freeze, c.rtt); got != c.want {
			t.Errorf("freezeWait(%v, %v) = %v, want %v", c.freeze, c.rtt, got, c.want)
		}
	}
}
