package signal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley"
)

// The session cipher: libsignal's rust/protocol/src/session.rs
// (process_prekey_bundle, process_prekey) and session_management.rs
// (message_encrypt, message_decrypt_prekey, message_decrypt_signal). Each
// call loads the session, works on a copy, and stores it only when the
// whole operation has succeeded.

// ProcessPreKeyBundle starts a session with remote from its prekey bundle
// (https://signal.org/docs/specifications/pqxdh/#sending-the-initial-message):
// it checks that the identity is trusted for sending, verifies both prekey
// signatures, runs PQXDH and stores a new current session state whose
// messages are PreKeySignalMessages until remote answers. An existing state
// is archived.
func ProcessPreKeyBundle(ctx context.Context, s Store, remote parley.Address, b *PreKeyBundle, now time.Time) error {
	if b == nil {
		return fmt.Errorf("process prekey bundle: nil bundle: %w", ErrInvalidKey)
	}
	trusted, err := s.IsTrustedIdentity(ctx, remote, b.IdentityKey, Sending)
	if err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}
	if !trusted {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, ErrUntrustedIdentity)
	}
	if !b.IdentityKey.VerifySignature(b.SignedPreKey.Bytes(), b.SignedPreKeySignature) {
		return fmt.Errorf("process prekey bundle for %s: signed prekey: %w", remote, ErrInvalidSignature)
	}
	if b.KyberPreKey.IsZero() {
		return fmt.Errorf("process prekey bundle for %s: no kyber prekey: %w", remote, ErrInvalidKey)
	}
	if !b.IdentityKey.VerifySignature(b.KyberPreKey.Bytes(), b.KyberPreKeySignature) {
		return fmt.Errorf("process prekey bundle for %s: kyber prekey: %w", remote, ErrInvalidSignature)
	}

	rec, err := s.LoadSession(ctx, remote)
	if err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}
	if rec == nil {
		rec = &SessionRecord{}
	} else {
		rec = rec.Clone()
	}
	identity, err := s.IdentityKeyPair(ctx)
	if err != nil {
		return fmt.Errorf("process prekey bundle: %w", err)
	}
	localRegID, err := s.LocalRegistrationID(ctx)
	if err != nil {
		return fmt.Errorf("process prekey bundle: %w", err)
	}

	base, err := GenerateKeyPair()
	if err != nil {
		return err
	}
	keys, kyberCT, err := pqxdhInitiate(identity, base, b)
	if err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}

	// libsignal's initialize_alice_session: the bundle's signed prekey is
	// the peer's first ratchet key; our first sending chain is one DH
	// ratchet step away, and the PQXDH chain key is the peer's first
	// sending chain.
	sending, err := GenerateKeyPair()
	if err != nil {
		return err
	}
	root, sendCK, err := kdfRK(keys.root, sending.Private, b.SignedPreKey)
	if err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}
	st := &sessionState{
		version:        MessageVersion,
		localIdentity:  identity.Public,
		remoteIdentity: b.IdentityKey,
		rootKey:        root,
		sender:         &senderChain{ratchet: sending, chain: sendCK},
		pending: &pendingPreKey{
			hasPreKeyID:     b.HasPreKey,
			preKeyID:        b.PreKeyID,
			signedPreKeyID:  b.SignedPreKeyID,
			baseKey:         base.Public,
			timestamp:       uint64(max(now.Unix(), 0)),
			kyberPreKeyID:   b.KyberPreKeyID,
			kyberCiphertext: kyberCT,
		},
		remoteRegID:  b.RegistrationID,
		localRegID:   localRegID,
		aliceBaseKey: base.Public,
		spqr:         newSPQRState(keys.pqr[:], true),
	}
	st.addReceiverChain(b.SignedPreKey, keys.chain)

	if _, err := s.SaveIdentity(ctx, remote, b.IdentityKey); err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}
	rec.promoteState(st)
	if err := s.StoreSession(ctx, remote, rec); err != nil {
		return fmt.Errorf("process prekey bundle for %s: %w", remote, err)
	}
	return nil
}

