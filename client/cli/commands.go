package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
)

// defaultServer is parleyd's development address.
const defaultServer = "http://127.0.0.1:8080"

var cmdRegister = &command{
	name:  "register",
	args:  "[--server URL] NAME",
	short: "create an account on a server, with this folder as its first device",
	long: `Register creates the account NAME on the server and makes this folder its
first device. It generates the identity key (whose safety numbers your contacts
compare), a device key that logs this device in, and prekeys that let others
start encrypted sessions with you while you are offline. Private keys never
leave the folder.

A name is ` + parley.UsernameRule + `.`,
	flags: func(fs *flag.FlagSet) {
		fs.String("server", defaultServer, "the server's URL (http:// or https://)")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) != 1 {
			return usagef("want one NAME")
		}
		server := fs.Lookup("server").Value.String()
		c, done, err := e.open(ctx, false)
		if err != nil {
			return err
		}
		defer done()
		if err := registerRetrying(ctx, e, c, server, args[0]); err != nil {
			if parley.ErrorKind(err) == parley.KindConflict && !strings.Contains(err.Error(), "already registered") {
				return fmt.Errorf("the name %s is taken on %s; pick another", strings.ToLower(args[0]), server)
			}
			return err
		}
		user, dev, srv, _ := c.Whoami()
		fmt.Fprintf(e.stdout, "registered %s (device %d) on %s\n", user, dev, srv)
		return nil
	},
}

// registerTries is how many times register tries a registration that the
// network broke (a lossy link can lose a login's packets for longer than
// the server waits); the next try resumes with the same keys.
const registerTries = 3

