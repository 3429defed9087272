package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// messaging is what the messaging measurement found.
type messaging struct {
	median, p95      time.Duration // typing to the recipient's output
	lost, duplicated int
}

// measureMessages has from type cfg.Messages messages into `parley chat`,
// one every cfg.MessageEvery, while to runs `parley recv --json`, and
// times each from the moment it was typed to the moment to printed it.
// Both run on this machine, so one clock times both ends.
func measureMessages(ctx context.Context, cfg Config, from, to *user) (messaging, error) {
	var m messaging
	// Generous: a throttled or lossy path may need reconnections.
	window := time.Duration(cfg.Messages)*cfg.MessageEvery + 30*time.Second
	ctx, cancel := context.WithTimeout(ctx, window+30*time.Second)
	defer cancel()

	recv := to.command("recv", "--json", "--wait", window.String())
	out, err := recv.StdoutPipe()
	if err != nil {
		return m, err
	}
	var recvErr lockedBuffer
	recv.Stderr = &recvErr
	if err := recv.Start(); err != nil {
		return m, err
	}
	defer recv.Process.Kill()
	type arrival struct {
		text string
		at   time.Time
	}
	arrivals := make(chan arrival, 1024)
	go func() {
		defer close(arrivals)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l struct {
				Text string `json:"text"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				arrivals <- arrival{l.Text, time.Now()}
			}
		}
	}()

	chat := from.command("chat", to.name)
	in, err := chat.StdinPipe()
	if err != nil {
		return m, err
	}
	var chatOut lockedBuffer
	chat.Stdout, chat.Stderr = &chatOut, &chatOut
	if err := chat.Start(); err != nil {
		return m, err
	}
	chatDone := make(chan error, 1)
	go func() { chatDone <- chat.Wait() }()
	defer chat.Process.Kill()

	var typedMu sync.Mutex
	typed := make([]time.Time, cfg.Messages)
	go func() {
		t := time.NewTicker(cfg.MessageEvery)
		defer t.Stop()
		for i := range cfg.Messages {
			typedMu.Lock()
			typed[i] = time.Now()
			typedMu.Unlock()
			fmt.Fprintf(in, "lab message %d\n", i)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		// Closing the input ends the chat once its outbox is sent.
		io.WriteString(in, "/quit\n")
		in.Close()
	}()

	seen := make([]int, cfg.Messages)
	var delays []time.Duration
	got := 0
	deadline := time.After(window)
wait:
	for got < cfg.Messages {
		select {
		case a, ok := <-arrivals:
			if !ok {
				break wait
			}
			i, err := strconv.Atoi(strings.TrimPrefix(a.text, "lab message "))
			if err != nil || i < 0 || i >= cfg.Messages {
				continue
			}
			if seen[i]++; seen[i] == 1 {
				got++
				typedMu.Lock()
				delays = append(delays, a.at.Sub(typed[i]))
				typedMu.Unlock()
			}
		case <-deadline:
			break wait
		case <-ctx.Done():
			return m, ctx.Err()
		}
	}
	// Duplicates that come soon after are counted too.
	linger := time.After(time.Second)
more:
	for {
		select {
		case a, ok := <-arrivals:
			if !ok {
				break more
			}
			if i, err := strconv.Atoi(strings.TrimPrefix(a.text, "lab message ")); err == nil && i >= 0 && i < cfg.Messages {
				seen[i]++
			}
		case <-linger:
			break more
		}
	}
	// Kept beside the run's other files, for when messages go missing.
	dir := filepath.Dir(from.home)
	os.WriteFile(filepath.Join(dir, "messages-chat.out"), []byte(chatOut.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "messages-recv.err"), []byte(recvErr.String()), 0o644)
	for _, n := range seen {
		switch {
		case n == 0:
			m.lost++
		case n > 1:
			m.duplicated += n - 1
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		m.median = delays[len(delays)/2]
		m.p95 = delays[min(len(delays)-1, len(delays)*95/100)]
	}
	return m, nil
}
