package netlab_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/lab/netlab"
)

// udpStats summarises one probe run.
type udpStats struct {
	sent, recv int
	loss       float64
	bursts     []int // lengths of runs of consecutive lost probes
	meanBurst  float64
	reordered  int // arrivals with a lower sequence number than one before them
	delays     []time.Duration
	median     time.Duration
	mean       time.Duration
	stddev     time.Duration
}

func analyze(sent int, r sinkResult) udpStats {
	s := udpStats{sent: sent}
	got := make([]bool, sent)
	var highest uint64
	for i, a := range r.Arrivals {
		if a.Seq >= uint64(sent) || got[a.Seq] {
			continue // not ours, or a duplicate
		}
		got[a.Seq] = true
		s.recv++
		if i > 0 && a.Seq < highest {
			s.reordered++
		}
		highest = max(highest, a.Seq)
		s.delays = append(s.delays, time.Duration(a.Delay))
	}
	s.loss = 1 - float64(s.recv)/float64(sent)
	run := 0
	for _, ok := range append(got, true) {
		if !ok {
			run++
		} else if run > 0 {
			s.bursts = append(s.bursts, run)
			run = 0
		}
	}
	if len(s.bursts) > 0 {
		s.meanBurst = float64(sent-s.recv) / float64(len(s.bursts))
	}
	if len(s.delays) > 0 {
		d := slices.Clone(s.delays)
		slices.Sort(d)
		s.median = d[len(d)/2]
		var sum, sq float64
		for _, x := range d {
			sum += float64(x)
		}
		mean := sum / float64(len(d))
		for _, x := range d {
			sq += (float64(x) - mean) * (float64(x) - mean)
		}
		s.mean = time.Duration(mean)
		s.stddev = time.Duration(math.Sqrt(sq / float64(len(d))))
	}
	return s
}

func (s udpStats) String() string {
	return fmt.Sprintf("%d/%d received, loss %.1f%%, %d bursts (mean %.2f), %d reordered, delay median %v mean %v sd %v",
		s.recv, s.sent, 100*s.loss, len(s.bursts), s.meanBurst, s.reordered,
		s.median.Round(100*time.Microsecond), s.mean.Round(100*time.Microsecond), s.stddev.Round(100*time.Microsecond))
}

// burstHistogram shows how many loss runs had each length.
func burstHistogram(bursts []int) string {
	h := map[int]int{}
	longest := 0
	for _, b := range bursts {
		h[b]++
		longest = max(longest, b)
	}
	var sb strings.Builder
	for l := 1; l <= longest; l++ {
		if h[l] > 0 {
			fmt.Fprintf(&sb, " %d×%d", h[l], l)
		}
	}
	return sb.String()
}

// bothWays sends n probes client 0 → server and server → client 0 at the
// same time and returns the stats, up then down.
func bothWays(t *testing.T, lab *netlab.Lab, n int, interval time.Duration) (up, down udpStats) {
	t.Helper()
	u := udpRun{from: lab.Client(0), to: lab.Server(), n: n, interval: interval, port: 9001}.start(t, lab)
	d := udpRun{from: lab.Server(), to: lab.Client(0), n: n, interval: interval, port: 9002}.start(t, lab)
	up, down = analyze(n, u()), analyze(n, d())
	t.Logf("up:   %v", up)
	t.Logf("down: %v", down)
	return up, down
}

func TestClean(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "clean"})
	up, down := bothWays(t, lab, 500, time.Millisecond)
	for _, s := range []udpStats{up, down} {
		if s.loss > 0.01 {
			t.Errorf("clean lost %.1f%% of probes, want ~0", 100*s.loss)
		}
		if s.median > 5*time.Millisecond {
			t.Errorf("clean median delay %v, want < 5ms", s.median)
		}
	}
}

