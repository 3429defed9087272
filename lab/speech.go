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
// enough for the call, and the same speech at lower bitrates (lowerRates),
// which a tunnelled call sends from where its sender chooses a lower
// bitrate (parley call --send-lower).
type speech struct {
	alice, bob           string
	aliceLower, bobLower []string
}

// lowerRates are the bitrates, in kbit/s, of the lower versions: those of
// the tunnel sender's ladder (package tunnel/audio).
var lowerRates = []int{6, 8, 12, 16, 24, 32}

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

// makeSpeech writes alice.ogg and bob.ogg in dir, each at least d long,
// and their lower versions.
func makeSpeech(ctx context.Context, dir string, d time.Duration) (*speech, error) {
	sp := &speech{alice: filepath.Join(dir, "alice-speech.ogg"), bob: filepath.Join(dir, "bob-speech.ogg")}
	for _, x := range []struct {
		path  string
		text  []string
		voice string
		lower *[]string
	}{{sp.alice, aliceText, "en+f3", &sp.aliceLower}, {sp.bob, bobText, "en+m3", &sp.bobLower}} {
		wav := strings.TrimSuffix(x.path, ".ogg") + ".wav"
		say := func(text []string) (time.Duration, error) {
			if out, err := exec.CommandContext(ctx, "espeak-ng", "-v", x.voice, "-w", wav, strings.Join(text, " ")).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("espeak-ng: %v: %s", err, out)
			}
			st, err := os.Stat(wav)
			if err != nil {
				return 0, err
			}
			// espeak-ng writes 16-bit mono at 22050 Hz after a 44-byte header.
			return time.Duration(st.Size()-44) * time.Second / (2 * 22050), nil
		}
		// One round of the text, then as many rounds as the call needs,
		// said at once (speaking a long text anew for each sentence added
		// would take minutes for a 10-minute call).
		round, err := say(x.text)
		if err != nil {
			return nil, err
		}
		if round < d+time.Second {
			var text []string
			for range int((d+time.Second)/round) + 1 {
				text = append(text, x.text...)
			}
			if _, err := say(text); err != nil {
				return nil, err
			}
		}
		if out, err := exec.CommandContext(ctx, "opusenc", "--quiet", wav, x.path).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("opusenc: %v: %s", err, out)
		}
		for _, kbps := range lowerRates {
			low := fmt.Sprintf("%s-%dk.ogg", strings.TrimSuffix(x.path, ".ogg"), kbps)
			if out, err := exec.CommandContext(ctx, "opusenc", "--quiet", "--bitrate", fmt.Sprint(kbps), wav, low).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("opusenc --bitrate %d: %v: %s", kbps, err, out)
			}
			*x.lower = append(*x.lower, low)
		}
	}
	return sp, nil
}
