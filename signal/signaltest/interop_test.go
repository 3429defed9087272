package signaltest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

// Flags for longer or different runs of the long interop tests, e.g.
//
//	go test ./signal/signaltest/ -run Interop -interop.messages 20000 -interop.seed 7
var (
	flagMessages = flag.Int("interop.messages", 1000, "messages each way in each long interop conversation")
	flagSeed     = flag.Uint64("interop.seed", 0, "added to each conversation's script seed")
)

// A peer is one device in a conversation: Go (package signal with a
// MemStore) or libsignal (a party in the harness).
type peer interface {
	String() string // "Go alice.1", "libsignal bob.2"
	addr() parley.Address
	identityKey() []byte
	encrypt(to peer, plaintext []byte) (signal.CiphertextMessage, error)
	decrypt(from peer, typ parley.EnvelopeType, ciphertext []byte) ([]byte, error)
	// newBundle generates fresh prekeys and returns the bundle others fetch.
	newBundle(t testing.TB) anyBundle
	// startSession archives any session with remote and starts a new one
	// from remote's bundle b.
	startSession(remote peer, b anyBundle) error
}

// anyBundle is a bundle in the form its maker produced: Go's struct or the
// harness' JSON. A libsignal↔libsignal run never converts, so it proves the
// harness and the test driver without package signal.
type anyBundle struct {
	g  *signal.PreKeyBundle
	js *Bundle
}

type goPeer struct {
	a      parley.Address
	store  *MemStore
	key    signal.KeyPair
	nextID uint32
}

func newGoPeer(t testing.TB, user string, device parley.DeviceID, regID uint32) *goPeer {
	t.Helper()
	kp, err := signal.GenerateKeyPair()
	if err != nil {
		t.Fatalf("Go: GenerateKeyPair: %v", err)
	}
	return &goPeer{a: parley.Address{User: parley.UserID(user), Device: device}, store: NewMemStore(kp, regID), key: kp, nextID: 100}
}

func (p *goPeer) String() string       { return "Go " + p.a.String() }
func (p *goPeer) addr() parley.Address { return p.a }
func (p *goPeer) identityKey() []byte  { return p.key.Public.Bytes() }
func (p *goPeer) encrypt(to peer, pt []byte) (signal.CiphertextMessage, error) {
	return signal.Encrypt(context.Background(), p.store, to.addr(), pt, time.Now())
}

func (p *goPeer) decrypt(from peer, typ parley.EnvelopeType, ct []byte) ([]byte, error) {
	switch typ {
	case parley.EnvelopePreKey:
		return signal.DecryptPreKey(context.Background(), p.store, from.addr(), ct)
	case parley.EnvelopeSignal:
		return signal.Decrypt(context.Background(), p.store, from.addr(), ct)
	}
	return nil, fmt.Errorf("unknown message type %d", typ)
}

func (p *goPeer) newBundle(t testing.TB) anyBundle {
	t.Helper()
	p.nextID++
	b, err := p.store.NewBundle(p.a.Device, p.nextID, p.nextID, p.nextID, time.Now())
	if err != nil {
		t.Fatalf("%v: make a bundle: %v", p, err)
	}
	return anyBundle{g: b}
}

func (p *goPeer) startSession(remote peer, b anyBundle) error {
	g := b.g
	if g == nil {
		var err error
		if g, err = b.js.Decode(); err != nil {
			return fmt.Errorf("Go cannot decode %v's bundle: %w", remote, err)
		}
	}
	// A reset as a client does it: archive, then start from the bundle.
	if err := p.store.ArchiveSession(context.Background(), remote.addr()); err != nil {
		return fmt.Errorf("Go archive the session with %v: %w", remote, err)
	}
	if err := signal.ProcessPreKeyBundle(context.Background(), p.store, remote.addr(), g, time.Now()); err != nil {
		return fmt.Errorf("Go ProcessPreKeyBundle(%v's bundle): %w", remote, err)
	}
	return nil
}

type jsPeer struct {
	h      *Harness
	party  string
	a      parley.Address
	regID  uint32
	key    []byte
	nextID uint32
}

