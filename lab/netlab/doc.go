// Package netlab builds the hostile-network lab: client, censor and server
// network namespaces joined by veth pairs, with the censor routing between
// them and impairing the traffic by a named, reproducible profile.
//
// # Topology
//
//	client 0 (10.77.1.2) ─veth─ c0 ┐
//	client 1 (10.77.2.2) ─veth─ c1 ├ censor (ip_forward=1) ─ srv ─veth─ server (10.77.0.2)
//	   …                           ┘
//
// Each client is in its own namespace on its own /24 (10.77.i+1.0/24, the
// censor is .1), the server on 10.77.0.0/24. Every packet between a client
// and the server, or between two clients, is forwarded by the censor and so
// passes its profile once. The ranges exist only inside the lab's namespaces,
// so labs running side by side cannot collide; their namespace names carry the
// creating process id and a random suffix (parleylab-PID-RAND-ROLE). New
// deletes namespaces left behind by a process that no longer exists (a killed
// test run); Close deletes the lab's own, killing what still runs in them.
//
// IPv6 is switched off in the lab and every veth sends MTU-sized packets
// (gso_max_segs 1), as a real link would: loss and the byte counts of
// conntrack then apply per packet, not per 64 KB offload super-packet.
//
// The lab is built with the ip, tc and iptables commands run through os/exec,
// so that every step can be read, logged and repeated by hand (Options.Log
// prints each command). iptables, not nft, writes the rules: this kernel has
// no nft "queue" expression, while iptables' NFQUEUE target (through either
// backend) works; the other rules use the u32, hashlimit and connbytes
// matches. Binaries run inside a namespace as separate processes
// (Lab.Command wraps them in "ip netns exec"), because a Go program's network
// namespace is per OS thread. The one exception is the censor's own packet
// handler, which runs in the calling process: its netlink socket is created
// inside the censor namespace (go-nfqueue's Config.NetNS) and stays there.
//
// # Profiles
//
// Loss, delay and jitter are applied by the censor's NFQUEUE handler (the
// kernel has no tc netem): iptables sends every forwarded packet to queue 0
// (from a client) or queue 1 (from the server), and the handler drops a packet
// or holds its accept verdict on a timer. Each direction has its own
// pseudo-random generator seeded from Options.Seed and the direction, so the
// same packets meet the same fate in every run. Rate limits are tc qdiscs on
// the censor's outgoing interfaces; blocking and DPI are iptables rules in the
// censor's FORWARD chain.
//
//	name            emulates                              built from
//	clean           a good network                        nothing: plain forwarding
//	loss-10         a lossy radio link                    NFQUEUE: each packet dropped with p = 0.10, each way
//	burst-loss-20   congestion / fading: losses in runs   NFQUEUE: Gilbert–Elliott per direction, p = 1/14 (good→bad),
//	                                                      q = 1/4 (bad→good), h = 0.1 (a packet survives in bad),
//	                                                      1−k = 0 (no loss in good): mean loss π_bad·(1−h) = 2/9·0.9 = 20 %,
//	                                                      mean run of consecutive losses 1/(1−0.75·0.9) ≈ 3.1 packets
//	jitter-150      a congested mobile path               NFQUEUE: each packet held 60 ms ± 150 ms (uniform in
//	                                                      [−90, 210] ms, clipped at 0, as netem "delay 60ms 150ms");
//	                                                      median 60 ms, mean ≈ 73.5 ms; packets overtake each other
//	rate-32k        a throttled or saturated uplink       tc: 32 kbit/s each way per client: htb class per client on the
//	                                                      server-facing link (rate = ceil = 32kbit, burst 2 KB), tbf on
//	                                                      each client-facing link (32kbit, burst 2 KB); queue 3200 bytes
//	                                                      (two full packets, 0.8 s), tail drop
//	udp-blocked     networks that allow only TCP (web)    iptables: -p udp -j DROP; TCP passes
//	stun-dpi        DPI against WebRTC                    iptables u32: drop UDP whose payload has the STUN magic cookie
//	                                                      0x2112A442 at offset 4 (RFC 8489 §5), or starts with a DTLS
//	                                                      handshake record (content type 22, version 0xfeff or 0xfefd,
//	                                                      RFC 9147 §4); other UDP is throttled per flow and direction
//	                                                      by hashlimit to 4 KiB/s (~33 kbit/s, burst 8 KiB), excess dropped
//	tcp-freeze-16k  TSPU freezing TCP to foreign hosting  iptables connbytes: once a TCP flow has carried 16000 bytes
//	                                                      (IP headers included) downstream, i.e. in the conntrack reply
//	                                                      direction of a client-opened flow, its further downstream
//	                                                      packets are dropped silently (no RST); new flows start at 0
//
// To reproduce a profile by hand, build the lab with Options.Log set: it
// prints every command, in order.
//
// # The queue
//
// The NFQUEUE handler copies only packet metadata, queues up to 8192 packets
// per direction and reads with a 4 MB socket buffer, far above what the lab's
// rates need (a call is ~50 packets/s; the probes ~1000/s with ≤ 210 ms held).
// Queue overflow fails open (the kernel accepts the packet unimpaired, flag
// NfQaCfgFlagFailOpen): an overloaded censor under-impairs, which the lab's
// tests would see as a wrong loss rate. The iptables rule has no
// --queue-bypass: if the handler is gone, packets are dropped, loudly.
//
// # Using it
//
//	lab, err := netlab.New(ctx, netlab.Options{Clients: 2, Profile: "loss-10"})
//	defer lab.Close()
//	srv := lab.Command(lab.Server(), "parleyd", "--listen", lab.ServerAddr().String()+":0")
//	cli := lab.Command(lab.Client(0), "parley", "recv")
//	lab.SetProfile(ctx, "udp-blocked") // no rebuild
//
// # Where it runs
//
// Check reports why the lab cannot run here (not root, a missing command or
// kernel feature). Open is the test entry point: it skips the test with that
// reason, or fails it when CI=true, and closes the lab in t.Cleanup.
//
// Without root, Proxy is an in-process stand-in: a UDP and TCP relay on a
// loopback port that applies the same profiles to datagrams (the same seeded
// loss and delay code, the same DPI and rates) and what it can to TCP
// streams (rates and the 16 KB freeze; not loss or jitter, which a stream
// relay cannot apply). Whoever reports results says which one ran: the
// namespaces or the proxy.
//
// # Measured
//
// The package's tests measure each profile with probe processes in the
// namespaces (the test binary re-executed, NETLAB_PROBE=mode) and fail when
// a profile stops impairing as documented; TestMessaging times parley
// messages through clean and loss-10.
package netlab