// Encrypt encrypts plaintext for remote with the current session
// (https://signal.org/docs/specifications/doubleratchet/#encrypting-messages).
// Until remote has answered, the result is a PreKeySignalMessage
// (parley.EnvelopePreKey), afterwards a SignalMessage. A session whose
// PreKeySignalMessages went unanswered for MaxUnacknowledgedSessionAge is
// not used (ErrNoSession), as libsignal.
func Encrypt(ctx context.Context, s Store, remote parley.Address, plaintext []byte, now time.Time) (CiphertextMessage, error) {
	rec, err := s.LoadSession(ctx, remote)
	if err != nil {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, err)
	}
	if !rec.HasCurrentState() {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, ErrNoSession)
	}
	rec = rec.Clone()
	st := rec.current
	if p := st.pending; p != nil && p.timestamp+MaxUnacknowledgedSessionAge < uint64(max(now.Unix(), 0)) {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: unacknowledged session is stale: %w", remote, ErrNoSession)
	}
	inner, err := st.encrypt(plaintext)
	if err != nil {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, err)
	}
	out := CiphertextMessage{Type: parley.EnvelopeSignal, Serialized: inner}
	if p := st.pending; p != nil {
		out.Type = parley.EnvelopePreKey
		out.Serialized = encodePreKeySignalMessage(&preKeySignalMessage{
			registrationID:  st.localRegID,
			hasPreKeyID:     p.hasPreKeyID,
			preKeyID:        p.preKeyID,
			signedPreKeyID:  p.signedPreKeyID,
			kyberPreKeyID:   p.kyberPreKeyID,
			kyberCiphertext: p.kyberCiphertext,
			baseKey:         p.baseKey,
			identityKey:     st.localIdentity,
		}, inner)
	}
	trusted, err := s.IsTrustedIdentity(ctx, remote, st.remoteIdentity, Sending)
	if err != nil {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, err)
	}
	if !trusted {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, ErrUntrustedIdentity)
	}
	if _, err := s.SaveIdentity(ctx, remote, st.remoteIdentity); err != nil {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, err)
	}
	if err := s.StoreSession(ctx, remote, rec); err != nil {
		return CiphertextMessage{}, fmt.Errorf("encrypt for %s: %w", remote, err)
	}
	return out, nil
}

// DecryptPreKey decrypts a PreKeySignalMessage from remote
// (https://signal.org/docs/specifications/pqxdh/#receiving-the-initial-message),
// creating the session it starts, or using the one an earlier copy of the
// message created. It uses up the one-time prekey and (unless last resort)
// the Kyber prekey it names.
func DecryptPreKey(ctx context.Context, s Store, remote parley.Address, msg []byte) ([]byte, error) {
	m, err := decodePreKeySignalMessage(msg)
	if err != nil {
		return nil, err
	}
	rec, err := s.LoadSession(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	if rec == nil {
		rec = &SessionRecord{}
	} else {
		rec = rec.Clone()
	}
	trusted, err := s.IsTrustedIdentity(ctx, remote, m.identityKey, Receiving)
	if err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	if !trusted {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, ErrUntrustedIdentity)
	}
	used, err := processPreKey(ctx, s, rec, m)
	if err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	pt, err := decryptFromRecord(rec, m.message, true)
	if err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	if _, err := s.SaveIdentity(ctx, remote, m.identityKey); err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	if used {
		if err := s.MarkKyberPreKeyUsed(ctx, m.kyberPreKeyID); err != nil {
			return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
		}
		if m.hasPreKeyID {
			if err := s.RemovePreKey(ctx, m.preKeyID); err != nil {
				return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
			}
		}
	}
	if err := s.StoreSession(ctx, remote, rec); err != nil {
		return nil, fmt.Errorf("decrypt prekey message from %s: %w", remote, err)
	}
	return pt, nil
}

