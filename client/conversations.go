package client

import (
	"bytes"
	"cmp"
	"context"
	"slices"

	"github.com/parleychat/parley"
)

// Conversation sums up the history with one peer, for a list of chats.
type Conversation struct {
	Peer   parley.UserID
	Last   Message // the newest message, notices included
	Unread int     // incoming messages not yet shown
	// Verified: the user marked the peer's current identity key verified
	// (see SetVerified); a later key change clears it.
	Verified bool
	// IdentityChanged: the peer's identity key changed and the user has not
	// looked at the new safety number since (see SetVerified).
	IdentityChanged bool
}

// Conversations returns one Conversation per peer in the history, the most
// recent first. It reads the whole history: fine for the thousands of
// messages a device keeps, not for millions.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	msgs, err := c.st.Messages(ctx, Query{})
	if err != nil {
		return nil, err
	}
	byPeer := map[parley.UserID]*Conversation{}
	for _, m := range msgs {
		cv := byPeer[m.Peer]
		if cv == nil {
			cv = &Conversation{Peer: m.Peer}
			byPeer[m.Peer] = cv
		}
		cv.Last = m // msgs are oldest first
		if !m.Outgoing && m.State == StateUnread {
			cv.Unread++
		}
	}
	out := make([]Conversation, 0, len(byPeer))
	for _, cv := range byPeer {
		if cv.Verified, err = c.Verified(ctx, cv.Peer); err != nil {
			return nil, err
		}
		changed, err := c.st.Record(ctx, RecordIdentityChanged, string(cv.Peer))
		if err != nil {
			return nil, err
		}
		cv.IdentityChanged = changed != nil
		out = append(out, *cv)
	}
	slices.SortFunc(out, func(a, b Conversation) int { return cmp.Compare(b.Last.Seq, a.Last.Seq) })
	return out, nil
}

// Verified reports whether the user marked peer's current identity key
// verified.
func (c *Client) Verified(ctx context.Context, peer parley.UserID) (bool, error) {
	v, err := c.st.Record(ctx, RecordVerified, string(peer))
	if err != nil || v == nil {
		return false, err
	}
	id, err := c.st.Record(ctx, RecordIdentity, string(peer))
	if err != nil {
		return false, err
	}
	return bytes.Equal(v, id), nil
}

// SetVerified records that the user compared the safety number with peer
// and found it equal (verified) or wants the mark removed (!verified).
// Either way the user has now seen the current key, so a pending
// identity-change warning is cleared.
func (c *Client) SetVerified(ctx context.Context, peer parley.UserID, verified bool) error {
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	id, err := c.st.Record(ctx, RecordIdentity, string(peer))
	if err != nil {
		return err
	}
	if id == nil {
		return parley.Errorf(parley.KindNotFound, "no identity key for %s yet: look at the safety number first", peer)
	}
	mark := Record{Kind: RecordVerified, Key: string(peer)}
	if verified {
		mark.Value = id
	}
	return c.st.Apply(ctx, &Batch{Records: []Record{mark, {Kind: RecordIdentityChanged, Key: string(peer)}}})
}

// Retry puts a failed outgoing message back in the outbox.
func (c *Client) Retry(ctx context.Context, peer parley.UserID, id parley.MessageID) (*Message, error) {
	out := true
	ms, err := c.st.Messages(ctx, Query{ID: &id, Peer: peer, Outgoing: &out, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, parley.Errorf(parley.KindNotFound, "no message %s to %s", id, peer)
	}
	m := ms[0]
	if m.State != StateFailed {
		return nil, parley.Errorf(parley.KindConflict, "message %s is %s, not failed", id, m.State)
	}
	m.State = StateSending
	if err := c.st.Apply(ctx, &Batch{States: []StateChange{{Peer: peer, Outgoing: true, ID: id, State: StateSending}}}); err != nil {
		return nil, err
	}
	c.kickOutbox()
	return &m, nil
}
