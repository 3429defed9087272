package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/signal"
	"github.com/parleychat/parley/wire"
)

// PreKeyBatch is how many one-time prekeys of each kind are made at
// registration and at each top-up.
const PreKeyBatch = parley.MaxPreKeysPerUpload

// topUpBelow is the count of one-time prekeys on the server under which the
// client uploads a new batch.
const topUpBelow = 2 * wire.LowKeyThreshold

// maxRegistrationID is libsignal's largest registration id.
const maxRegistrationID = 16380

// Register creates the account user on server, with this device as its
// first device: it makes the identity key, the device key and the prekeys,
// stores them, and registers them on the server. If an earlier Register for
// the same user and server did not finish, its keys are reused.
func (c *Client) Register(ctx context.Context, server, username string) error {
	user, err := parley.ParseUserID(username)
	if err != nil {
		return err
	}
	if server, err = NormalizeServer(server); err != nil {
		return err
	}
	c.mu.Lock()
	old := c.acct
	c.mu.Unlock()
	if old.Registered() {
		return parley.Errorf(parley.KindConflict, "this device is already registered as %s on %s", old.User, old.Server)
	}
	var keys *wire.UploadKeys
	if old != nil && old.User == user && old.Server == server {
		keys, err = c.storedRegistrationKeys(ctx, old)
	} else {
		keys, err = c.newAccount(ctx, server, user)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	a := *c.acct
	id, dk := c.identity, c.devKey
	c.mu.Unlock()

	conn, hello, err := c.dial(ctx, a.Server)
	if err != nil {
		return err
	}
	defer conn.Close()
	sig, err := dk.Private.Sign(wire.AuthPayload(hello.Challenge, string(user), 0))
	if err != nil {
		return fmt.Errorf("register: sign: %w", err)
	}
	req := &wire.Register{
		Version:        wire.ProtocolVersion,
		Username:       string(user),
		DeviceKey:      dk.Public.Bytes(),
		Signature:      sig,
		IdentityKey:    id.Public.Bytes(),
		RegistrationID: a.RegistrationID,
		Keys:           *keys,
	}
	sess, err := handshake(ctx, conn, wire.OpRegister, req)
	if parley.ErrorKind(err) == parley.KindConflict && old != nil && old.User == user {
		// An earlier attempt may have registered and crashed before it
		// stored the answer: if the server knows our device key, it did.
		if s, lerr := c.loginOnce(ctx, a.Server, user, parley.PrimaryDevice, dk); lerr == nil {
			sess, err = s, nil
		}
	}
	if err != nil {
		return err
	}
	a.Device = sess.Device
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	if err := c.st.Apply(ctx, &Batch{Account: &a}); err != nil {
		return err
	}
	return c.setAccount(&a)
}

// newAccount makes and stores the keys of a new account, and returns what to
// upload.
func (c *Client) newAccount(ctx context.Context, server string, user parley.UserID) (*wire.UploadKeys, error) {
	id, err := signal.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	dk, err := signal.GenerateKeyPair()
	if err != nil {
		return nil, err
	}
	idb, err := marshalKeyPair(id)
	if err != nil {
		return nil, err
	}
	dkb, err := marshalKeyPair(dk)
	if err != nil {
		return nil, err
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	a := &Account{
		Server:             server,
		User:               user,
		RegistrationID:     1 + binary.BigEndian.Uint32(r[:])%maxRegistrationID,
		IdentityKey:        idb,
		DeviceKey:          dkb,
		NextPreKeyID:       1,
		NextKyberPreKeyID:  1,
		NextSignedPreKeyID: 1,
		SignedPreKeyID:     1,
		LastResortKyberID:  1,
		RotatedAt:          c.now(),
		Created:            c.now(),
	}
	b := &Batch{Account: a}
	keys := &wire.UploadKeys{}
	now := c.now()
	spk, err := signal.GenerateSignedPreKey(id, a.NextSignedPreKeyID, now)
	if err != nil {
		return nil, err
	}
	a.NextSignedPreKeyID++
	if err := addSignedPreKey(b, keys, spk); err != nil {
		return nil, err
	}
	lr, err := signal.GenerateKyberPreKey(id, a.NextKyberPreKeyID, now, true)
	if err != nil {
		return nil, err
	}
	a.NextKyberPreKeyID++
	if err := addKyberPreKey(b, keys, lr); err != nil {
		return nil, err
	}
	if err := c.makePreKeys(a, id, b, keys); err != nil {
		return nil, err
	}
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	if err := c.st.Apply(ctx, b); err != nil {
		return nil, err
	}
	return keys, c.setAccount(a)
}

// makePreKeys makes PreKeyBatch one-time prekeys of each kind, adding the
// records to b and the public halves to keys, and advancing a's id counters.
func (c *Client) makePreKeys(a *Account, id signal.KeyPair, b *Batch, keys *wire.UploadKeys) error {
	now := c.now()
	for i := 0; i < PreKeyBatch; i++ {
		kp, err := signal.GenerateKeyPair()
		if err != nil {
			return err
		}
		r := signal.PreKeyRecord{ID: a.NextPreKeyID, Key: kp}
		a.NextPreKeyID++
		v, err := marshalPreKey(r)
		if err != nil {
			return err
		}
		b.Records = append(b.Records, Record{Kind: RecordPreKey, Key: idKey(r.ID), Value: v})
		keys.PreKeys = append(keys.PreKeys, wire.PreKey{ID: r.ID, Key: kp.Public.Bytes()})

		kr, err := signal.GenerateKyberPreKey(id, a.NextKyberPreKeyID, now, false)
		if err != nil {
			return err
		}
		a.NextKyberPreKeyID++
		if err := addKyberPreKey(b, keys, kr); err != nil {
			return err
		}
	}
	b.Account = a
	return nil
}

func addSignedPreKey(b *Batch, keys *wire.UploadKeys, r signal.SignedPreKeyRecord) error {
	v, err := marshalSignedPreKey(r)
	if err != nil {
		return err
	}
	b.Records = append(b.Records, Record{Kind: RecordSignedPreKey, Key: idKey(r.ID), Value: v})
	keys.SignedPreKey = &wire.SignedPreKey{ID: r.ID, Key: r.Key.Public.Bytes(), Signature: r.Signature}
	return nil
}

func addKyberPreKey(b *Batch, keys *wire.UploadKeys, r signal.KyberPreKeyRecord) error {
	v, err := marshalKyberPreKey(r)
	if err != nil {
		return err
	}
	b.Records = append(b.Records, Record{Kind: RecordKyberPreKey, Key: idKey(r.ID), Value: v})
	k := wire.KyberPreKey{ID: r.ID, Key: r.Key.Public.Bytes(), Signature: r.Signature}
	if r.LastResort {
		keys.LastResortKyber = &k
	} else {
		keys.KyberPreKeys = append(keys.KyberPreKeys, k)
	}
	return nil
}

// storedRegistrationKeys rebuilds the upload of an unfinished registration
// from the Store: the first signed prekey, the first (last-resort) Kyber
// prekey and the first batch of one-time prekeys.
func (c *Client) storedRegistrationKeys(ctx context.Context, a *Account) (*wire.UploadKeys, error) {
	keys := &wire.UploadKeys{}
	b, err := c.st.Record(ctx, RecordSignedPreKey, idKey(a.SignedPreKeyID))
	if err != nil || b == nil {
		return nil, fmt.Errorf("unfinished registration: signed prekey: %v", err)
	}
	spk, err := unmarshalSignedPreKey(b)
	if err != nil {
		return nil, err
	}
	keys.SignedPreKey = &wire.SignedPreKey{ID: spk.ID, Key: spk.Key.Public.Bytes(), Signature: spk.Signature}
	for i := uint32(1); i < a.NextKyberPreKeyID && i <= PreKeyBatch+1; i++ {
		b, err := c.st.Record(ctx, RecordKyberPreKey, idKey(i))
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		r, err := unmarshalKyberPreKey(b)
		if err != nil {
			return nil, err
		}
		k := wire.KyberPreKey{ID: r.ID, Key: r.Key.Public.Bytes(), Signature: r.Signature}
		if r.LastResort {
			keys.LastResortKyber = &k
		} else {
			keys.KyberPreKeys = append(keys.KyberPreKeys, k)
		}
	}
	for i := uint32(1); i < a.NextPreKeyID && i <= PreKeyBatch; i++ {
		b, err := c.st.Record(ctx, RecordPreKey, idKey(i))
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		r, err := unmarshalPreKey(b)
		if err != nil {
			return nil, err
		}
		keys.PreKeys = append(keys.PreKeys, wire.PreKey{ID: r.ID, Key: r.Key.Public.Bytes()})
	}
	return keys, nil
}

// topUp uploads a new batch of one-time prekeys if the server has fewer than
// topUpBelow of either kind.
func (c *Client) topUp(ctx context.Context, s *session, counts wire.KeyCounts) error {
	if counts.PreKeys >= topUpBelow && counts.KyberPreKeys >= topUpBelow {
		return nil
	}
	c.protoMu.Lock()
	a, id, err := c.account()
	b := &Batch{}
	keys := &wire.UploadKeys{}
	if err == nil {
		err = c.makePreKeys(&a, id, b, keys)
	}
	if err := c.storeAndUpload(ctx, s, err, a, b, keys, "upload prekeys"); err != nil {
		return err
	}
	c.log.Info("uploaded prekeys", "prekeys", len(keys.PreKeys), "kyber", len(keys.KyberPreKeys))
	return nil
}

// storeAndUpload ends a key change begun under protoMu: unless err (the
// change's own error) is set, it applies b, makes a the account and
// releases protoMu, then uploads keys (an upload failure is wrapped with
// what). The keys are stored before the server hears of them, so a key the
// server hands out is always one this device can use.
func (c *Client) storeAndUpload(ctx context.Context, s *session, err error, a Account, b *Batch, keys *wire.UploadKeys, what string) error {
	if err == nil {
		err = c.st.Apply(ctx, b)
	}
	if err == nil {
		c.setAcct(a)
	}
	c.protoMu.Unlock()
	if err != nil {
		return err
	}
	if _, err := s.request(ctx, wire.OpUploadKeys, keys); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// loginOnce connects, logs in as device and disconnects.
func (c *Client) loginOnce(ctx context.Context, server string, user parley.UserID, device parley.DeviceID, dk signal.KeyPair) (*wire.Session, error) {
	conn, hello, err := c.dial(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	sig, err := dk.Private.Sign(wire.AuthPayload(hello.Challenge, string(user), device))
	if err != nil {
		return nil, err
	}
	return handshake(ctx, conn, wire.OpLogin, &wire.Login{Version: wire.ProtocolVersion, Username: string(user), Device: device, Signature: sig})
}

// KeyRotation is how often the signed prekey and the last-resort Kyber
// prekey are replaced. The old ones stay in the Store, so that messages
// that were started with them can still be read.
const KeyRotation = 7 * 24 * time.Hour

// rotateKeys replaces the signed and last-resort prekeys on the server if
// they are older than KeyRotation.
func (c *Client) rotateKeys(ctx context.Context, s *session) error {
	c.protoMu.Lock()
	a, id, err := c.account()
	now := c.now()
	if err != nil || now.Sub(a.RotatedAt) < KeyRotation {
		c.protoMu.Unlock()
		return err
	}
	b := &Batch{Account: &a}
	keys := &wire.UploadKeys{}
	spk, err := signal.GenerateSignedPreKey(id, a.NextSignedPreKeyID, now)
	if err == nil {
		a.NextSignedPreKeyID++
		err = addSignedPreKey(b, keys, spk)
	}
	var lr signal.KyberPreKeyRecord
	if err == nil {
		lr, err = signal.GenerateKyberPreKey(id, a.NextKyberPreKeyID, now, true)
	}
	if err == nil {
		a.NextKyberPreKeyID++
		err = addKyberPreKey(b, keys, lr)
	}
	if err := c.storeAndUpload(ctx, s, err, a, b, keys, "upload rotated prekeys"); err != nil {
		return err
	}
	// Only now are they the ones on the server.
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	c.mu.Lock()
	a = *c.acct
	c.mu.Unlock()
	a.SignedPreKeyID, a.LastResortKyberID, a.RotatedAt = spk.ID, lr.ID, now
	if err := c.st.Apply(ctx, &Batch{Account: &a}); err != nil {
		return err
	}
	c.setAcct(a)
	c.log.Info("rotated signed and last-resort prekeys", "signed", spk.ID, "kyber", lr.ID)
	return nil
}

func (c *Client) setAcct(a Account) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acct = &a
}
