package netlab

import (
	"fmt"
	"slices"
	"time"
)

// A Profile is one named censor: what the censor namespace does to the
// traffic it forwards. The package doc has the table of all of them.
type Profile struct {
	Name    string
	Summary string // what it emulates, one line

	// filter holds iptables rules (arguments after "-A FORWARD"), applied
	// in order before any queue rule.
	filter [][]string
	// rateBits > 0 shapes each direction of each client's path to that
	// many bits per second with a queue of queueBytes.
	rateBits   int
	queueBytes int
	// impair, when set, sends every forwarded packet through the NFQUEUE
	// handler, which applies it per direction.
	impair *Impairment
}

// An Impairment is what the NFQUEUE handler does to each packet of one
// direction: drop it, or accept it after a delay.
type Impairment struct {
	Loss   float64         // independent random loss probability
	Bursty *GilbertElliott // bursty loss; applied after Loss
	Delay  time.Duration   // base one-way delay added
	Jitter time.Duration   // delay is uniform in [Delay−Jitter, Delay+Jitter], clipped at 0
}

// GilbertElliott is the two-state loss model: in the good state a packet is
// lost with probability 1−K, in the bad state with probability 1−H; after
// each packet the state moves good→bad with probability P and bad→good with
// probability Q. The mean loss is P/(P+Q)·(1−H) + Q/(P+Q)·(1−K).
type GilbertElliott struct {
	P, Q, H, K float64
}

// MeanLoss is the long-run loss probability of the model.
func (g GilbertElliott) MeanLoss() float64 {
	bad := g.P / (g.P + g.Q)
	return bad*(1-g.H) + (1-bad)*(1-g.K)
}

// STUN and DTLS, as the DPI profile recognises them.
const (
	stunMagicCookie = 0x2112A442 // RFC 8489 §5, at UDP payload offset 4
	dtlsHandshake   = 22         // RFC 9147 §4: content type, payload byte 0
)

// The profiles, in the order of the issue and the report.
var profiles = []Profile{
	{
		Name:    "clean",
		Summary: "a good network: plain forwarding",
	},
	{
		Name:    "loss-10",
		Summary: "a lossy link: 10% random loss each way",
		impair:  &Impairment{Loss: 0.10},
	},
	{
		Name:    "burst-loss-20",
		Summary: "losses in bursts: Gilbert–Elliott with 20% mean loss each way",
		impair:  &Impairment{Bursty: &GilbertElliott{P: 1.0 / 14, Q: 1.0 / 4, H: 0.1, K: 1}},
	},
	{
		Name:    "jitter-150",
		Summary: "a congested path: 60 ms ± 150 ms delay each way, reordering",
		impair:  &Impairment{Delay: 60 * time.Millisecond, Jitter: 150 * time.Millisecond},
	},
	{
		Name:       "rate-32k",
		Summary:    "a throttled link: 32 kbit/s each way, 3200-byte queue",
		rateBits:   32000,
		queueBytes: 3200,
	},
	{
		Name:    "udp-blocked",
		Summary: "only TCP gets through: every UDP packet dropped",
		filter:  [][]string{{"-p", "udp", "-j", "DROP"}},
	},
	{
		Name:    "stun-dpi",
		Summary: "DPI against WebRTC: STUN and DTLS handshakes dropped, other UDP throttled to 4 KiB/s per flow",
		filter: [][]string{
			// IP header length from byte 0, then @ moves to the UDP header:
			// the payload starts at 8, the cookie at payload offset 4.
			{"-p", "udp", "-m", "u32", "--u32", fmt.Sprintf("0>>22&0x3C@12=0x%08X", stunMagicCookie), "-j", "DROP"},
			// Payload bytes 0..2: content type, then the record version.
			{"-p", "udp", "-m", "u32", "--u32", fmt.Sprintf("0>>22&0x3C@8>>8=0x%02XFEFF", dtlsHandshake), "-j", "DROP"},
			{"-p", "udp", "-m", "u32", "--u32", fmt.Sprintf("0>>22&0x3C@8>>8=0x%02XFEFD", dtlsHandshake), "-j", "DROP"},
			{"-p", "udp", "-m", "hashlimit", "--hashlimit-above", "4kb/s", "--hashlimit-burst", "8kb",
				"--hashlimit-mode", "srcip,srcport,dstip,dstport", "--hashlimit-name", "udpthrottle", "-j", "DROP"},
		},
	},
	{
		Name:    "tcp-freeze-16k",
		Summary: "TSPU-style freeze: a TCP flow is silently stalled after 16 KB downstream",
		filter: [][]string{{"-p", "tcp", "-m", "conntrack", "--ctdir", "REPLY",
			"-m", "connbytes", "--connbytes", "16000:", "--connbytes-dir", "reply", "--connbytes-mode", "bytes", "-j", "DROP"}},
	},
}

// Profiles lists every profile, in a fixed order.
func Profiles() []Profile { return slices.Clone(profiles) }

// ProfileNames lists the profiles' names, in the order of Profiles.
func ProfileNames() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.Name
	}
	return names
}

// Lookup finds a profile by name.
func Lookup(name string) (Profile, error) {
	for _, p := range profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("netlab: no profile %q (have %v)", name, ProfileNames())
}

// Impairment is what the profile's NFQUEUE handler does each way, or nil.
func (p Profile) Impairment() *Impairment { return p.impair }
