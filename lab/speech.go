package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// speech is the Ogg Opus files each side sends: espeak-ng speech, long
// enough for the call.
type speech struct{ alice, bob string }

// The texts: plain sentences with varied sounds, said in turn until the
// speech lasts as long as the call.
var (
	aliceText = []string{
		"Hello Bob, this is Alice, calling you through the lab.",
		"The quick brown fox jumps over the lazy dog.",
		"Please call Stella and ask her to bring these things with her from the store.",
		"Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
		"We also need a small plastic snake and a big toy frog for the kids.",
	}
	bobText = []string{
		"Hi Alice, Bob here. I can hear you.",
		"She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.",
		"A large size in stockings is hard to sell.",
		"The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
		"It is easy to tell the depth of a well. These days a chicken leg is a rare dish.",
	}
)

// makeSpeech writes alice.ogg and bob.ogg in dir, each at least d long.
func makeSpeech(ctx context.Context, dir string, d time.Duration) (*speech, error) {
	sp := &speech{alice: filepath.Join(dir, "alice-speech.ogg"), bob: filepath.Join(dir, "bob-speech.ogg")}
	for _, x := range []struct {
		path  string
		text  []string
		voice string
	}{{sp.alice, aliceText, "en+f3"}, {sp.bob, bobText, "en+m3"}} {
		wav := strings.TrimSuffix(x.path, ".ogg") + ".wav"
		var said []string
		for i := 0; ; i++ {
			said = append(said, x.text[i%len(x.text)])
			if out, err := exec.CommandContext(ctx, "espeak-ng", "-v", x.voice, "-w", wav, strings.Join(said, " ")).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("espeak-ng: %v: %s", err, out)
			}
			st, err := os.Stat(wav)
			if err != nil {
				return nil, err
			}
			// espeak-ng writes 16-bit mono at 22050 Hz after a 44-byte header.
			if time.Duration(st.Size()-44)*time.Second/(2*22050) >= d+time.Second || i > 200 {
				break
			}
		}
		if out, err := exec.CommandContext(ctx, "opusenc", "--quiet", wav, x.path).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("opusenc: %v: %s", err, out)
		}
	}
	return sp, nil
}