func newJSPeer(t testing.TB, h *Harness, user string, device parley.DeviceID, regID uint32) *jsPeer {
	t.Helper()
	a := parley.Address{User: parley.UserID(user), Device: device}
	key, err := h.Create(a.String(), a, regID)
	if err != nil {
		t.Fatal(err)
	}
	return &jsPeer{h: h, party: a.String(), a: a, regID: regID, key: key, nextID: 100}
}

func (p *jsPeer) String() string       { return "libsignal " + p.a.String() }
func (p *jsPeer) addr() parley.Address { return p.a }
func (p *jsPeer) identityKey() []byte  { return p.key }
func (p *jsPeer) encrypt(to peer, pt []byte) (signal.CiphertextMessage, error) {
	return p.h.Encrypt(p.party, to.addr(), pt)
}

func (p *jsPeer) decrypt(from peer, typ parley.EnvelopeType, ct []byte) ([]byte, error) {
	return p.h.Decrypt(p.party, from.addr(), typ, ct)
}

func (p *jsPeer) newBundle(t testing.TB) anyBundle {
	t.Helper()
	p.nextID++
	id := p.nextID
	b, err := p.h.Bundle(p.party, BundleRequest{PreKeyID: &id, SignedPreKeyID: id, KyberPreKeyID: id})
	if err != nil {
		t.Fatalf("%v: make a bundle: %v", p, err)
	}
	return anyBundle{js: b}
}

func (p *jsPeer) startSession(remote peer, b anyBundle) error {
	js := b.js
	if js == nil {
		js = EncodeBundle(b.g)
		if err := p.checkGoBundle(js); err != nil {
			return fmt.Errorf("%v's bundle: %w", remote, err)
		}
	}
	// A reset as a client does it: archive the current state, then start
	// from the fresh bundle. (processPreKeyBundle would archive it too.)
	if err := p.h.Archive(p.party, remote.addr()); err != nil && !strings.Contains(err.Error(), "no session") {
		return err
	}
	return p.h.Process(p.party, remote.addr(), js)
}

// checkGoBundle checks a bundle made by Go the way libsignal will, one
// property at a time, so that a failure names the key or signature.
func (p *jsPeer) checkGoBundle(b *Bundle) error {
	for _, k := range []struct {
		name string
		b    []byte
		typ  byte
		size int
	}{
		{"identity key", b.IdentityKey, signal.DjbType, signal.PublicKeySize},
		{"signed prekey", b.SignedPreKey, signal.DjbType, signal.PublicKeySize},
		{"Kyber prekey", b.KyberPreKey, signal.KyberType, signal.KyberPubKeySize},
	} {
		if len(k.b) != k.size || k.b[0] != k.typ {
			return fmt.Errorf("Go's %s is %d bytes starting %x, want %d bytes starting %#02x", k.name, len(k.b), k.b[:min(4, len(k.b))], k.size, k.typ)
		}
	}
	if b.PreKeyID != nil && (len(b.PreKey) != signal.PublicKeySize || b.PreKey[0] != signal.DjbType) {
		return fmt.Errorf("Go's one-time prekey is %d bytes starting %x", len(b.PreKey), b.PreKey[:min(4, len(b.PreKey))])
	}
	for _, s := range []struct {
		name     string
		key, sig []byte
	}{
		{"signed prekey", b.SignedPreKey, b.SignedPreKeySignature},
		{"Kyber prekey", b.KyberPreKey, b.KyberPreKeySignature},
	} {
		ok, err := p.h.Verify(b.IdentityKey, s.key, s.sig)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("libsignal's PublicKey.verify rejects Go's XEdDSA signature on the %s: identity %x, signed bytes %x…(%d), signature %x", s.name, b.IdentityKey, s.key[:min(8, len(s.key))], len(s.key), s.sig)
		}
	}
	return nil
}

// message is one message in flight.
type message struct {
	seq      int
	from, to peer
	pt       []byte
	ct       signal.CiphertextMessage
	step     int // the step it was sent at
	note     string
}

// conversation drives two peers through a scripted but random exchange and
// fails the test with a precise report at the first error.
type conversation struct {
	t         testing.TB
	rng       *rand.Rand
	a, b      peer
	step      int
	seq       int
	delivered map[string]int // per direction "from → to"
	dropped   int
	held      []*message // sent, delivered later (across other traffic)
	heldSince int        // step of the oldest held message
	history   []string   // recent events, for failure reports
}