func TestLoss10(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "loss-10"})
	up, down := bothWays(t, lab, 2000, time.Millisecond)
	for _, s := range []udpStats{up, down} {
		if s.loss < 0.08 || s.loss > 0.12 {
			t.Errorf("loss-10 dropped %.1f%% of probes, want 8–12%%", 100*s.loss)
		}
		if s.meanBurst > 1.3 {
			t.Errorf("loss-10 mean burst %.2f, want ~1.1 (independent losses)", s.meanBurst)
		}
	}
	for _, d := range []netlab.Direction{netlab.Up, netlab.Down} {
		st := lab.QueueStats(d)
		t.Logf("queue %v: %+v", d, st)
		if st.Seen < 2000 || st.Dropped == 0 {
			t.Errorf("queue %v saw %d packets and dropped %d: the probes did not go through the censor", d, st.Seen, st.Dropped)
		}
	}
}

func TestBurstLoss20(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "burst-loss-20"})
	up, down := bothWays(t, lab, 2000, time.Millisecond)
	for _, s := range []udpStats{up, down} {
		t.Logf("loss runs (count×length):%s", burstHistogram(s.bursts))
		if s.loss < 0.15 || s.loss > 0.25 {
			t.Errorf("burst-loss-20 dropped %.1f%% of probes, want 15–25%%", 100*s.loss)
		}
		if s.meanBurst < 2 {
			t.Errorf("burst-loss-20 mean burst %.2f packets, want ≥ 2 (model: 3.1)", s.meanBurst)
		}
	}

	// Reproducible: the same seed drops the same probes again.
	ctx := context.Background()
	if err := lab.SetProfile(ctx, "burst-loss-20"); err != nil {
		t.Fatal(err)
	}
	first := analyze(500, udpRun{from: lab.Client(0), to: lab.Server(), n: 500, interval: time.Millisecond, port: 9003}.start(t, lab)())
	if err := lab.SetProfile(ctx, "burst-loss-20"); err != nil {
		t.Fatal(err)
	}
	again := analyze(500, udpRun{from: lab.Client(0), to: lab.Server(), n: 500, interval: time.Millisecond, port: 9004}.start(t, lab)())
	t.Logf("after SetProfile, twice: %v / %v", first, again)
	if !slices.Equal(first.bursts, again.bursts) || len(first.bursts) == 0 {
		t.Errorf("same seed, different losses:\n%v\n%v", first.bursts, again.bursts)
	}
}

func TestJitter150(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "jitter-150"})
	up, down := bothWays(t, lab, 1000, 2*time.Millisecond)
	for _, s := range []udpStats{up, down} {
		if s.loss > 0.01 {
			t.Errorf("jitter-150 lost %.1f%%, want ~0", 100*s.loss)
		}
		// Uniform in [−90, 210] ms clipped at 0: median 60, mean 73.5, sd ≈ 61.
		if s.median < 45*time.Millisecond || s.median > 75*time.Millisecond {
			t.Errorf("jitter-150 median delay %v, want ~60ms", s.median)
		}
		if s.mean < 60*time.Millisecond || s.mean > 90*time.Millisecond {
			t.Errorf("jitter-150 mean delay %v, want ~73ms", s.mean)
		}
		if s.stddev < 40*time.Millisecond {
			t.Errorf("jitter-150 delay sd %v, want ≥ 40ms", s.stddev)
		}
		if s.reordered < s.sent/10 {
			t.Errorf("jitter-150 reordered %d of %d, want many", s.reordered, s.sent)
		}
		if hi := slices.Max(s.delays); hi > 260*time.Millisecond {
			t.Errorf("jitter-150 max delay %v, want ≤ 210ms (+ scheduling)", hi)
		}
	}
}

// kbps is the goodput between the first sample at or after from and the
// last sample, in kbit/s.
func kbps(samples [][2]int64, from time.Duration) float64 {
	i := slices.IndexFunc(samples, func(s [2]int64) bool { return s[0] >= from.Milliseconds() })
	if i < 0 || i == len(samples)-1 {
		return 0
	}
	a, b := samples[i], samples[len(samples)-1]
	return float64(b[1]-a[1]) * 8 / float64(b[0]-a[0])
}

