package load

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/server/relay"
	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"golang.org/x/sync/errgroup"
)

// TURNConfig says what the relay mode runs. Zero values mean the defaults
// in brackets.
type TURNConfig struct {
	// The relay under load: a TURN server on UDP at Addr with the shared
	// Secret of the TURN REST credentials; PID, when not 0, is its process
	// (for its CPU). See StartTURN for servers the tool starts.
	Addr   string
	Secret []byte
	PID    int
	Name   string // the server's name in the report ["relay"]
	// ServerCore and LoadCore are the cores the server and this tool are
	// pinned to, to report how busy each core was; -1: not pinned (0 is
	// core 0).
	ServerCore, LoadCore int

	Steps    []int         // concurrent calls of each step [DefaultTURNSteps]
	Step     time.Duration // measured length of each step [10s]
	Rate     int           // packets/s per direction of a call, at most 1000 [50: 20 ms frames]
	Size     int           // bytes of each packet's payload [120]
	Setup    int           // calls set up at once [16]
	Warmup   time.Duration // traffic before a step is measured [1s]
	Grace    time.Duration // wait for packets in flight after a step [500ms]
	StopLoss float64       // stop after a step losing more than this % [1]
	StopP99  time.Duration // stop after a step whose p99 is above this [100ms]
	StopCPU  float64       // stop after a step with the server above this % of a core [95]
	GoodLoss float64       // a step is sustained with loss ≤ this % [1]
	GoodP99  time.Duration // and p99 ≤ this [50ms]
	// Retries is how many times a step that is not sustained runs again
	// before the run stops or goes on [0]: on a shared machine another
	// program can spoil one step.
	Retries int

	JSON bool      // one JSON object per step instead of a table
	Out  io.Writer // the report [os.Stdout]
}

// DefaultTURNSteps are the call counts the relay mode climbs by default.
var DefaultTURNSteps = []int{25, 50, 100, 200, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1200, 1500, 2000, 2500, 3000}