func newConversation(t testing.TB, seed uint64, a, b peer) *conversation {
	seed += *flagSeed
	return &conversation{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), a: a, b: b, delivered: map[string]int{}}
}

func dirKey(from, to peer) string { return from.String() + " → " + to.String() }

func (c *conversation) event(format string, args ...any) {
	c.history = append(c.history, fmt.Sprintf("step %d: ", c.step)+fmt.Sprintf(format, args...))
	if len(c.history) > 25 {
		c.history = c.history[1:]
	}
}

func (c *conversation) fail(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s\n\nrecent events (oldest first):\n  %s\ndelivered so far: %v; dropped %d", fmt.Sprintf(format, args...), strings.Join(c.history, "\n  "), c.delivered, c.dropped)
}

// plaintext returns a message body: its number and direction, then random
// bytes of a length that is usually small, sometimes a few kilobytes,
// sometimes a multiple of the AES block size; now and then empty.
func (c *conversation) plaintext(from, to peer) []byte {
	if c.rng.IntN(97) == 0 {
		return []byte{}
	}
	head := fmt.Sprintf("#%d %v→%v:", c.seq, from, to)
	var n int
	switch r := c.rng.IntN(10); {
	case r < 7:
		n = c.rng.IntN(200)
	case r < 9:
		n = 16*c.rng.IntN(8) - len(head)%16 + 16
	default:
		n = 1000 + c.rng.IntN(4000)
	}
	b := make([]byte, len(head), len(head)+n)
	copy(b, head)
	for i := 0; i < n; i++ {
		b = append(b, byte(c.rng.Uint32()))
	}
	return b
}

func (c *conversation) send(from, to peer, note string) *message {
	c.t.Helper()
	c.seq++
	m := &message{seq: c.seq, from: from, to: to, pt: c.plaintext(from, to), step: c.step, note: note}
	ct, err := from.encrypt(to, m.pt)
	if err != nil {
		c.fail("%v could not encrypt message #%d (%d bytes) to %v: %v", from, m.seq, len(m.pt), to, err)
	}
	m.ct = ct
	switch {
	case ct.Type != parley.EnvelopePreKey && ct.Type != parley.EnvelopeSignal:
		c.fail("%v encrypted message #%d to %v as type %d, want 2 (SignalMessage) or 3 (PreKeySignalMessage)", from, m.seq, to, ct.Type)
	case len(ct.Serialized) == 0 || ct.Serialized[0] != 0x44:
		c.fail("%v encrypted message #%d to %v as %s; want version byte 0x44 (version 4)", from, m.seq, to, describeMessage(ct.Type, ct.Serialized))
	}
	c.event("%v sent #%d (%s, %d bytes)%s", from, m.seq, typeName(ct.Type), len(ct.Serialized), note)
	return m
}

func typeName(t parley.EnvelopeType) string {
	switch t {
	case parley.EnvelopePreKey:
		return "PreKeySignalMessage"
	case parley.EnvelopeSignal:
		return "SignalMessage"
	}
	return fmt.Sprintf("type %d", t)
}

func (c *conversation) deliver(m *message) {
	c.t.Helper()
	got, err := m.to.decrypt(m.from, m.ct.Type, m.ct.Serialized)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "post-quantum ratchet error") {
			hint = "\nhint: libsignal refused the message's pq_ratchet (SPQR) field before checking its MAC; " +
				"TestLibsignalSPQRAcceptance shows which payloads libsignal " + LibsignalVersion + " accepts"
		}
		c.fail("%v could not decrypt message #%d from %v (sent at step %d%s): %v\nmessage: %s\nfirst bytes: %x%s",
			m.to, m.seq, m.from, m.step, m.note, err, describeMessage(m.ct.Type, m.ct.Serialized), m.ct.Serialized[:min(48, len(m.ct.Serialized))], hint)
	}
	if !bytes.Equal(got, m.pt) {
		c.fail("%v decrypted message #%d from %v (%s) to %d bytes %x…, want %d bytes %x…",
			m.to, m.seq, m.from, describeMessage(m.ct.Type, m.ct.Serialized), len(got), got[:min(32, len(got))], len(m.pt), m.pt[:min(32, len(m.pt))])
	}
	c.delivered[dirKey(m.from, m.to)]++
	c.event("%v decrypted #%d", m.to, m.seq)
}