func TestRate32k(t *testing.T) {
	t.Parallel()
	// Client 0 takes the UDP floods, client 1 a TCP download: each
	// client has its own 32 kbit/s each way.
	lab := netlab.Open(t, netlab.Options{Clients: 2, Profile: "rate-32k"})
	addr := fmt.Sprintf("%s:8080", lab.ServerAddr())
	startProbe(t, lab, lab.Server(), "tcp-serve", "-addr", addr, "-bytes", "1000000")
	fetch := startProbe(t, lab, lab.Client(1), "tcp-fetch", "-addr", addr, "-max", "6s", "-stall", "6s")
	// UDP floods at 160 kbit/s, five times the rate, each way.
	flood := func(from, to netlab.Node, port int) func() sinkResult {
		return udpRun{from: from, to: to, n: 160, interval: 25 * time.Millisecond, size: 500, port: port}.start(t, lab)
	}
	up, down := flood(lab.Client(0), lab.Server(), 9001), flood(lab.Server(), lab.Client(0), 9002)
	for _, w := range []struct {
		dir  string
		wait func() sinkResult
	}{{"up", up}, {"down", down}} {
		sink := w.wait()
		var bytes int
		for _, a := range sink.Arrivals[1:] {
			bytes += a.Size
		}
		// 500 bytes of payload in 542 on the wire: ~29.5 kbit/s of payload,
		// plus the 2000-byte bucket spread over the run: ~32.
		rate := float64(bytes) * 8 / time.Duration(sink.Elapsed).Seconds() / 1000
		t.Logf("%s: UDP payload %.1f kbit/s, %d of 160 datagrams", w.dir, rate, len(sink.Arrivals))
		if rate < 26 || rate > 36 {
			t.Errorf("rate-32k UDP %s at %.1f kbit/s of payload, want ~32 (26–36)", w.dir, rate)
		}
	}
	// TCP meets a queue of two packets: capped near the rate, slowed
	// further by slow start and the odd retransmission timeout.
	var res fetchResult
	fetch.wait(t, &res)
	tcp := float64(res.Bytes) * 8 / 6 / 1000
	t.Logf("down: TCP %.1f kbit/s of payload over 6 s (%d bytes)", tcp, res.Bytes)
	if tcp < 15 || tcp > 32 {
		t.Errorf("rate-32k TCP download at %.1f kbit/s, want capped under 32 (15–32)", tcp)
	}
}

func TestUDPBlocked(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "udp-blocked"})
	addr := fmt.Sprintf("%s:443", lab.ServerAddr())
	startProbe(t, lab, lab.Server(), "tcp-serve", "-addr", addr, "-bytes", "100000")
	fetch := startProbe(t, lab, lab.Client(0), "tcp-fetch", "-addr", addr)
	u := udpRun{from: lab.Client(0), to: lab.Server(), n: 200, interval: time.Millisecond, port: 9001, wait: 1500 * time.Millisecond}.start(t, lab)
	d := udpRun{from: lab.Server(), to: lab.Client(0), n: 200, interval: time.Millisecond, port: 9002, wait: 1500 * time.Millisecond}.start(t, lab)
	up, down := analyze(200, u()), analyze(200, d())
	if up.recv != 0 || down.recv != 0 {
		t.Errorf("udp-blocked let %d up and %d down of 200 UDP probes through, want 0", up.recv, down.recv)
	}
	var res fetchResult
	fetch.wait(t, &res)
	t.Logf("UDP up %v; down %v; TCP download %d bytes, eof %v", up, down, res.Bytes, res.EOF)
	if !res.Connected || !res.EOF || res.Bytes != 100000 {
		t.Errorf("udp-blocked: TCP download got %d of 100000 bytes (connected %v, eof %v, %s), want all", res.Bytes, res.Connected, res.EOF, res.Err)
	}
}

