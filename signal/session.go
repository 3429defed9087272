package signal

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// SessionRecord holds the current session state with a peer and up to
// ArchivedStatesMaxLen archived ones, newest first, as libsignal's
// SessionRecord (rust/protocol/src/state/session.rs). A message that the
// current state cannot decrypt is tried with each archived state; one that
// succeeds is promoted to current.
//
// The zero value is an empty record.
type SessionRecord struct {
	current  *sessionState
	previous []*sessionState
}

// HasCurrentState reports whether the record has a current session state
// with a sending chain, i.e. whether Encrypt can use it.
func (r *SessionRecord) HasCurrentState() bool {
	return r != nil && r.current != nil && r.current.sender != nil
}

// ArchiveCurrentState moves the current state to the archive, as for a
// session reset: the next Encrypt needs a new ProcessPreKeyBundle, while
// messages still in flight decrypt with the archived state.
func (r *SessionRecord) ArchiveCurrentState() {
	if r.current == nil {
		return
	}
	s := r.current
	r.current = nil
	s.pending = nil
	r.previous = append([]*sessionState{s}, r.previous...)
	if len(r.previous) > ArchivedStatesMaxLen {
		r.previous = r.previous[:ArchivedStatesMaxLen]
	}
}

// promoteState makes s current and archives the old current state
// (SessionRecord::promote_state).
func (r *SessionRecord) promoteState(s *sessionState) {
	r.ArchiveCurrentState()
	r.current = s
}

// promoteMatchingSession makes the state created by the PreKeySignalMessage
// with this base key current, if there is one, and reports whether there was
// (SessionRecord::promote_matching_session).
func (r *SessionRecord) promoteMatchingSession(version uint32, baseKey PublicKey) bool {
	if c := r.current; c != nil && c.version == version && c.aliceBaseKey.Equal(baseKey) {
		return true
	}
	for i, p := range r.previous {
		if p.version == version && p.aliceBaseKey.Equal(baseKey) {
			r.previous = append(r.previous[:i], r.previous[i+1:]...)
			r.promoteState(p)
			return true
		}
	}
	return false
}

// RemoteRegistrationID returns the peer's registration id from the current
// state, and false if there is none.
func (r *SessionRecord) RemoteRegistrationID() (uint32, bool) {
	if r == nil || r.current == nil {
		return 0, false
	}
	return r.current.remoteRegID, true
}

// RemoteIdentity returns the peer's identity key from the current state.
func (r *SessionRecord) RemoteIdentity() (PublicKey, bool) {
	if r == nil || r.current == nil {
		return PublicKey{}, false
	}
	return r.current.remoteIdentity, true
}

// ArchivedStates returns how many archived states the record holds.
func (r *SessionRecord) ArchivedStates() int { return len(r.previous) }

// Clone returns a deep copy of r.
func (r *SessionRecord) Clone() *SessionRecord {
	c := &SessionRecord{}
	if r.current != nil {
		c.current = r.current.clone()
	}
	for _, p := range r.previous {
		c.previous = append(c.previous, p.clone())
	}
	return c
}

// Storage encoding. The layout is libsignal's RecordStructure and
// SessionStructure (rust/protocol/src/proto/storage.proto) with the same
// field numbers, plus Parley's field spqrField, written with protowire by
// hand (doc.go says why). libsignal's pq_ratchet_state (15) is never written.
const (
	recordCurrent  = 1 // SessionStructure
	recordPrevious = 2 // repeated bytes (SessionStructure)

	ssVersion         = 1
	ssLocalIdentity   = 2
	ssRemoteIdentity  = 3
	ssRootKey         = 4
	ssPreviousCounter = 5
	ssSenderChain     = 6
	ssReceiverChains  = 7
	ssPendingPreKey   = 9
	ssRemoteRegID     = 10
	ssLocalRegID      = 11
	ssAliceBaseKey    = 13
	ssPendingKyber    = 14
	spqrField         = 101 // Parley: {1 send chain, 2 receive chain}, each spqrChainFields

	// SPQR epoch-0 chain half: libsignal's pq_ratchet.Chain.Epoch.Direction.
	spqrCtr  = 1
	spqrNext = 2
	spqrPrev = 3 // (BE32 index || 32-byte key)*

	chainRatchetKey  = 1
	chainRatchetPriv = 2
	chainChainKey    = 3 // {1 index, 2 key}
	chainMessageKeys = 4 // repeated {1 index, 5 seed}

	// PendingPreKey
	ppPreKeyID       = 1
	ppBaseKey        = 2
	ppSignedPreKeyID = 3
	ppTimestamp      = 4
	// PendingKyberPreKey
	pkPreKeyID  = 1
	pkCiphertxt = 2
)