func (c *conversation) shuffle(ms []*message) {
	c.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
}

// window sends 1-8 messages one way, drops about one in ten (never
// delivered), holds about one in five back for later and delivers the rest
// in random order.
func (c *conversation) window(from, to peer) {
	c.t.Helper()
	k := 1 + c.rng.IntN(8)
	var ms []*message
	for i := 0; i < k; i++ {
		ms = append(ms, c.send(from, to, ""))
	}
	c.shuffle(ms)
	for _, m := range ms {
		switch r := c.rng.IntN(10); {
		case r == 0:
			c.dropped++
			c.event("dropped #%d", m.seq)
		case r < 3:
			if len(c.held) == 0 {
				c.heldSince = c.step
			}
			c.held = append(c.held, m)
			c.event("held #%d", m.seq)
		default:
			c.deliver(m)
		}
	}
}

// flush delivers every held message, in random order.
func (c *conversation) flush() {
	c.t.Helper()
	c.shuffle(c.held)
	for _, m := range c.held {
		c.deliver(m)
	}
	c.held = c.held[:0]
}

// pingPong alternates single messages, each delivered at once.
func (c *conversation) pingPong() {
	c.t.Helper()
	for i := c.rng.IntN(3); i >= 0; i-- {
		c.deliver(c.send(c.a, c.b, " (ping)"))
		c.deliver(c.send(c.b, c.a, " (pong)"))
	}
}

// establish has initiator start a session from responder's bundle and
// exchange first messages: several PreKeySignalMessages delivered out of
// order, then the reply that completes the session.
func (c *conversation) establish(initiator, responder peer) {
	c.t.Helper()
	c.event("%v starts a session from %v's bundle", initiator, responder)
	if err := initiator.startSession(responder, responder.newBundle(c.t)); err != nil {
		c.fail("session set-up: %v", err)
	}
	first := []*message{c.send(initiator, responder, " (first)"), c.send(initiator, responder, " (first)"), c.send(initiator, responder, " (first)"), c.send(initiator, responder, " (first, dropped)")}
	for _, m := range first {
		if m.ct.Type != parley.EnvelopePreKey {
			c.fail("%v's message #%d before any reply is a %s, want a PreKeySignalMessage", initiator, m.seq, typeName(m.ct.Type))
		}
	}
	c.dropped++ // first[3] is never delivered
	c.deliver(first[2])
	c.deliver(first[0])
	reply := c.send(responder, initiator, " (reply)")
	if reply.ct.Type != parley.EnvelopeSignal {
		c.fail("%v's reply #%d is a %s, want a SignalMessage", responder, reply.seq, typeName(reply.ct.Type))
	}
	c.deliver(first[1])
	c.deliver(reply)
}

// reset has r start over from a fresh bundle of p while messages of the old
// session are in flight both ways; all of them must still decrypt.
func (c *conversation) reset(r, p peer) {
	c.t.Helper()
	c.flush()
	oldPR := []*message{c.send(p, r, " (old session, in flight)"), c.send(p, r, " (old session, in flight)"), c.send(p, r, " (old session, in flight)")}
	oldRP := []*message{c.send(r, p, " (old session, in flight)"), c.send(r, p, " (old session, in flight)")}
	c.event("%v resets: archives its session with %v and starts from a fresh bundle", r, p)
	if err := r.startSession(p, p.newBundle(c.t)); err != nil {
		c.fail("reset: %v", err)
	}
	fresh := []*message{c.send(r, p, " (new session, dropped)"), c.send(r, p, " (new session)"), c.send(r, p, " (new session)"), c.send(r, p, " (new session)")}
	for _, m := range fresh {
		if m.ct.Type != parley.EnvelopePreKey {
			c.fail("after the reset %v's message #%d is a %s, want a PreKeySignalMessage", r, m.seq, typeName(m.ct.Type))
		}
	}
	fresh = fresh[1:] // the first is never delivered
	c.dropped++
	c.shuffle(oldPR)
	for _, m := range oldPR { // r decrypts with its archived state
		c.deliver(m)
	}
	c.deliver(oldRP[1]) // p still has the old session current
	// p answers in the old session before it sees the new one.
	mid := []*message{c.send(p, r, " (old session, sent after the reset)"), c.send(p, r, " (old session, sent after the reset)")}
	c.shuffle(fresh)
	for _, m := range fresh { // p starts the new session
		c.deliver(m)
	}
	c.deliver(oldRP[0]) // an old message after the new session started
	for _, m := range mid {
		c.deliver(m)
	}
	reply := c.send(p, r, " (new session, reply)")
	if reply.ct.Type != parley.EnvelopeSignal {
		c.fail("%v's reply #%d in the new session is a %s, want a SignalMessage", p, reply.seq, typeName(reply.ct.Type))
	}
	c.deliver(reply)
	c.deliver(c.send(r, p, " (new session)"))
}