// processPreKey makes the session state for m current, creating it with
// PQXDH unless a state with m's base key exists; used reports whether
// prekeys were consumed (libsignal's process_prekey_impl).
func processPreKey(ctx context.Context, s Store, rec *SessionRecord, m *preKeySignalMessage) (used bool, err error) {
	if rec.promoteMatchingSession(uint32(m.version), m.baseKey) {
		return false, nil
	}
	spk, err := s.LoadSignedPreKey(ctx, m.signedPreKeyID)
	if err != nil {
		return false, fmt.Errorf("signed prekey %d: %w", m.signedPreKeyID, noPreKey(err))
	}
	kpk, err := s.LoadKyberPreKey(ctx, m.kyberPreKeyID)
	if err != nil {
		return false, fmt.Errorf("kyber prekey %d: %w", m.kyberPreKeyID, noPreKey(err))
	}
	var oneTime *KeyPair
	if m.hasPreKeyID {
		pk, err := s.LoadPreKey(ctx, m.preKeyID)
		if err != nil {
			return false, fmt.Errorf("prekey %d: %w", m.preKeyID, noPreKey(err))
		}
		oneTime = &pk.Key
	}
	identity, err := s.IdentityKeyPair(ctx)
	if err != nil {
		return false, err
	}
	localRegID, err := s.LocalRegistrationID(ctx)
	if err != nil {
		return false, err
	}
	keys, err := pqxdhAccept(identity, spk.Key, oneTime, kpk.Key.Private, m.identityKey, m.baseKey, m.kyberCiphertext)
	if err != nil {
		return false, err
	}
	// libsignal's initialize_bob_session: our signed prekey is our first
	// ratchet key and the PQXDH chain key our first sending chain.
	st := &sessionState{
		version:        MessageVersion,
		localIdentity:  identity.Public,
		remoteIdentity: m.identityKey,
		rootKey:        keys.root,
		sender:         &senderChain{ratchet: spk.Key, chain: keys.chain},
		remoteRegID:    m.registrationID,
		localRegID:     localRegID,
		aliceBaseKey:   m.baseKey,
		spqr:           newSPQRState(keys.pqr[:], false),
	}
	rec.promoteState(st)
	return true, nil
}

// noPreKey makes a store's "not found" an ErrNoPreKey unless it already is.
func noPreKey(err error) error {
	if errors.Is(err, ErrNoPreKey) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrNoPreKey, err)
}

// Decrypt decrypts a SignalMessage from remote with the current session
// state or, failing that, an archived one, which then becomes current
// (https://signal.org/docs/specifications/doubleratchet/#decrypting-messages).
func Decrypt(ctx context.Context, s Store, remote parley.Address, msg []byte) ([]byte, error) {
	m, err := decodeSignalMessage(msg)
	if err != nil {
		return nil, err
	}
	rec, err := s.LoadSession(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, err)
	}
	if rec == nil || (rec.current == nil && len(rec.previous) == 0) {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, ErrNoSession)
	}
	rec = rec.Clone()
	pt, err := decryptFromRecord(rec, m, false)
	if err != nil {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, err)
	}
	remoteIdentity := rec.current.remoteIdentity
	trusted, err := s.IsTrustedIdentity(ctx, remote, remoteIdentity, Receiving)
	if err != nil {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, err)
	}
	if !trusted {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, ErrUntrustedIdentity)
	}
	if _, err := s.SaveIdentity(ctx, remote, remoteIdentity); err != nil {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, err)
	}
	if err := s.StoreSession(ctx, remote, rec); err != nil {
		return nil, fmt.Errorf("decrypt from %s: %w", remote, err)
	}
	return pt, nil
}

// decryptFromRecord tries the current state, then (for SignalMessages only)
// each archived state, promoting the one that works
// (libsignal's try_decrypt_from_record). A duplicate stops the search.
func decryptFromRecord(rec *SessionRecord, m *signalMessage, preKey bool) ([]byte, error) {
	var firstErr error
	if rec.current != nil {
		st := rec.current.clone()
		pt, err := st.decrypt(m, MaxForwardJumps)
		if err == nil {
			rec.current = st
			return pt, nil
		}
		if errors.Is(err, ErrDuplicateMessage) || errors.Is(err, ErrTooFarInFuture) && len(rec.previous) == 0 || preKey {
			return nil, err
		}
		firstErr = err
	}
	for i, p := range rec.previous {
		st := p.clone()
		pt, err := st.decrypt(m, MaxForwardJumps)
		if err == nil {
			rec.previous = append(rec.previous[:i], rec.previous[i+1:]...)
			rec.promoteState(st)
			return pt, nil
		}
		if errors.Is(err, ErrDuplicateMessage) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		return nil, ErrNoSession
	}
	if errors.Is(firstErr, ErrTooFarInFuture) {
		return nil, firstErr
	}
	return nil, fmt.Errorf("no session state decrypts the message: %w (first failure: %v)", ErrInvalidMessage, firstErr)
}