func TestSTUNDPI(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "stun-dpi"})
	c, s := lab.Client(0), lab.Server()
	runs := []udpRun{
		{from: c, to: s, n: 20, interval: 20 * time.Millisecond, size: 20 + 16, kind: "stun", port: 3478, wait: 2 * time.Second},
		{from: s, to: c, n: 20, interval: 20 * time.Millisecond, size: 20 + 16, kind: "stun", port: 3479, wait: 2 * time.Second},
		{from: c, to: s, n: 20, interval: 20 * time.Millisecond, size: 200, kind: "dtls12", port: 4433, wait: 2 * time.Second},
		{from: c, to: s, n: 20, interval: 20 * time.Millisecond, size: 200, kind: "dtls10", port: 4434, wait: 2 * time.Second},
		{from: c, to: s, n: 50, interval: 20 * time.Millisecond, size: 100, kind: "plain", port: 5000},
		{from: s, to: c, n: 50, interval: 20 * time.Millisecond, size: 100, kind: "plain", port: 5001},
		// A flood of plain UDP at 160 kbit/s: throttled to 32 kbit/s.
		{from: c, to: s, n: 120, interval: 25 * time.Millisecond, size: 500, kind: "plain", port: 6000},
	}
	waits := make([]func() sinkResult, len(runs))
	for i, r := range runs {
		waits[i] = r.start(t, lab)
	}
	for i, r := range runs {
		res := waits[i]()
		st := analyze(r.n, res)
		t.Logf("%s %s→%s: %v", r.kind, r.from.Addr, r.to.Addr, st)
		switch {
		case r.kind != "plain":
			if st.recv != 0 {
				t.Errorf("stun-dpi passed %d of %d %s datagrams, want 0", st.recv, r.n, r.kind)
			}
		case r.size < 500:
			if st.loss > 0.02 {
				t.Errorf("stun-dpi dropped %.0f%% of slow plain UDP, want it to pass", 100*st.loss)
			}
		default:
			// 8 KB burst, then 4 KB/s: ~(8192 + 3×4096)/500 ≈ 40 of 120.
			if st.recv < 25 || st.recv > 60 {
				t.Errorf("stun-dpi passed %d of %d flood datagrams, want ~40 (throttled to 32 kbit/s)", st.recv, r.n)
			}
		}
	}
}

func TestTCPFreeze16k(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Profile: "tcp-freeze-16k"})
	addr := fmt.Sprintf("%s:443", lab.ServerAddr())
	startProbe(t, lab, lab.Server(), "tcp-serve", "-addr", addr, "-bytes", "200000")
	var res fetchResult
	startProbe(t, lab, lab.Client(0), "tcp-fetch", "-addr", addr, "-stall", "2s", "-max", "10s").wait(t, &res)
	t.Logf("download: %d bytes, stalled %v, eof %v, reset %v %s", res.Bytes, res.Stalled, res.EOF, res.Reset, res.Err)
	if !res.Stalled || res.Reset || res.EOF || res.Bytes < 12000 || res.Bytes > 20000 {
		t.Errorf("tcp-freeze-16k: download ended after %d bytes (stalled %v, reset %v, eof %v), want a silent stall at 12–20 KB",
			res.Bytes, res.Stalled, res.Reset, res.EOF)
	}
	// A new flow starts from zero: it connects and gets its first 16 KB.
	var again fetchResult
	startProbe(t, lab, lab.Client(0), "tcp-fetch", "-addr", addr, "-stall", "1s", "-max", "5s").wait(t, &again)
	if !again.Connected || again.Bytes < 12000 {
		t.Errorf("tcp-freeze-16k: a new connection got %d bytes (connected %v), want it to open and carry ~16 KB", again.Bytes, again.Connected)
	}
}