// run exchanges at least n messages each way; halfway each side resets once.
func (c *conversation) run(n int) {
	c.t.Helper()
	resetA, resetB := false, false
	for c.delivered[dirKey(c.a, c.b)] < n || c.delivered[dirKey(c.b, c.a)] < n {
		c.step++
		if len(c.held) > 0 && c.step-c.heldSince >= 3 {
			// Bound how many ratchet turns a held message waits through:
			// libsignal keeps 5 receiver chains, so older ones are gone by
			// design, not by a bug.
			c.flush()
		}
		switch r := c.rng.IntN(10); {
		case r < 7:
			if c.rng.IntN(2) == 0 {
				c.window(c.a, c.b)
			} else {
				c.window(c.b, c.a)
			}
		case r < 8:
			c.flush()
			c.pingPong()
		default:
			c.flush()
		}
		switch least := min(c.delivered[dirKey(c.a, c.b)], c.delivered[dirKey(c.b, c.a)]); {
		case !resetB && least >= n/3:
			resetB = true
			c.reset(c.b, c.a)
		case !resetA && least >= 2*n/3:
			resetA = true
			c.reset(c.a, c.b)
		}
	}
	c.flush()
	c.t.Logf("%v ↔ %v: %d steps, delivered %v, dropped %d, 2 resets, 0 failures", c.a, c.b, c.step, c.delivered, c.dropped)
}

func TestInteropGoInitiates(t *testing.T) {
	h := Start(t)
	alice := newGoPeer(t, "alice", 1, 1001)
	bob := newJSPeer(t, h, "bob", 2, 2002)
	c := newConversation(t, 1, alice, bob)
	c.establish(alice, bob)
	checkRegistrationIDs(t, alice, bob)
	c.run(*flagMessages)
	checkRegistrationIDs(t, alice, bob)
}

func TestInteropLibsignalInitiates(t *testing.T) {
	h := Start(t)
	alice := newJSPeer(t, h, "alice", 3, 3003)
	bob := newGoPeer(t, "bob", 4, 4004)
	c := newConversation(t, 2, alice, bob)
	c.establish(alice, bob)
	checkRegistrationIDs(t, bob, alice)
	c.run(*flagMessages)
	checkRegistrationIDs(t, bob, alice)
}

// checkRegistrationIDs checks that each side's session records the other's
// registration id: Go's from libsignal's bundle or PreKeySignalMessage, and
// libsignal's from Go's.
func checkRegistrationIDs(t *testing.T, g *goPeer, js *jsPeer) {
	t.Helper()
	info, err := js.h.Session(js.party, g.addr())
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasCurrentState || info.RemoteRegistrationID != g.store.regID || info.LocalRegistrationID != js.regID {
		t.Errorf("%v's session with %v: %+v; want remote registration id %d, local %d", js, g, info, g.store.regID, js.regID)
	}
	rec, err := g.store.LoadSession(context.Background(), js.addr())
	if err != nil || rec == nil {
		t.Fatalf("%v has no session with %v: %v", g, js, err)
	}
	if id, ok := rec.RemoteRegistrationID(); !ok || id != js.regID {
		t.Errorf("%v's session with %v: remote registration id %d, %v; want %d", g, js, id, ok, js.regID)
	}
}

// TestHarnessControl runs the same driver libsignal ↔ libsignal: it proves
// the harness and the test script without package signal, so a failure of
// the Go tests above is Go's.
func TestHarnessControl(t *testing.T) {
	h := Start(t)
	alice := newJSPeer(t, h, "alice", 5, 5005)
	bob := newJSPeer(t, h, "bob", 6, 6006)
	c := newConversation(t, 3, alice, bob)
	c.establish(alice, bob)
	n := *flagMessages
	if testing.Short() {
		n = 200
	}
	c.run(n)
}

