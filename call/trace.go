package call

import (
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// TracePacket is one audio packet that a call sent or received (or, in a
// tunnelled call, one frame its jitter buffer played), for
// measuring the path: the hostile-network lab pairs the packets one side
// sent with those the other received, by RTP sequence number (which the
// TURN relay and SRTP leave alone), to see what was lost, how late each
// came, and the gaps a receiver would have played.
type TracePacket struct {
	Out       bool      // sent by this side (else received)
	Played    bool      // received, and played now by the tunnel's jitter buffer (At is when)
	Seq       uint16    // RTP sequence number
	Timestamp uint32    // RTP timestamp (48 kHz)
	Size      int       // bytes of Opus payload
	At        time.Time // when it left (as handed to the transport) or arrived
	// Version, of a frame sent through the tunnel, is the file it came
	// from: 0 for Media.Send, i for Media.SendLower[i-1].
	Version int
	// Resent, of a frame received through the tunnel, says that it came
	// in a packet sent again (audio.Frame.Resent).
	Resent bool
}

// traceFactory makes the interceptor that reports the packets sent to the
// trace of the call in progress (trace returns it, or nil).
type traceFactory struct{ trace func() func(TracePacket) }

func (f traceFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &traceSent{trace: f.trace}, nil
}

type traceSent struct {
	interceptor.NoOp
	trace func() func(TracePacket)
	mu    sync.Mutex // the trace is called with one packet at a time
}

func (t *traceSent) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if tr := t.trace(); tr != nil {
			t.mu.Lock()
			tr(TracePacket{Out: true, Seq: h.SequenceNumber, Timestamp: h.Timestamp, Size: len(payload), At: time.Now()})
			t.mu.Unlock()
		}
		return w.Write(h, payload, a)
	})
}