// TestClientToClient checks two clients behind the censor: both reach the
// server, and traffic between them is impaired once.
func TestClientToClient(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{Clients: 2, Profile: "loss-10"})
	if lab.ClientAddr(0) == lab.ClientAddr(1) {
		t.Fatalf("clients share address %v", lab.ClientAddr(0))
	}
	a := udpRun{from: lab.Client(0), to: lab.Client(1), n: 1000, interval: time.Millisecond, port: 9001}.start(t, lab)
	b := udpRun{from: lab.Client(1), to: lab.Server(), n: 1000, interval: time.Millisecond, port: 9002}.start(t, lab)
	for _, s := range []udpStats{analyze(1000, a()), analyze(1000, b())} {
		t.Logf("%v", s)
		if s.loss < 0.06 || s.loss > 0.14 {
			t.Errorf("loss-10 between two clients / client 1 and server: %.1f%%, want ~10%% (impaired once)", 100*s.loss)
		}
	}
}

// TestSetProfile switches profiles on a live lab.
func TestSetProfile(t *testing.T) {
	t.Parallel()
	lab := netlab.Open(t, netlab.Options{})
	ctx := context.Background()
	if got := lab.Profile().Name; got != "clean" {
		t.Fatalf("default profile %q, want clean", got)
	}
	for i, p := range []struct {
		name string
		pass bool
	}{{"udp-blocked", false}, {"clean", true}, {"stun-dpi", true}, {"udp-blocked", false}} {
		if err := lab.SetProfile(ctx, p.name); err != nil {
			t.Fatal(err)
		}
		s := analyze(50, udpRun{from: lab.Client(0), to: lab.Server(), n: 50, interval: time.Millisecond, port: 9100 + i, idle: 500 * time.Millisecond, wait: 1500 * time.Millisecond}.start(t, lab)())
		if (s.recv == 50) != p.pass {
			t.Errorf("after SetProfile(%s): %d of 50 probes arrived, want pass=%v", p.name, s.recv, p.pass)
		}
	}
	if err := lab.SetProfile(ctx, "no-such"); err == nil {
		t.Error("SetProfile of an unknown name succeeded")
	}
}

// TestCloseAndReap checks that Close removes the lab's namespaces and that
// New removes those of a process that no longer exists.
func TestCloseAndReap(t *testing.T) {
	if err := netlab.Check(); err != nil {
		netlab.Open(t, netlab.Options{}) // skips or fails, saying why
	}
	// A leftover of a killed run: a pid above any pid_max.
	stale := "parleylab-4194999-deadbeef-srv"
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", stale).Run() })

	var log strings.Builder
	lab, err := netlab.New(context.Background(), netlab.Options{Clients: 2, Profile: "stun-dpi", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ip netns add " + lab.Censor().Name, "net.ipv4.ip_forward=1", "0x2112A442", "hashlimit"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("Options.Log lacks %q:\n%s", want, log.String())
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", stale)); err == nil {
		t.Errorf("stale namespace %s was not reaped", stale)
	}
	names := []string{lab.Server().Name, lab.Censor().Name, lab.Client(0).Name, lab.Client(1).Name}
	sleeper := lab.Command(lab.Client(1), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("a process in the lab outlived Close")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	if err := lab.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestProfilesDocumented(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clean", "loss-10", "burst-loss-20", "jitter-150", "rate-32k", "udp-blocked", "stun-dpi", "tcp-freeze-16k"}
	if got := netlab.ProfileNames(); !slices.Equal(got, want) {
		t.Errorf("profiles %v, want %v", got, want)
	}
	for _, p := range netlab.Profiles() {
		if !strings.Contains(string(doc), "//\t"+p.Name+" ") || p.Summary == "" {
			t.Errorf("profile %s is not in the package doc's table or has no summary", p.Name)
		}
	}
	if g := netlab.Profiles()[2].Impairment().Bursty; math.Abs(g.MeanLoss()-0.20) > 1e-9 {
		t.Errorf("burst-loss-20 model mean loss %v, want 0.20", g.MeanLoss())
	}
}