func (c *TURNConfig) defaults() {
	if c.Name == "" {
		c.Name = "relay"
	}
	if len(c.Steps) == 0 {
		c.Steps = DefaultTURNSteps
	}
	if c.Step <= 0 {
		c.Step = 10 * time.Second
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	c.Rate = min(c.Rate, 1000) // the sender's slots are 1 ms
	if c.Size < turnHeader {
		c.Size = 120
	}
	if c.Setup <= 0 {
		c.Setup = 16
	}
	if c.Warmup <= 0 {
		c.Warmup = time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 500 * time.Millisecond
	}
	if c.StopLoss <= 0 {
		c.StopLoss = 1
	}
	if c.StopP99 <= 0 {
		c.StopP99 = 100 * time.Millisecond
	}
	if c.StopCPU <= 0 {
		c.StopCPU = 95
	}
	if c.GoodLoss <= 0 {
		c.GoodLoss = 1
	}
	if c.GoodP99 <= 0 {
		c.GoodP99 = 50 * time.Millisecond
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
}

// TURNStep is one step of the relay mode.
type TURNStep struct {
	Server    string   `json:"server"`
	Calls     int      `json:"calls"`
	Try       int      `json:"try"`               // 0, or how many times this step ran before (see TURNConfig.Retries)
	Sent      int64    `json:"sent"`              // packets sent into the relay in the step, both directions
	Received  int64    `json:"received"`          // of them, relayed to the other side
	Each      [2]int64 `json:"received_each_way"` // Received a→b and b→a
	Rate      float64  `json:"relayed_per_s"`
	LossPct   float64  `json:"loss_pct"`
	P50ms     float64  `json:"p50_ms"` // one-way: send to receipt through the relay
	P99ms     float64  `json:"p99_ms"`
	Maxms     float64  `json:"max_ms"`
	ServerCPU float64  `json:"server_cpu_pct"` // of one core; -1 when unknown
	LoadCPU   float64  `json:"load_cpu_pct"`   // this tool's, of one core
	SendLagms float64  `json:"send_lag_ms"`    // how late the sender ran behind its schedule, at worst
	// ServerCore and LoadCore are how busy the server's and this tool's
	// cores were (anything running there, % of the step; -1 when unknown):
	// on a shared machine, above ServerCPU (LoadCPU) is other processes and
	// the kernel's packet work not charged to the process.
	ServerCore float64 `json:"server_core_busy_pct"`
	LoadCore   float64 `json:"load_core_busy_pct"`
	// RcvbufDrops is datagrams the kernel dropped during the step because
	// a UDP socket's receive buffer was full (system-wide UdpRcvbufErrors).
	RcvbufDrops int64 `json:"udp_rcvbuf_drops"`
	Sustained   bool  `json:"sustained"` // within GoodLoss and GoodP99
}

// PacketsPerCPU is relayed packets/s per % of one core the server used.
func (s TURNStep) PacketsPerCPU() float64 {
	if s.ServerCPU <= 0 {
		return 0
	}
	return s.Rate / s.ServerCPU
}

// The payload of every packet starts with turnHeader bytes:
//
//	[0:4]   call number, big endian
//	[4]     direction: 0 a→b, 1 b→a
//	[5]     step tag: 0 for traffic that no step counts
//	[6:10]  sequence number within the direction
//	[10:18] send time, ns since the generator's epoch (monotonic)
//
// and is padded with random bytes to TURNConfig.Size (a 20 ms Opus frame in
// SRTP is 100–160 bytes). Packets travel as ChannelData (RFC 8656 §12.4),
// as WebRTC clients send them once a channel is bound.
const turnHeader = 18

// maxTags is how many steps one run can count (tag 0 counts none).
const maxTags = 255

// Latency histogram: 10 µs buckets up to 10 ms, then 1 ms buckets up to
// 1 s, then one overflow bucket.
const (
	fineBuckets   = 1000
	coarseBuckets = 990
	histBuckets   = fineBuckets + coarseBuckets + 1
)

func bucketOf(d time.Duration) int {
	switch {
	case d < 0:
		return 0
	case d < 10*time.Millisecond:
		return int(d / (10 * time.Microsecond))
	case d < time.Second:
		return fineBuckets + int((d-10*time.Millisecond)/time.Millisecond)
	}
	return histBuckets - 1
}

// bucketTop is the upper bound of bucket i.
func bucketTop(i int) time.Duration {
	if i < fineBuckets {
		return time.Duration(i+1) * 10 * time.Microsecond
	}
	if i < histBuckets-1 {
		return 10*time.Millisecond + time.Duration(i-fineBuckets+1)*time.Millisecond
	}
	return time.Second
}

// stepStats counts one step's packets. Receivers add to it concurrently.
type stepStats struct {
	sent, recv atomic.Int64
	each       [2]atomic.Int64 // recv by direction
	maxLat     atomic.Int64
	hist       [histBuckets]atomic.Uint32
}

func (s *stepStats) record(dir byte, lat time.Duration) {
	s.recv.Add(1)
	s.each[dir&1].Add(1)
	s.hist[bucketOf(lat)].Add(1)
	for {
		m := s.maxLat.Load()
		if int64(lat) <= m || s.maxLat.CompareAndSwap(m, int64(lat)) {
			return
		}
	}
}

func (s *stepStats) quantile(q float64) time.Duration {
	n := s.recv.Load()
	if n == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range s.hist {
		seen += int64(s.hist[i].Load())
		if seen >= want {
			return bucketTop(i)
		}
	}
	return time.Duration(s.maxLat.Load())
}

// turnPeer is one side of a call: a UDP socket, a pion/turn client on it
// and its allocation. Its reader runs until the socket closes.
type turnPeer struct {
	conn   *net.UDPConn
	client *turn.Client
	relay  net.PacketConn // the allocation
	server *net.UDPAddr

	frame []byte // the next ChannelData message: header, then payload
	seq   uint32 // guarded by the sender goroutine, which alone sends
}

// turnCall is two peers that relay to each other's relayed address.
type turnCall struct{ a, b *turnPeer }

// turnGen is the load generator: the calls, the one sender loop and the
// counters.
type turnGen struct {
	cfg    TURNConfig
	server *net.UDPAddr
	epoch  time.Time
	quiet  logging.LoggerFactory

	tag   atomic.Uint32 // the step tag put in packets sent now
	stats [maxTags + 1]*stepStats

	mu    sync.Mutex  // guards calls
	calls []*turnCall // every call set up, in the order the sender goes through them

	lag atomic.Int64 // the sender's worst lateness since last reset, ns
	wg  sync.WaitGroup
}

func (g *turnGen) now() time.Duration { return time.Since(g.epoch) }

// RunTURN sets up calls through the relay at cfg.Addr in steps and reports
// what each step relayed, its loss, latency and the server's CPU.
//
// A call is two pion/turn clients, each on its own UDP socket with its own
// allocation and a TURN REST credential from cfg.Secret. Each lets the
// other's relayed address in (CreatePermission) and binds a channel to it
// (ChannelBind, by pion's first write), then both send cfg.Rate packets/s
// of cfg.Size bytes as ChannelData, as a WebRTC client sends SRTP once its
// channel is bound. So every packet crosses the relay twice (client →
// relay → the other allocation's relayed socket → relay → client): the
// rate reported is packets delivered end to end, both directions.
//
// The generator keeps its own cost low: one sender goroutine goes through
// all clients in 1 ms slots (1/20 of them per slot at 50 packets/s) and
// writes ChannelData straight to each socket, one system call a packet;
// one reader per socket counts what arrives and passes only STUN (answers,
// refreshes) to pion's client. Latency is one way, from the write to the
// read on the other side, on one monotonic clock.
//
// Each step adds calls up to its count (those running keep sending),
// sends cfg.Warmup uncounted, then counts cfg.Step of traffic (each
// packet carries its step), and waits cfg.Grace for packets in flight.
// It stops after the step where loss passes cfg.StopLoss, p99 passes
// cfg.StopP99 or the server's CPU passes cfg.StopCPU; the answer is the
// highest step with loss ≤ cfg.GoodLoss and p99 ≤ cfg.GoodP99.
func RunTURN(ctx context.Context, cfg TURNConfig) ([]TURNStep, error) {
	cfg.defaults()
	if len(cfg.Steps) > maxTags {
		return nil, fmt.Errorf("load: at most %d steps", maxTags)
	}
	server, err := net.ResolveUDPAddr("udp4", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("load: TURN server %q: %w", cfg.Addr, err)
	}
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	g := &turnGen{cfg: cfg, server: server, epoch: time.Now(), quiet: quiet}
	for i := range g.stats {
		g.stats[i] = new(stepStats)
	}
	sctx, stopSender := context.WithCancel(ctx)
	senderDone := make(chan struct{})
	go func() { defer close(senderDone); g.send(sctx) }()
	defer func() {
		stopSender()
		<-senderDone
		g.closeAll()
	}()

	srv := &proc{pid: cfg.PID}
	self := &proc{pid: os.Getpid()}
	if !cfg.JSON {
		fmt.Fprintf(cfg.Out, "%s at %s: %d packets/s each way per call, %d-byte payloads, %s steps\n", cfg.Name, cfg.Addr, cfg.Rate, cfg.Size, cfg.Step)
		fmt.Fprintf(cfg.Out, "%7s %9s %7s %8s %8s %8s %10s %8s %9s %8s %8s %12s\n", "calls", "relay/s", "loss%", "p50 ms", "p99 ms", "max ms", "server CPU", "its core", "load CPU", "its core", "lag ms", "rcvbuf drops")
	}
	var results []TURNStep
	tags := uint32(0)
steps:
	for k := 0; k < len(cfg.Steps); k++ {
		n := cfg.Steps[k]
		if tags == maxTags {
			return results, fmt.Errorf("load: more than %d steps and retries", maxTags)
		}
		tags++
		tag := tags
		if err := g.grow(ctx, n); err != nil {
			return results, fmt.Errorf("load: setting up %d calls: %w", n, err)
		}
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
			return results, ctx.Err()
		}
		st := g.stats[tag]
		s0, serr := srv.cpuTime()
		l0, _ := self.cpuTime()
		c0, cerr := coreTimes()
		d0, derr := udpRcvbufErrors()
		t0 := time.Now()
		g.lag.Store(0)
		g.tag.Store(tag)
		select {
		case <-time.After(cfg.Step):
		case <-ctx.Done():
		}
		g.tag.Store(0)
		elapsed := time.Since(t0)
		s1, _ := srv.cpuTime()
		l1, _ := self.cpuTime()
		c1, _ := coreTimes()
		d1, _ := udpRcvbufErrors()
		lag := time.Duration(g.lag.Load())
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		time.Sleep(cfg.Grace)

		sent, recv := st.sent.Load(), st.recv.Load()
		try := 0
		if len(results) > 0 && results[len(results)-1].Calls == n {
			try = results[len(results)-1].Try + 1
		}
		r := TURNStep{
			Server: cfg.Name, Calls: n, Try: try, Sent: sent, Received: recv,
			Each:      [2]int64{st.each[0].Load(), st.each[1].Load()},
			Rate:      float64(recv) / elapsed.Seconds(),
			P50ms:     ms(st.quantile(0.50)),
			P99ms:     ms(st.quantile(0.99)),
			Maxms:     ms(time.Duration(st.maxLat.Load())),
			ServerCPU: -1,
			LoadCPU:   100 * float64(l1-l0) / float64(elapsed),
			SendLagms: ms(lag),
		}
		if sent > 0 {
			r.LossPct = 100 * float64(max(sent-recv, 0)) / float64(sent)
		}
		if cfg.PID != 0 && serr == nil {
			r.ServerCPU = 100 * float64(s1-s0) / float64(elapsed)
		}
		r.ServerCore, r.LoadCore = -1, -1
		if cerr == nil {
			r.ServerCore = coreBusy(c0, c1, cfg.ServerCore)
			r.LoadCore = coreBusy(c0, c1, cfg.LoadCore)
		}
		if derr == nil {
			r.RcvbufDrops = d1 - d0
		}
		r.Sustained = sent > 0 && r.LossPct <= cfg.GoodLoss && r.P99ms <= ms(cfg.GoodP99)
		results = append(results, r)
		if cfg.JSON {
			json.NewEncoder(cfg.Out).Encode(r)
		} else {
			note := ""
			if r.Try > 0 {
				note = "  (again)"
			}
			if r.LoadCPU > 90 {
				note += "  (the load generator is near its core's limit)"
			}
			fmt.Fprintf(cfg.Out, "%7d %9.0f %7.2f %8.2f %8.2f %8.1f %9.0f%% %7.0f%% %8.0f%% %7.0f%% %8.1f %12d%s\n",
				r.Calls, r.Rate, r.LossPct, r.P50ms, r.P99ms, r.Maxms, r.ServerCPU, r.ServerCore, r.LoadCPU, r.LoadCore, r.SendLagms, r.RcvbufDrops, note)
		}
		if !r.Sustained && r.Try < cfg.Retries {
			k-- // the same step again: on a shared machine, one bad step may be another program's
			continue
		}
		if r.LossPct > cfg.StopLoss || r.P99ms > ms(cfg.StopP99) || r.ServerCPU > cfg.StopCPU {
			break steps
		}
	}
	if !cfg.JSON {
		if best := BestTURN(results); best != nil {
			fmt.Fprintf(cfg.Out, "%s: highest step with loss ≤ %.3g%% and p99 ≤ %s: %d calls, %.0f packets/s relayed at %.0f%% of a core (%.0f packets/s per %% CPU)\n",
				cfg.Name, cfg.GoodLoss, cfg.GoodP99, best.Calls, best.Rate, best.ServerCPU, best.PacketsPerCPU())
		} else {
			fmt.Fprintf(cfg.Out, "%s: no step had loss ≤ %.3g%% and p99 ≤ %s\n", cfg.Name, cfg.GoodLoss, cfg.GoodP99)
		}
	}
	return results, ctx.Err()
}

// BestTURN is the step with the most calls among those sustained, or nil.
func BestTURN(steps []TURNStep) *TURNStep {
	var best *TURNStep
	for i := range steps {
		if steps[i].Sustained && (best == nil || steps[i].Calls > best.Calls) {
			best = &steps[i]
		}
	}
	return best
}

// grow sets up calls until there are n, a few at a time. Calls already
// running keep sending meanwhile, as on a real relay.
func (g *turnGen) grow(ctx context.Context, n int) error {
	g.mu.Lock()
	have := len(g.calls)
	g.mu.Unlock()
	if have >= n {
		return nil
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(g.cfg.Setup)
	for i := have; i < n; i++ {
		eg.Go(func() error {
			c, err := g.newCall(ectx, i)
			if err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
			g.mu.Lock()
			g.calls = append(g.calls, c)
			g.mu.Unlock()
			return nil
		})
	}
	return eg.Wait()
}

// channeler is what the allocation of pion/turn's client (its UDPConn)
// tells about channel bindings.
type channeler interface {
	FindChannelNumberByAddr(net.Addr) (uint16, bool)
	IsChannelActive(uint16) bool
}

// newCall allocates a relay for each side, lets each side's relayed
// address into the other's allocation (CreatePermission) and binds a
// channel each way.
func (g *turnGen) newCall(ctx context.Context, i int) (*turnCall, error) {
	c := &turnCall{}
	var err error
	if c.a, err = g.newPeer(ctx, i, 0); err != nil {
		return nil, err
	}
	if c.b, err = g.newPeer(ctx, i, 1); err != nil {
		c.a.close()
		return nil, err
	}
	fail := func(err error) (*turnCall, error) {
		c.a.close()
		c.b.close()
		return nil, err
	}
	for _, p := range []struct{ from, to *turnPeer }{{c.a, c.b}, {c.b, c.a}} {
		if err := p.from.client.CreatePermission(p.to.relay.LocalAddr()); err != nil {
			return fail(fmt.Errorf("permission: %w", err))
		}
	}
	// pion's allocation binds a channel to a peer on its first write there
	// (sending by Send indication until the binding answers); write until
	// both channels are active, then send ChannelData directly.
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range []struct{ from, to *turnPeer }{{c.a, c.b}, {c.b, c.a}} {
		ch, ok := p.from.relay.(channeler)
		if !ok {
			return fail(errors.New("pion/turn's allocation does not report its channels"))
		}
		warm := make([]byte, turnHeader) // tag 0: counted by no step
		for {
			if _, err := p.from.relay.WriteTo(warm, p.to.relay.LocalAddr()); err != nil {
				return fail(fmt.Errorf("write: %w", err))
			}
			if n, ok := ch.FindChannelNumberByAddr(p.to.relay.LocalAddr()); ok && ch.IsChannelActive(n) {
				p.from.setChannel(n, uint32(i), p.from == c.b, g.cfg.Size)
				break
			}
			if time.Now().After(deadline) {
				return fail(errors.New("no channel binding after 10s"))
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		}
	}
	return c, nil
}

// newPeer opens a socket, starts its reader and allocates a relay with a
// TURN REST credential.
func (g *turnGen) newPeer(ctx context.Context, call, side int) (*turnPeer, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	user := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ":load-" + strconv.Itoa(call) + "." + strconv.Itoa(side+1)
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: g.server.String(), Conn: conn, Username: user, Password: relay.Password(g.cfg.Secret, user),
		RTO: 200 * time.Millisecond, LoggerFactory: g.quiet,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := &turnPeer{conn: conn, client: c, server: g.server}
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.read(p) }()
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if p.relay, err = c.AllocateWithContext(actx); err != nil {
		p.close()
		return nil, fmt.Errorf("allocate: %w", err)
	}
	return p, nil
}

// setChannel makes the peer's packet template: a ChannelData header for
// channel ch, then the payload (see turnHeader).
func (p *turnPeer) setChannel(ch uint16, call uint32, reverse bool, size int) {
	f := make([]byte, 4+size)
	binary.BigEndian.PutUint16(f[0:], ch)
	binary.BigEndian.PutUint16(f[2:], uint16(size))
	rand.Read(f[4+turnHeader:])
	binary.BigEndian.PutUint32(f[4:], call)
	if reverse {
		f[8] = 1
	}
	p.frame = f
}

func (p *turnPeer) close() {
	if p.relay != nil {
		p.relay.Close() // asks the server to end the allocation, without waiting
	}
	p.client.Close()
	p.conn.Close()
}

// read is a peer's reader: it counts ChannelData packets itself and hands
// everything else (STUN responses, Data indications) to pion's client.
func (g *turnGen) read(p *turnPeer) {
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		now := g.now()
		// ChannelData: channel numbers 0x4000–0x4FFF (RFC 8656 §12).
		if n >= 4 && buf[0]&0xC0 == 0x40 {
			l := int(binary.BigEndian.Uint16(buf[2:]))
			if l >= turnHeader && 4+l <= n {
				d := buf[4 : 4+l]
				if tag := d[5]; tag != 0 {
					sent := time.Duration(binary.BigEndian.Uint64(d[10:]))
					g.stats[tag].record(d[4], now-sent)
				}
			}
			continue
		}
		p.client.HandleInbound(buf[:n], net.UDPAddrFromAddrPort(from))
	}
}

// send is the one sender: every call's two sides send Rate packets/s,
// spread evenly over the packet interval in slots of 1 ms.
func (g *turnGen) send(ctx context.Context) {
	interval := time.Second / time.Duration(g.cfg.Rate)
	const slot = time.Millisecond
	slots := max(int(interval/slot), 1)
	start := g.now()
	var peers []*turnPeer
	var known int
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(g.server.IP.To4())), uint16(g.server.Port))
	for k := 0; ; k++ {
		due := start + time.Duration(k)*slot
		if ctx.Err() != nil {
			return
		}
		if d := due - g.now(); d > 0 {
			time.Sleep(d) // at most a slot: cheaper than a timer channel
		}
		if late := int64(g.now() - due); late > g.lag.Load() {
			g.lag.Store(late)
		}
		g.mu.Lock()
		for ; known < len(g.calls); known++ {
			peers = append(peers, g.calls[known].a, g.calls[known].b)
		}
		g.mu.Unlock()
		tag := byte(g.tag.Load())
		st := g.stats[tag]
		s := k % slots
		var n int64
		for i := s; i < len(peers); i += slots {
			p := peers[i]
			d := p.frame[4:]
			d[5] = tag
			binary.BigEndian.PutUint32(d[6:], p.seq)
			p.seq++
			binary.BigEndian.PutUint64(d[10:], uint64(g.now()))
			if _, err := p.conn.WriteToUDPAddrPort(p.frame, dst); err == nil {
				n++
			}
		}
		if tag != 0 {
			st.sent.Add(n)
		}
	}
}

// closeAll ends every call: allocations are released without waiting for
// the server's answer, then the readers stop.
func (g *turnGen) closeAll() {
	g.mu.Lock()
	calls := g.calls
	g.calls = nil
	g.mu.Unlock()
	for _, c := range calls {
		c.a.close()
		c.b.close()
	}
	g.wg.Wait()
}