// tamperPositions lists bit flips for a message: the first, middle and last
// byte of each named region (skipping regions an attacker may change without
// detection in libsignal too: registration_id, and the low nibble of a
// PreKeySignalMessage's version byte, which libsignal ignores).
func tamperPositions(t testing.TB, typ parley.EnvelopeType, b []byte) []struct {
	what      string
	pos       int
	mask      byte
	tampering []byte
} {
	t.Helper()
	rs, err := messageRegions(typ, b)
	if err != nil {
		t.Fatalf("cannot parse %s to tamper with it: %v\n%x", typeName(typ), err, b)
	}
	var out []struct {
		what      string
		pos       int
		mask      byte
		tampering []byte
	}
	add := func(what string, pos int, mask byte) {
		c := bytes.Clone(b)
		c[pos] ^= mask
		out = append(out, struct {
			what      string
			pos       int
			mask      byte
			tampering []byte
		}{what, pos, mask, c})
	}
	for _, r := range rs {
		switch {
		case r.name == "version" && typ == parley.EnvelopePreKey:
			add("version (high nibble)", 0, 0x40)
		case r.name == "version":
			add("version (high nibble)", 0, 0x40)
			add("version (low nibble, covered by the MAC)", 0, 0x01)
		case r.name == "registration_id", r.name == "message":
			// registration_id is not authenticated by libsignal either;
			// message's parts are listed one by one as message.*.
		case r.end-r.start == 0:
		default:
			add(r.name+" first byte", r.start, 0x01)
			if r.end-r.start > 2 {
				add(r.name+" middle byte", (r.start+r.end)/2, 0x10)
			}
			if r.end-r.start > 1 {
				add(r.name+" last byte", r.end-1, 0x80)
			}
		}
	}
	return out
}

// tamper checks that to rejects every tampered copy of m and then still
// decrypts m itself.
func (c *conversation) tamper(m *message) int {
	c.t.Helper()
	n := 0
	for _, tp := range tamperPositions(c.t, m.ct.Type, m.ct.Serialized) {
		n++
		got, err := m.to.decrypt(m.from, m.ct.Type, tp.tampering)
		if err == nil {
			c.t.Errorf("%v accepted a %s from %v with %s flipped (byte %d ^ %#02x of %d): decrypted to %q\nmessage: %s",
				m.to, typeName(m.ct.Type), m.from, tp.what, tp.pos, tp.mask, len(tp.tampering), got[:min(32, len(got))], describeMessage(m.ct.Type, m.ct.Serialized))
		}
	}
	c.event("%v rejected %d tampered copies of #%d", m.to, n, m.seq)
	c.deliver(m) // tampered copies must not have disturbed the session
	c.replay(m)
	return n
}

// replay delivers m a second time: the receiver must refuse it as a
// duplicate (libsignal's DuplicatedMessage, Go's ErrDuplicateMessage).
func (c *conversation) replay(m *message) {
	c.t.Helper()
	got, err := m.to.decrypt(m.from, m.ct.Type, m.ct.Serialized)
	var herr *Error
	switch {
	case err == nil:
		c.t.Errorf("%v decrypted %s #%d from %v a second time (to %d bytes)", m.to, typeName(m.ct.Type), m.seq, m.from, len(got))
	case errors.As(err, &herr):
		if herr.Code != "DuplicatedMessage" {
			c.t.Errorf("libsignal refused replayed #%d with %v, want ErrorCode DuplicatedMessage", m.seq, err)
		}
	case !errors.Is(err, signal.ErrDuplicateMessage):
		c.t.Errorf("%v refused replayed #%d with %v, want an error wrapping signal.ErrDuplicateMessage", m.to, m.seq, err)
	}
}