func registerRetrying(ctx context.Context, e *env, c *client.Client, server, name string) error {
	for try := 1; ; try++ {
		err := c.Register(ctx, server, name)
		if err == nil || try == registerTries || parley.ErrorKind(err) != parley.KindUnavailable || ctx.Err() != nil {
			return err
		}
		wait := time.Duration(try) * time.Second
		fmt.Fprintf(e.stderr, "registering failed (%s); trying again in %v\n", explain(err), wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

var cmdWhoami = &command{
	name:  "whoami",
	args:  "",
	short: "show the account of this folder",
	long:  "Whoami prints the account's name, this device's number and the server.",
	run: func(ctx context.Context, e *env, _ *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usagef("whoami takes no arguments")
		}
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		user, dev, server, _ := c.Whoami()
		fmt.Fprintf(e.stdout, "%s (device %d) on %s\n", user, dev, server)
		return nil
	},
}

var cmdSend = &command{
	name:  "send",
	args:  "[--timeout D] USER TEXT...",
	short: "send a message",
	long: `Send encrypts TEXT for every device of USER and hands it to the server, then
exits once the server has stored it. TEXT "-" reads the message from standard
input. A message the server has not confirmed stays in this folder's outbox
and is sent again by the next parley command that connects (send, recv or
chat), so nothing is lost when the server is unreachable; the recipient sees
it once.`,
	flags: func(fs *flag.FlagSet) {
		fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) < 2 {
			return usagef("want USER and TEXT")
		}
		to, err := parley.ParseUserID(args[0])
		if err != nil {
			return err
		}
		text := strings.Join(args[1:], " ")
		if text == "-" {
			b, err := io.ReadAll(io.LimitReader(e.stdin, client.MaxTextSize+1))
			if err != nil {
				return err
			}
			text = strings.TrimSuffix(string(b), "\n")
		}
		timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		m, err := c.Send(ctx, to, text)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r := start(ctx, c)
		defer r.stop()
		connected := false
		for {
			select {
			case ev := <-c.Events():
				switch {
				case ev.Type == client.EventConnected:
					connected = true
				case ev.Type == client.EventDisconnected && !connected:
					return fmt.Errorf("%s; the message stays in the outbox and is sent the next time parley connects", explain(ev.Err))
				case ev.Type == client.EventIdentityChanged:
					fmt.Fprintf(e.stderr, "! your safety number with %s changed: compare it again with 'parley safety-number %s'\n", ev.Peer, ev.Peer)
				case ev.Type == client.EventSent && ev.Message.ID == m.ID:
					return nil
				case ev.Type == client.EventSendFailed && ev.Message.ID == m.ID:
					return ev.Err
				}
			case err := <-r.done:
				return err
			case <-ctx.Done():
				return fmt.Errorf("the server did not confirm the message within %v; it stays in the outbox and is sent the next time parley connects", timeout)
			}
		}
	},
}

var cmdRecv = &command{
	name:  "recv",
	args:  "[--wait D] [--json]",
	short: "print messages that have arrived",
	long: `Recv connects, prints every message not shown before, waits until the server
has handed over everything it kept for this device, then goes on printing live
messages for --wait and exits. Each message is printed once, ever.

The text form is "alice: hello", one message a line; notices from this client
(a changed safety number, a message that could not be decrypted) start with
"! ". With --json each message is one JSON object a line:
  {"id":"<32 hex digits>","from":"alice","text":"hello","sent_at":"2026-11-28T03:00:00.123Z"}
with "notice":true on notices.`,
	flags: func(fs *flag.FlagSet) {
		fs.Duration("wait", 0, "after the stored messages, go on receiving this long")
		fs.Bool("json", false, "print one JSON object a line")
		fs.Duration("timeout", 30*time.Second, "how long to wait for the server to hand over stored messages")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		if len(args) != 0 {
			return usagef("recv takes no arguments")
		}
		wait := fs.Lookup("wait").Value.(flag.Getter).Get().(time.Duration)
		timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
		p := &printer{w: e.stdout, json: fs.Lookup("json").Value.String() == "true"}
		c, done, err := e.openRegistered(ctx)
		if err != nil {
			return err
		}
		defer done()
		p.c = c
		if err := p.flush(ctx); err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r := start(rctx, c)
		defer r.stop()
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		connected := false
		for {
			select {
			case ev := <-c.Events():
				switch ev.Type {
				case client.EventConnected:
					connected = true
				case client.EventDisconnected:
					if !connected {
						return ev.Err
					}
				case client.EventMessage, client.EventIdentityChanged:
					if err := p.flush(ctx); err != nil {
						return err
					}
				case client.EventQueueEmpty:
					deadline.Reset(wait)
				}
			case err := <-r.done:
				return err
			case <-deadline.C:
				r.stop()
				return p.flush(ctx)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	},
}

var cmdChat = &command{
	name:  "chat",
	args:  "USER",
	short: "talk with USER: type lines, read replies as they come",
	long: `Chat sends each line typed on standard input to USER and prints USER's
messages as they arrive ("USER: text"). An empty line is ignored; end with
Ctrl-D (end of input) or a line "/quit". Messages from other people stay unread
for 'parley recv'.`,
	run: func(ctx context.Context, e *env, _ *flag.FlagSet, args []string) error {
		c, peer, done, err := e.openWithPeer(ctx, args)
		if err != nil {
			return err
		}
		defer done()
		fmt.Fprintf(e.stderr, "chatting with %s: type a line and press Enter to send; end with Ctrl-D or /quit\n", peer)
		p := &printer{c: c, w: e.stdout, peer: peer}
		if err := p.flush(ctx); err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r := start(rctx, c)
		defer r.stop()

		lines := make(chan string)
		go func() { // ends with the input; the process may outlive a blocked read
			defer close(lines)
			sc := bufio.NewScanner(e.stdin)
			sc.Buffer(make([]byte, 4096), client.MaxTextSize)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-rctx.Done():
					return
				}
			}
		}()
		var drain <-chan time.Time // set once the input has ended
		online := false
		for {
			select {
			case ev := <-c.Events():
				switch ev.Type {
				case client.EventConnected:
					online = true
				case client.EventDisconnected:
					if online {
						fmt.Fprintf(e.stderr, "! disconnected (%s); reconnecting\n", explain(ev.Err))
					} else if drain == nil {
						fmt.Fprintf(e.stderr, "! %s; retrying\n", explain(ev.Err))
					}
					online = false
				case client.EventMessage, client.EventIdentityChanged:
					if err := p.flush(ctx); err != nil {
						return err
					}
				case client.EventSendFailed:
					fmt.Fprintf(e.stdout, "! not delivered to %s: %s\n", ev.Peer, explain(ev.Err))
				}
			case line, ok := <-lines:
				if !ok || strings.TrimSpace(line) == "/quit" {
					lines = nil
					drain = time.After(10 * time.Second)
					continue
				}
				if strings.TrimSpace(line) == "" {
					continue
				}
				if _, err := c.Send(ctx, peer, line); err != nil {
					fmt.Fprintf(e.stdout, "! %s\n", explain(err))
				}
			case <-drain:
				return outboxLeft(ctx, c)
			case err := <-r.done:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
			if drain != nil {
				if out, err := c.Outbox(ctx); err == nil && len(out) == 0 {
					return nil
				}
			}
		}
	},
}

func outboxLeft(ctx context.Context, c *client.Client) error {
	out, err := c.Outbox(ctx)
	if err != nil || len(out) == 0 {
		return err
	}
	return fmt.Errorf("%d message(s) not yet confirmed by the server; they stay in the outbox and are sent the next time parley connects", len(out))
}

// runner runs a Client in the background.
type runner struct {
	cancel context.CancelFunc
	done   chan error // receives Run's error once, unless stop took it
	ended  chan struct{}
}

func start(ctx context.Context, c *client.Client) *runner {
	ctx, cancel := context.WithCancel(ctx)
	r := &runner{cancel: cancel, done: make(chan error, 1), ended: make(chan struct{})}
	go func() {
		err := c.Run(ctx)
		if ctx.Err() == nil {
			r.done <- err
		}
		close(r.ended)
	}()
	return r
}

// stop ends Run and waits for it, so that the store can be closed.
func (r *runner) stop() {
	r.cancel()
	<-r.ended
}

// printer prints unread messages once and marks them read.
type printer struct {
	c    *client.Client
	w    io.Writer
	json bool
	peer parley.UserID // only this peer's, if set
}

type jsonMessage struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	Text   string `json:"text"`
	SentAt string `json:"sent_at"`
	Notice bool   `json:"notice,omitempty"`
}

func (p *printer) flush(ctx context.Context) error {
	msgs, err := p.c.Messages(ctx, client.Query{State: client.StateUnread, Peer: p.peer})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if p.json {
			b, _ := json.Marshal(jsonMessage{ID: m.ID.String(), From: string(m.Peer), Text: m.Text, SentAt: m.SentAt.UTC().Format(time.RFC3339Nano), Notice: m.Notice})
			fmt.Fprintf(p.w, "%s\n", b)
		} else if m.Notice {
			fmt.Fprintf(p.w, "! %s\n", oneLine(m.Text))
		} else {
			fmt.Fprintf(p.w, "%s: %s\n", m.Peer, oneLine(m.Text))
		}
	}
	return p.c.MarkRead(ctx, msgs)
}

