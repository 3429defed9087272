package signaltest

// libsignal's speed beside Go's, measured the same way on the same machine:
//
//   - set-up: the initiator processes a prekey bundle and encrypts the first
//     message, the responder decrypts that PreKeySignalMessage (bundle
//     generation, with its Kyber key generation, is not timed);
//   - message: one 100-byte message encrypted and decrypted in an established
//     session, the direction changing every 10 messages so both ratchets turn.
//
// libsignal is timed inside Node between two libsignal parties (the harness'
// bench command), so harness round trips are not in its figures; the B/op and
// allocs/op columns of its sub-benchmarks count only the Go side's call.
// Both sides' stores serialise session records on every save, as real stores
// do. libsignal also runs the full SPQR (ML-KEM-768 chunks) per message, which
// package signal does not (see its spqr.go): part of the difference is that.
//
//	go test -run TestReportLibsignalSpeed -v ./signal/signaltest/
//	go test -run '^$' -bench . ./signal/signaltest/

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
)

var benchPlaintext = bytes.Repeat([]byte{'x'}, 100)

// goPair is two Go parties for the speed measurements.
type goPair struct {
	alice, bob *MemStore
	aAddr      parley.Address
	bAddr      parley.Address
}

func newGoPair() (*goPair, error) {
	ka, err := signal.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	kb, err := signal.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	return &goPair{
		alice: NewMemStore(ka, 1111), bob: NewMemStore(kb, 2222),
		aAddr: parley.Address{User: "bench-alice", Device: 1}, bAddr: parley.Address{User: "bench-bob", Device: 1},
	}, nil
}

// setup runs one PQXDH set-up from bundle b (made by p.bob).
func (p *goPair) setup(ctx context.Context, b *signal.PreKeyBundle) error {
	p.alice.ForgetSession(p.bAddr)
	p.bob.ForgetSession(p.aAddr)
	if err := signal.ProcessPreKeyBundle(ctx, p.alice, p.bAddr, b, time.Now()); err != nil {
		return fmt.Errorf("ProcessPreKeyBundle: %w", err)
	}
	m, err := signal.Encrypt(ctx, p.alice, p.bAddr, benchPlaintext, time.Now())
	if err != nil {
		return fmt.Errorf("Encrypt (first message): %w", err)
	}
	if _, err := signal.DecryptPreKey(ctx, p.bob, p.aAddr, m.Serialized); err != nil {
		return fmt.Errorf("DecryptPreKey: %w", err)
	}
	return nil
}

// message sends message number i: alice → bob for i/10 even, else back.
func (p *goPair) message(ctx context.Context, i int) error {
	from, to, toAddr, fromAddr := p.alice, p.bob, p.bAddr, p.aAddr
	if (i/10)%2 == 1 {
		from, to, toAddr, fromAddr = p.bob, p.alice, p.aAddr, p.bAddr
	}
	m, err := signal.Encrypt(ctx, from, toAddr, benchPlaintext, time.Now())
	if err != nil {
		return fmt.Errorf("Encrypt message %d: %w", i, err)
	}
	if m.Type == parley.EnvelopePreKey {
		_, err = signal.DecryptPreKey(ctx, to, fromAddr, m.Serialized)
	} else {
		_, err = signal.Decrypt(ctx, to, fromAddr, m.Serialized)
	}
	if err != nil {
		return fmt.Errorf("Decrypt message %d: %w", i, err)
	}
	return nil
}