func testTamper(t *testing.T, a, b peer) {
	c := newConversation(t, 4, a, b)
	c.event("%v starts a session from %v's bundle", a, b)
	if err := a.startSession(b, b.newBundle(t)); err != nil {
		c.fail("session set-up: %v", err)
	}
	first := c.send(a, b, " (PreKeySignalMessage to tamper with)")
	t.Logf("%v's first message: %s", a, describeMessage(first.ct.Type, first.ct.Serialized))
	n := c.tamper(first)
	reply := c.send(b, a, " (reply to tamper with)")
	t.Logf("%v's reply: %s", b, describeMessage(reply.ct.Type, reply.ct.Serialized))
	n += c.tamper(reply)
	for i := 0; i < 3; i++ {
		n += c.tamper(c.send(a, b, ""))
		n += c.tamper(c.send(b, a, ""))
	}
	// A SignalMessage delivered after a skipped one (its key comes from the
	// skipped-key store when the skipped one arrives).
	skipped := c.send(a, b, " (skipped)")
	c.deliver(c.send(a, b, ""))
	n += c.tamper(skipped)
	t.Logf("%v ↔ %v: %d tampered messages rejected", a, b, n)
}

func TestInteropTamperGoToLibsignal(t *testing.T) {
	h := Start(t)
	testTamper(t, newGoPeer(t, "alice", 1, 11), newJSPeer(t, h, "bob", 2, 22))
}

func TestInteropTamperLibsignalToGo(t *testing.T) {
	h := Start(t)
	testTamper(t, newJSPeer(t, h, "alice", 1, 11), newGoPeer(t, "bob", 2, 22))
}

func TestHarnessControlTamper(t *testing.T) {
	h := Start(t)
	testTamper(t, newJSPeer(t, h, "alice", 1, 11), newJSPeer(t, h, "bob", 2, 22))
}

func TestSafetyNumberMatchesLibsignal(t *testing.T) {
	h := Start(t)
	type identity struct {
		id  []byte
		key signal.PublicKey
	}
	vecKey := func(s string) signal.PublicKey {
		b, _ := hex.DecodeString(s)
		k, err := signal.DecodePublicKey(b)
		if err != nil {
			t.Fatalf("DecodePublicKey(%s): %v", s, err)
		}
		return k
	}
	pairs := [][2]identity{{
		{[]byte("+14152222222"), vecKey("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")},
		{[]byte("+14153333333"), vecKey("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")},
	}}
	ids := [][2]string{{"alice", "bob"}, {"bob", "alice"}, {"x.y_z-1", "a" + strings.Repeat("b", 31)}, {"same", "same"}, {"", "émile"}}
	for _, p := range ids {
		a, err := signal.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		b, err := signal.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, [2]identity{{[]byte(p[0]), a.Public}, {[]byte(p[1]), b.Public}})
	}
	for _, p := range pairs {
		for _, side := range [][2]identity{{p[0], p[1]}, {p[1], p[0]}} {
			local, remote := side[0], side[1]
			gd, gs, err := signal.SafetyNumber(local.id, local.key, remote.id, remote.key)
			if err != nil {
				t.Fatalf("Go SafetyNumber(%q, %q): %v", local.id, remote.id, err)
			}
			ld, ls, err := h.Fingerprint(local.id, local.key.Bytes(), remote.id, remote.key.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if gd != ld {
				t.Errorf("local %q %x, remote %q %x: digits\n Go        %s\n libsignal %s", local.id, local.key.Bytes(), remote.id, remote.key.Bytes(), gd, ld)
			}
			if !bytes.Equal(gs, ls) {
				t.Errorf("local %q %x, remote %q %x: scannable\n Go        %x\n libsignal %x", local.id, local.key.Bytes(), remote.id, remote.key.Bytes(), gs, ls)
			}
		}
	}
	t.Logf("%d identity pairs, both directions: Go's SafetyNumber equals libsignal's Fingerprint", len(pairs))
}

