package audio_test

import (
	"fmt"
	"time"

	"github.com/parleychat/parley/tunnel/audio"
)

// One direction of a call: the sender's packets go (encrypted, in a real
// call) to the receiver, whose playout clock pops a frame every 20 ms;
// in a call the receiver's reports (jb.Feedback) ride back on the packets
// of the other direction, to that side's Sender.Feedback.
func Example() {
	snd := audio.NewSender(audio.SenderConfig{})
	jb := audio.NewJitterBuffer(audio.JitterConfig{})
	start := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var p audio.Packet
	for i := range 10 {
		now := start.Add(time.Duration(i) * 20 * time.Millisecond)
		frame := []byte{0xf8, byte(i)}                          // an encoded Opus frame
		if pkt, ok := snd.Push(frame, now, nil); ok && i != 4 { // packet 4 is lost
			if err := p.Parse(pkt); err != nil {
				panic(err)
			}
			jb.Push(&p, now.Add(30*time.Millisecond))
		}
		f, st := jb.Pop(now.Add(35 * time.Millisecond))
		fmt.Println(st, f)
	}
	st := jb.Stats()
	fmt.Printf("played %d, repaired %d, concealed %d\n", st.Played, st.Repaired, st.Concealed)
	// Output:
	// waiting []
	// waiting []
	// waiting []
	// played [248 0]
	// played [248 1]
	// played [248 2]
	// played [248 3]
	// repaired [248 4]
	// played [248 5]
	// played [248 6]
	// played 7, repaired 1, concealed 0
}