// MarshalBinary encodes the record for a SessionStore.
func (r *SessionRecord) MarshalBinary() ([]byte, error) {
	var b []byte
	if r.current != nil {
		b = protowire.AppendTag(b, recordCurrent, protowire.BytesType)
		b = protowire.AppendBytes(b, r.current.marshal())
	}
	for _, p := range r.previous {
		b = protowire.AppendTag(b, recordPrevious, protowire.BytesType)
		b = protowire.AppendBytes(b, p.marshal())
	}
	return b, nil
}

// UnmarshalSessionRecord decodes SessionRecord.MarshalBinary's encoding.
// Errors wrap ErrInvalidRecord.
func UnmarshalSessionRecord(b []byte) (*SessionRecord, error) {
	r := &SessionRecord{}
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error {
		switch num {
		case recordCurrent, recordPrevious:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			s, err := unmarshalSessionState(data)
			if err != nil {
				return err
			}
			if num == recordCurrent {
				r.current = s
			} else if len(r.previous) < ArchivedStatesMaxLen {
				r.previous = append(r.previous, s)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("unmarshal session record: %w: %v", ErrInvalidRecord, err)
	}
	return r, nil
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendChainKey(b []byte, num protowire.Number, ck chainKey) []byte {
	var m []byte
	m = appendVarintField(m, 1, uint64(ck.index))
	m = appendBytesField(m, 2, ck.key[:])
	return appendBytesField(b, num, m)
}

func (s *sessionState) marshal() []byte {
	b := make([]byte, 0, 512)
	b = appendVarintField(b, ssVersion, uint64(s.version))
	b = appendBytesField(b, ssLocalIdentity, s.localIdentity.Bytes())
	b = appendBytesField(b, ssRemoteIdentity, s.remoteIdentity.Bytes())
	b = appendBytesField(b, ssRootKey, s.rootKey[:])
	b = appendVarintField(b, ssPreviousCounter, uint64(s.previousCounter))
	if s.sender != nil {
		var c []byte
		c = appendBytesField(c, chainRatchetKey, s.sender.ratchet.Public.Bytes())
		c = appendBytesField(c, chainRatchetPriv, s.sender.ratchet.Private.k[:])
		c = appendChainKey(c, chainChainKey, s.sender.chain)
		b = appendBytesField(b, ssSenderChain, c)
	}
	for _, r := range s.receivers {
		c := make([]byte, 0, 64+len(r.skipped)*44)
		c = appendBytesField(c, chainRatchetKey, r.ratchetKey.Bytes())
		c = appendChainKey(c, chainChainKey, r.chain)
		// libsignal keeps the newest skipped key first.
		for i := len(r.skipped) - 1; i >= 0; i-- {
			var mk []byte
			mk = appendVarintField(mk, 1, uint64(r.skipped[i].index))
			mk = appendBytesField(mk, 5, r.skipped[i].seed[:])
			c = appendBytesField(c, chainMessageKeys, mk)
		}
		b = appendBytesField(b, ssReceiverChains, c)
	}
	if p := s.pending; p != nil {
		var m []byte
		if p.hasPreKeyID {
			m = appendVarintField(m, ppPreKeyID, uint64(p.preKeyID))
		}
		m = appendBytesField(m, ppBaseKey, p.baseKey.Bytes())
		m = appendVarintField(m, ppSignedPreKeyID, uint64(int64(int32(p.signedPreKeyID))))
		m = appendVarintField(m, ppTimestamp, p.timestamp)
		b = appendBytesField(b, ssPendingPreKey, m)
		var k []byte
		k = appendVarintField(k, pkPreKeyID, uint64(p.kyberPreKeyID))
		k = appendBytesField(k, pkCiphertxt, p.kyberCiphertext)
		b = appendBytesField(b, ssPendingKyber, k)
	}
	b = appendVarintField(b, ssRemoteRegID, uint64(s.remoteRegID))
	b = appendVarintField(b, ssLocalRegID, uint64(s.localRegID))
	b = appendBytesField(b, ssAliceBaseKey, s.aliceBaseKey.Bytes())
	if q := s.spqr; q != nil {
		var m []byte
		m = appendBytesField(m, 1, q.send.marshal())
		m = appendBytesField(m, 2, q.recv.marshal())
		b = appendBytesField(b, spqrField, m)
	}
	return b
}

func decodeKey32(dst *[32]byte, data []byte, what string) error {
	if len(data) != 32 {
		return fmt.Errorf("%s: %d bytes", what, len(data))
	}
	copy(dst[:], data)
	return nil
}

func unmarshalChainKey(data []byte) (chainKey, error) {
	var ck chainKey
	var haveKey bool
	err := protoFields(data, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
		switch num {
		case 1:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			ck.index = uint32(v)
		case 2:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			haveKey = true
			return decodeKey32(&ck.key, d, "chain key")
		}
		return nil
	})
	if err == nil && !haveKey {
		err = fmt.Errorf("chain key missing")
	}
	return ck, err
}

// chainFields is a decoded SessionStructure.Chain.
type chainFields struct {
	ratchetKey  PublicKey
	priv        []byte
	chain       chainKey
	haveChain   bool
	skippedNewF []skippedKey // newest first, as stored
}

func unmarshalChain(data []byte) (chainFields, error) {
	var c chainFields
	err := protoFields(data, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
		if num < 1 || num > 4 {
			return nil
		}
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		var err error
		switch num {
		case chainRatchetKey:
			c.ratchetKey, err = DecodePublicKey(d)
		case chainRatchetPriv:
			c.priv = d
		case chainChainKey:
			c.chain, err = unmarshalChainKey(d)
			c.haveChain = true
		case chainMessageKeys:
			var k skippedKey
			var haveSeed bool
			err = protoFields(d, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
				switch num {
				case 1:
					if err := wantType(num, typ, protowire.VarintType); err != nil {
						return err
					}
					k.index = uint32(v)
				case 5:
					if err := wantType(num, typ, protowire.BytesType); err != nil {
						return err
					}
					haveSeed = true
					return decodeKey32(&k.seed, d, "message key seed")
				}
				return nil
			})
			if err == nil && !haveSeed {
				err = fmt.Errorf("message key without seed")
			}
			if err == nil && len(c.skippedNewF) < MaxMessageKeys {
				c.skippedNewF = append(c.skippedNewF, k)
			}
		}
		return err
	})
	return c, err
}