// TestInteropBundleSignatures checks that each side refuses the other's
// bundle when a prekey signature or the signed key is altered, and accepts
// it untouched.
func TestInteropBundleSignatures(t *testing.T) {
	h := Start(t)
	goAlice := newGoPeer(t, "alice", 1, 11)
	jsBob := newJSPeer(t, h, "bob", 2, 22)
	flips := []struct {
		name  string
		alter func(b *Bundle)
	}{
		{"signed prekey signature", func(b *Bundle) { b.SignedPreKeySignature[10] ^= 0x01 }},
		{"Kyber prekey signature", func(b *Bundle) { b.KyberPreKeySignature[40] ^= 0x01 }},
		{"signed prekey", func(b *Bundle) { b.SignedPreKey[5] ^= 0x01 }},
		{"Kyber prekey", func(b *Bundle) { b.KyberPreKey[100] ^= 0x01 }},
	}
	clone := func(b *Bundle) *Bundle {
		c := *b
		c.SignedPreKey, c.SignedPreKeySignature = bytes.Clone(b.SignedPreKey), bytes.Clone(b.SignedPreKeySignature)
		c.KyberPreKey, c.KyberPreKeySignature = bytes.Clone(b.KyberPreKey), bytes.Clone(b.KyberPreKeySignature)
		return &c
	}
	t.Run("Go refuses altered libsignal bundles", func(t *testing.T) {
		good := jsBob.newBundle(t).js
		for _, f := range flips {
			bad := clone(good)
			f.alter(bad)
			g, err := bad.Decode()
			if err != nil {
				continue // refused while decoding: fine
			}
			err = signal.ProcessPreKeyBundle(context.Background(), goAlice.store, jsBob.addr(), g, time.Now())
			if err == nil {
				t.Errorf("Go accepted libsignal's bundle with its %s altered", f.name)
			} else if !errors.Is(err, signal.ErrInvalidSignature) {
				t.Logf("altered %s refused with %v (not ErrInvalidSignature)", f.name, err)
			}
		}
		if err := goAlice.startSession(jsBob, anyBundle{js: good}); err != nil {
			t.Errorf("Go refused libsignal's untouched bundle: %v", err)
		}
	})
	t.Run("libsignal refuses altered Go bundles", func(t *testing.T) {
		goBob := newGoPeer(t, "carol", 3, 33)
		good := EncodeBundle(goBob.newBundle(t).g)
		for _, f := range flips {
			bad := clone(good)
			f.alter(bad)
			if err := h.Process(jsBob.party, goBob.addr(), bad); err == nil {
				t.Errorf("libsignal accepted Go's bundle with its %s altered", f.name)
			}
		}
		if err := jsBob.checkGoBundle(good); err != nil {
			t.Fatal(err)
		}
		if err := h.Process(jsBob.party, goBob.addr(), good); err != nil {
			t.Errorf("libsignal refused Go's untouched bundle: %v", err)
		}
	})
}

// testLongGap has from send gap messages of which only the last arrives
// first; then a sample of the skipped ones arrive, newest and oldest mixed,
// from the receiver's store of skipped message keys (libsignal keeps 2,000).
func testLongGap(t *testing.T, c *conversation, from, to peer, gap int) {
	t.Helper()
	ms := make([]*message, gap)
	for i := range ms {
		ms[i] = c.send(from, to, " (long gap)")
	}
	c.deliver(ms[gap-1])
	sample := []*message{ms[0], ms[gap/2], ms[gap-2]}
	for i := 0; i < 40; i++ {
		sample = append(sample, ms[c.rng.IntN(gap-1)])
	}
	seen := map[int]bool{}
	for _, m := range sample {
		if !seen[m.seq] {
			seen[m.seq] = true
			c.deliver(m)
		}
	}
	c.dropped += gap - 1 - len(seen)
	// The direction changes: the receiver answers, and old skipped keys of
	// the previous chain still work.
	c.deliver(c.send(to, from, " (answer after the gap)"))
	c.deliver(ms[gap/4])
	c.deliver(c.send(from, to, ""))
}

func TestInteropLongGaps(t *testing.T) {
	h := Start(t)
	for _, dir := range []struct {
		name string
		a, b func() peer
	}{
		{"Go initiates", func() peer { return newGoPeer(t, "alice", 1, 11) }, func() peer { return newJSPeer(t, h, "bob", 2, 22) }},
		{"libsignal initiates", func() peer { return newJSPeer(t, h, "carol", 3, 33) }, func() peer { return newGoPeer(t, "dave", 4, 44) }},
	} {
		t.Run(dir.name, func(t *testing.T) {
			a, b := dir.a(), dir.b()
			c := newConversation(t, 6, a, b)
			c.establish(a, b)
			testLongGap(t, c, a, b, 1500)
			testLongGap(t, c, b, a, 1500)
			t.Logf("%v ↔ %v: gaps of 1,500 both ways: delivered %v", a, b, c.delivered)
		})
	}
}