// established returns a pair with a session that has turned once each way.
func established(ctx context.Context) (*goPair, error) {
	p, err := newGoPair()
	if err != nil {
		return nil, err
	}
	b, err := p.bob.NewBundle(1, 1, 1, 1, time.Now())
	if err != nil {
		return nil, err
	}
	if err := p.setup(ctx, b); err != nil {
		return nil, err
	}
	for i := 10; i < 11; i++ { // one reply, so the next alice → bob is a SignalMessage
		if err := p.message(ctx, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// goSpeed measures Go as the harness' bench measures libsignal.
func goSpeed(n, messages int) (setupsPerSec, messagesPerSec float64, err error) {
	ctx := context.Background()
	p, err := newGoPair()
	if err != nil {
		return 0, 0, err
	}
	bundles := make([]*signal.PreKeyBundle, n)
	for i := range bundles {
		id := uint32(1000 + i)
		if bundles[i], err = p.bob.NewBundle(1, id, id, id, time.Now()); err != nil {
			return 0, 0, fmt.Errorf("bundle: %w", err)
		}
	}
	start := time.Now()
	for _, b := range bundles {
		if err := p.setup(ctx, b); err != nil {
			return 0, 0, fmt.Errorf("set-up: %w", err)
		}
	}
	setupsPerSec = float64(n) / time.Since(start).Seconds()

	if p, err = established(ctx); err != nil {
		return 0, 0, fmt.Errorf("session: %w", err)
	}
	start = time.Now()
	for i := 0; i < messages; i++ {
		if err := p.message(ctx, i); err != nil {
			return 0, 0, err
		}
	}
	return setupsPerSec, float64(messages) / time.Since(start).Seconds(), nil
}

// TestReportLibsignalSpeed prints libsignal's and Go's figures side by side.
func TestReportLibsignalSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("speed report skipped in -short mode")
	}
	const n, messages = 200, 2000
	h := Start(t)
	lib, err := h.Bench(n, messages)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("libsignal %s (Node %s), in process: %.0f PQXDH set-ups/s (%.0f µs), %.0f encrypt+decrypt/s (%.1f µs) of %d-byte messages; bundle generation %.0f/s",
		lib.Libsignal, lib.Node, lib.SetupsPerSec, lib.SetupMicros, lib.EncryptDecryptPerSec, lib.EncryptDecryptMicros, lib.MessageBytes, lib.BundlesPerSec)
	gs, gm, err := goSpeed(n, messages)
	if err != nil {
		t.Fatalf("Go side of the speed report: %v (libsignal's figures are above)", err)
	}
	t.Logf("Go package signal: %.0f PQXDH set-ups/s (%.0f µs), %.0f encrypt+decrypt/s (%.1f µs)", gs, 1e6/gs, gm, 1e6/gm)
	t.Logf("Go / libsignal: set-up %.2fx, encrypt+decrypt %.2fx", gs/lib.SetupsPerSec, gm/lib.EncryptDecryptPerSec)
}

// launchForBench starts one harness for all runs of a libsignal
// sub-benchmark, so that Node's start-up is not timed.
func launchForBench(b *testing.B) (*Harness, func(b *testing.B) *Harness) {
	h, err := Launch()
	if err == nil {
		b.Cleanup(h.Close)
	}
	return h, func(b *testing.B) *Harness {
		if errors.Is(err, ErrUnavailable) {
			Unavailable(b, err.Error())
		}
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
}

func BenchmarkPQXDHSetup(b *testing.B) {
	_, harness := launchForBench(b)
	b.Run("go", func(b *testing.B) {
		ctx := context.Background()
		p, err := newGoPair()
		if err != nil {
			b.Fatal(err)
		}
		bundles := make([]*signal.PreKeyBundle, b.N)
		for i := range bundles {
			id := uint32(1 + i)
			if bundles[i], err = p.bob.NewBundle(1, id, id, id, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := p.setup(ctx, bundles[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("libsignal", func(b *testing.B) {
		r, err := harness(b).Bench(b.N, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.SetupMicros*1e3, "ns/op")
	})
}

func BenchmarkEncryptDecrypt(b *testing.B) {
	_, harness := launchForBench(b)
	b.Run("go", func(b *testing.B) {
		ctx := context.Background()
		p, err := established(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(benchPlaintext)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := p.message(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("libsignal", func(b *testing.B) {
		r, err := harness(b).Bench(1, b.N)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(r.MessageBytes))
		b.ReportMetric(r.EncryptDecryptMicros*1e3, "ns/op")
	})
}