func unmarshalSessionState(data []byte) (*sessionState, error) {
	s := &sessionState{}
	var haveRoot, haveLocal, haveRemote bool
	var pending *pendingPreKey
	var kyberID uint32
	var kyberCT []byte
	var haveKyber bool
	err := protoFields(data, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
		want := protowire.BytesType
		switch num {
		case ssVersion, ssPreviousCounter, ssRemoteRegID, ssLocalRegID:
			want = protowire.VarintType
		case ssLocalIdentity, ssRemoteIdentity, ssRootKey, ssSenderChain, ssReceiverChains,
			ssPendingPreKey, ssAliceBaseKey, ssPendingKyber, spqrField:
		default:
			return nil
		}
		if err := wantType(num, typ, want); err != nil {
			return err
		}
		var err error
		switch num {
		case ssVersion:
			s.version = uint32(v)
		case ssLocalIdentity:
			s.localIdentity, err = DecodePublicKey(d)
			haveLocal = true
		case ssRemoteIdentity:
			s.remoteIdentity, err = DecodePublicKey(d)
			haveRemote = true
		case ssRootKey:
			err = decodeKey32(&s.rootKey, d, "root key")
			haveRoot = true
		case ssPreviousCounter:
			s.previousCounter = uint32(v)
		case ssSenderChain:
			var c chainFields
			if c, err = unmarshalChain(d); err != nil {
				return err
			}
			if !c.haveChain {
				return fmt.Errorf("sender chain without chain key")
			}
			var priv PrivateKey
			if priv, err = DecodePrivateKey(c.priv); err != nil {
				return err
			}
			s.sender = &senderChain{ratchet: KeyPair{Public: c.ratchetKey, Private: priv}, chain: c.chain}
		case ssReceiverChains:
			var c chainFields
			if c, err = unmarshalChain(d); err != nil {
				return err
			}
			if !c.haveChain || c.ratchetKey.IsZero() {
				return fmt.Errorf("receiver chain without key")
			}
			r := &receiverChain{ratchetKey: c.ratchetKey, chain: c.chain}
			for i := len(c.skippedNewF) - 1; i >= 0; i-- {
				r.skipped = append(r.skipped, c.skippedNewF[i])
			}
			if len(s.receivers) < MaxReceiverChains {
				s.receivers = append(s.receivers, r)
			}
		case ssPendingPreKey:
			pending = &pendingPreKey{}
			err = protoFields(d, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
				switch num {
				case ppPreKeyID:
					pending.hasPreKeyID, pending.preKeyID = true, uint32(v)
				case ppSignedPreKeyID:
					pending.signedPreKeyID = uint32(v)
				case ppTimestamp:
					pending.timestamp = v
				case ppBaseKey:
					if typ != protowire.BytesType {
						return fmt.Errorf("pending base key type")
					}
					k, err := DecodePublicKey(d)
					pending.baseKey = k
					return err
				}
				return nil
			})
		case ssPendingKyber:
			haveKyber = true
			err = protoFields(d, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
				switch num {
				case pkPreKeyID:
					kyberID = uint32(v)
				case pkCiphertxt:
					kyberCT = append([]byte(nil), d...)
				}
				return nil
			})
		case ssRemoteRegID:
			s.remoteRegID = uint32(v)
		case ssLocalRegID:
			s.localRegID = uint32(v)
		case ssAliceBaseKey:
			s.aliceBaseKey, err = DecodePublicKey(d)
		case spqrField:
			q := &spqrState{}
			var haveSend, haveRecv bool
			err = protoFields(d, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
				switch num {
				case 1:
					haveSend = true
					return q.send.unmarshal(d)
				case 2:
					haveRecv = true
					return q.recv.unmarshal(d)
				}
				return nil
			})
			if err == nil && (!haveSend || !haveRecv) {
				err = fmt.Errorf("spqr state misses a chain")
			}
			s.spqr = q
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !haveRoot || !haveLocal || !haveRemote {
		return nil, fmt.Errorf("session state misses a root key or an identity")
	}
	if s.version != MessageVersion {
		return nil, fmt.Errorf("session version %d", s.version)
	}
	if pending != nil {
		if !haveKyber || len(kyberCT) != KyberCiphertextSize {
			return nil, fmt.Errorf("pending prekey without kyber ciphertext")
		}
		pending.kyberPreKeyID, pending.kyberCiphertext = kyberID, kyberCT
		s.pending = pending
	}
	return s, nil
}

