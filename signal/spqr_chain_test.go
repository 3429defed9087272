package signal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func spqrMsg(epoch uint64, index uint32, typ byte) []byte {
	b := []byte{spqrVersion1}
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, uint64(index))
	return append(b, typ)
}

func TestSPQRChain(t *testing.T) {
	t.Parallel()
	pqr := bytes.Repeat([]byte{7}, 32)
	a := newSPQRState(pqr, true)
	b := newSPQRState(pqr, false)
	// Both halves match across the two sides, and differ from each other.
	var msgs [][]byte
	var keys [][32]byte
	for i := 0; i < 50; i++ {
		m, k := a.sendMessage()
		msgs, keys = append(msgs, m), append(keys, k)
	}
	if !bytes.Equal(msgs[0], []byte{1, 1, 1, 0}) {
		t.Fatalf("first message %x", msgs[0])
	}
	// Out of order, then each once only.
	for _, i := range []int{3, 0, 49, 1, 2, 10} {
		k, err := b.recvKey(msgs[i])
		if err != nil || !bytes.Equal(k, keys[i][:]) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for _, i := range []int{3, 49} {
		if _, err := b.recvKey(msgs[i]); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("message %d again: %v", i, err)
		}
	}
	m, k := b.sendMessage()
	if got, err := a.recvKey(m); err != nil || !bytes.Equal(got, k[:]) {
		t.Fatalf("B→A: %v", err)
	}
	if k == keys[0] {
		t.Fatal("A→B and B→A halves are the same")
	}
	// What libsignal would reject, we reject: V0 (empty), unknown versions,
	// epochs we cannot reach, too far ahead.
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"version 2": {2, 1, 1, 0},
		"epoch 2":   spqrMsg(2, 60, 0),
		"no type":   {1, 1, 60},
		"bad type":  spqrMsg(1, 60, 7),
		"too far":   spqrMsg(1, 100+spqrMaxJump, 0),
		"truncated": {1, 0x81},
	} {
		if _, err := b.clone().recvKey(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Index 0 names no key (no salt), as libsignal.
	if k, err := b.recvKey(spqrMsg(1, 0, 0)); err != nil || k != nil {
		t.Fatalf("index 0: %x, %v", k, err)
	}
	// Payload chunks from libsignal (header or key chunks) are ignored.
	m, k = a.sendMessage()
	m[len(m)-1] = 1 // Hdr
	m = append(m, append([]byte{0}, bytes.Repeat([]byte{9}, 32)...)...)
	if got, err := b.recvKey(m); err != nil || !bytes.Equal(got, k[:]) {
		t.Fatalf("message with a chunk: %v", err)
	}
}
