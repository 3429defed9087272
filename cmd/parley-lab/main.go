// Command parley-lab runs Parley's calls and messaging through the
// hostile-network lab's censor profiles and writes the report (package
// lab): docs/lab-report.md, .json and .svg.
//
//	parley-lab [--bin DIR] [--out DIR] [--profiles LIST] [--call D] [--long] [--runs N] [--messages N] [--work DIR]
//
// It needs root (for the network namespaces), parleyd and parley in --bin,
// and espeak-ng and opus-tools. `make lab-report` builds and runs it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/parleychat/parley/lab"
	"github.com/parleychat/parley/lab/browser"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "parley-lab:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "browser" {
		return runBrowser(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("parley-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "the folder with parleyd and parley (make build puts them in bin)")
	out := fs.String("out", "docs", "where to write lab-report.md, .json and .svg")
	profiles := fs.String("profiles", "", "comma-separated profiles to run (default: all)")
	callFor := fs.Duration("call", 20*time.Second, "how long each call lasts once connected")
	runs := fs.Int("runs", 3, "runs per profile; the report gives medians")
	messages := fs.Int("messages", 20, "messages sent per run")
	work := fs.String("work", "", "keep each run's files (traces, recordings, logs) in this folder")
	long := fs.Bool("long", false, "the tunnel tier's calls last as its targets ask: 5 minutes under rate-32k, 10 under tcp-freeze-16k")
	chromium := fs.String("chromium", "", `the browser of the browser tier (default: chromium on the PATH; "none" leaves the tier out)`)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: parley-lab [flags]

Runs a call (parley call / parley answer, each sending espeak-ng speech) and a
burst of messages between two clients through parleyd under each censor
profile of the hostile-network lab, and writes the report. Needs root for the
network namespaces (without it only the clean profile runs, on loopback),
espeak-ng and opus-tools (Debian packages).

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	cfg := lab.Config{Bin: *bin, CallDuration: *callFor, Runs: *runs, Messages: *messages, Work: *work, Progress: stdout, Chromium: *chromium}
	if *profiles != "" {
		cfg.Profiles = strings.Split(*profiles, ",")
	}
	if *long {
		cfg.TunnelCalls = lab.LongCalls
	}
	start := time.Now()
	results, err := lab.Run(ctx, cfg)
	if err != nil {
		return err
	}
	info := lab.ReportInfo{Date: start, CallDuration: *callFor, TunnelCalls: cfg.TunnelCalls, Runs: *runs, Messages: *messages,
		Command: "parley-lab " + strings.Join(args, " ")}
	if err := lab.WriteReport(*out, info, results); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s/lab-report.md, .json and .svg in %v\n", *out, time.Since(start).Round(time.Second))
	return nil
}

// runBrowser is "parley-lab browser": one headless Chromium through one
// call (package lab/browser), for the lab to run inside a client's network
// namespace. It prints "ready" once registered (and, without --call,
// waiting for a call), and the result as one JSON object at the end; with
// --hold the caller waits for "go" on its input before calling.
func runBrowser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley-lab browser", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o browser.Options
	fs.StringVar(&o.Chromium, "chromium", "chromium", "the browser to run")
	fs.StringVar(&o.Profile, "profile", "", "a fresh user-data folder (required)")
	fs.StringVar(&o.URL, "url", "", "parleyd's URL (required)")
	fs.StringVar(&o.User, "user", "", "the username to register (required)")
	fs.StringVar(&o.Peer, "call", "", "call this user (default: wait for a call and accept it)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long the caller stays in the call")
	fs.DurationVar(&o.Wait, "wait", time.Minute, "how long the callee waits for a call")
	fs.StringVar(&o.Mic, "mic", "", "the WAV file the microphone plays (required)")
	fs.StringVar(&o.Record, "record", "", "write what the browser would have played to this WAV file")
	fs.BoolVar(&o.Race, "race", false, "let the call race the server's tunnel and move between the two, as the web client does by default (the lab's browser tier measures WebRTC alone)")
	fs.BoolVar(&o.Tunnel, "tunnel", false, "calls go through the server's tunnel alone (the web client's tunnel setting)")
	fs.StringVar(&o.Carrier, "carrier", "", "the tunnel's one carrier: websocket or webtransport (default: race them)")
	hold := fs.Bool("hold", false, `with --call: once ready, wait for a line "go" on standard input before calling`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Profile == "" || o.URL == "" || o.User == "" || o.Mic == "" {
		return errors.New("browser: --profile, --url, --user and --mic are required")
	}
	o.Log = stderr
	o.Ready = func() { fmt.Fprintln(stdout, "ready") }
	if *hold {
		goCh := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "go" {
					close(goCh)
					return
				}
			}
		}()
		o.Go = goCh
	}
	res, err := browser.Run(ctx, o)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}