func (c *spqrChain) marshal() []byte {
	m := make([]byte, 0, 48+len(c.prev)*36)
	m = appendVarintField(m, spqrCtr, uint64(c.ctr))
	m = appendBytesField(m, spqrNext, c.next[:])
	prev := make([]byte, 0, len(c.prev)*36)
	for _, k := range c.prev {
		prev = binary.BigEndian.AppendUint32(prev, k.index)
		prev = append(prev, k.key[:]...)
	}
	return appendBytesField(m, spqrPrev, prev)
}

func (c *spqrChain) unmarshal(data []byte) error {
	var haveNext bool
	err := protoFields(data, func(num protowire.Number, typ protowire.Type, v uint64, d []byte) error {
		switch num {
		case spqrCtr:
			c.ctr = uint32(v)
		case spqrNext:
			haveNext = true
			return decodeKey32(&c.next, d, "spqr chain")
		case spqrPrev:
			if len(d)%36 != 0 || len(d)/36 > spqrMaxOOOKeys {
				return fmt.Errorf("spqr keys: %d bytes", len(d))
			}
			c.prev = c.prev[:0]
			for ; len(d) > 0; d = d[36:] {
				k := spqrKey{index: binary.BigEndian.Uint32(d)}
				copy(k.key[:], d[4:36])
				c.prev = append(c.prev, k)
			}
		}
		return nil
	})
	if err == nil && !haveNext {
		err = fmt.Errorf("spqr chain without key")
	}
	return err
}