// oneLine makes a message safe and readable in line-based terminal output:
// later lines are indented, and control characters (which could move the
// cursor or recolour the terminal: a sender must not be able to do that) are
// shown as U+FFFD.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r >= 0x7f && r < 0xa0:
			return '\uFFFD'
		}
		return r
	}, strings.ReplaceAll(s, "\n", "\n  "))
}

var cmdHistory = &command{
	name:  "history",
	args:  "[--limit N] [--json] USER",
	short: "print the conversation with USER, oldest first",
	long: `History prints what this device holds of the conversation with USER, without
connecting: messages both ways, and notices such as calls ("Missed call from
bob", "Outgoing call · 1:23") and safety number changes. A line reads
"2026-11-28 09:30 > text" for a message you sent, "< text" for one you
received, and "! text" for a notice. It marks nothing read.

With --json each line is one JSON object:
  {"id":"<32 hex digits>","from":"alice","text":"hello","sent_at":"…","outgoing":true}
with "notice":true on notices.`,
	flags: func(fs *flag.FlagSet) {
		fs.Int("limit", 0, "print only the newest N (0: all)")
		fs.Bool("json", false, "print one JSON object a line")
	},
	run: func(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
		limit := fs.Lookup("limit").Value.(flag.Getter).Get().(int)
		if limit < 0 {
			return usagef("--limit must be 0 or more")
		}
		c, peer, done, err := e.openWithPeer(ctx, args)
		if err != nil {
			return err
		}
		defer done()
		msgs, err := c.Messages(ctx, client.Query{Peer: peer})
		if err != nil {
			return err
		}
		if limit > 0 && len(msgs) > limit {
			msgs = msgs[len(msgs)-limit:]
		}
		me, _, _, _ := c.Whoami()
		asJSON := fs.Lookup("json").Value.String() == "true"
		for _, m := range msgs {
			if asJSON {
				from := m.Peer
				if m.Outgoing {
					from = me
				}
				b, _ := json.Marshal(historyLine{jsonMessage{ID: m.ID.String(), From: string(from), Text: m.Text,
					SentAt: m.SentAt.UTC().Format(time.RFC3339Nano), Notice: m.Notice}, m.Outgoing})
				fmt.Fprintf(e.stdout, "%s\n", b)
				continue
			}
			mark := "<"
			switch {
			case m.Notice:
				mark = "!"
			case m.Outgoing:
				mark = ">"
			}
			fmt.Fprintf(e.stdout, "%s %s %s\n", m.SentAt.Local().Format("2006-01-02 15:04"), mark, oneLine(m.Text))
		}
		if len(msgs) == 0 {
			fmt.Fprintf(e.stderr, "no messages with %s on this device\n", peer)
		}
		return nil
	},
}

type historyLine struct {
	jsonMessage
	Outgoing bool `json:"outgoing,omitempty"`
}
