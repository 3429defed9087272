package client

// Encodings of the Signal protocol records that the Store keeps as opaque
// bytes. Key pairs and session records use package signal's own encodings;
// the prekey records wrap them in a small JSON object (version 1).

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/parleychat/parley/signal"
)

type prekeyJSON struct {
	V          int    `json:"v"`
	ID         uint32 `json:"id"`
	Timestamp  int64  `json:"ts,omitempty"`   // Unix milliseconds
	Key        []byte `json:"key"`            // the key pair, in signal's encoding; a Kyber public key
	Private    []byte `json:"priv,omitempty"` // a Kyber private key
	Signature  []byte `json:"sig,omitempty"`
	LastResort bool   `json:"last_resort,omitempty"`
}

func marshalKeyPair(kp signal.KeyPair) ([]byte, error) { return kp.MarshalBinary() }

func unmarshalKeyPair(b []byte) (signal.KeyPair, error) { return signal.UnmarshalKeyPair(b) }

func marshalPreKey(r signal.PreKeyRecord) ([]byte, error) {
	k, err := r.Key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(prekeyJSON{V: 1, ID: r.ID, Key: k})
}

func unmarshalPreKey(b []byte) (signal.PreKeyRecord, error) {
	var j prekeyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return signal.PreKeyRecord{}, fmt.Errorf("prekey record: %w", err)
	}
	kp, err := signal.UnmarshalKeyPair(j.Key)
	if err != nil {
		return signal.PreKeyRecord{}, fmt.Errorf("prekey record %d: %w", j.ID, err)
	}
	return signal.PreKeyRecord{ID: j.ID, Key: kp}, nil
}

func marshalSignedPreKey(r signal.SignedPreKeyRecord) ([]byte, error) {
	k, err := r.Key.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(prekeyJSON{V: 1, ID: r.ID, Timestamp: r.Timestamp.UnixMilli(), Key: k, Signature: r.Signature})
}

func unmarshalSignedPreKey(b []byte) (signal.SignedPreKeyRecord, error) {
	var j prekeyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return signal.SignedPreKeyRecord{}, fmt.Errorf("signed prekey record: %w", err)
	}
	kp, err := signal.UnmarshalKeyPair(j.Key)
	if err != nil {
		return signal.SignedPreKeyRecord{}, fmt.Errorf("signed prekey record %d: %w", j.ID, err)
	}
	return signal.SignedPreKeyRecord{ID: j.ID, Timestamp: time.UnixMilli(j.Timestamp), Key: kp, Signature: j.Signature}, nil
}

func marshalKyberPreKey(r signal.KyberPreKeyRecord) ([]byte, error) {
	return json.Marshal(prekeyJSON{V: 1, ID: r.ID, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key.Public.Bytes(), Private: r.Key.Private.Bytes(), Signature: r.Signature, LastResort: r.LastResort})
}

func unmarshalKyberPreKey(b []byte) (signal.KyberPreKeyRecord, error) {
	var j prekeyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return signal.KyberPreKeyRecord{}, fmt.Errorf("kyber prekey record: %w", err)
	}
	pub, err := signal.DecodeKyberPublicKey(j.Key)
	if err != nil {
		return signal.KyberPreKeyRecord{}, fmt.Errorf("kyber prekey record %d: %w", j.ID, err)
	}
	priv, err := signal.DecodeKyberPrivateKey(j.Private)
	if err != nil {
		return signal.KyberPreKeyRecord{}, fmt.Errorf("kyber prekey record %d: %w", j.ID, err)
	}
	kp := signal.KyberKeyPair{Public: pub, Private: priv}
	return signal.KyberPreKeyRecord{ID: j.ID, Timestamp: time.UnixMilli(j.Timestamp), Key: kp, Signature: j.Signature, LastResort: j.LastResort}, nil
}

func marshalSession(r *signal.SessionRecord) ([]byte, error) { return r.MarshalBinary() }

func unmarshalSession(b []byte) (*signal.SessionRecord, error) {
	return signal.UnmarshalSessionRecord(b)
}
