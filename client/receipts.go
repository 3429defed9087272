package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parleychat/parley"
)

// Delivery receipts. When a text is stored here, its id joins the pending
// receipts (a record written in the same Batch as the message, so a crash
// loses neither); the outbox loop then sends each sender one receipt
// naming every pending id, to all of the sender's devices, and forgets the
// ids once the server holds the receipt. A receipt is an ordinary
// end-to-end encrypted message of content type "receipt"; the server cannot
// tell it from a text. A client receiving one moves the named messages to
// StateDelivered.

// maxReceiptIDs bounds the ids in one receipt (about 17 KB of content).
const maxReceiptIDs = 500

// pendingReceipts maps a sender to the ids of its messages not yet
// acknowledged by a receipt, oldest first.
type pendingReceipts map[parley.UserID][]string

func loadReceipts(b []byte) (pendingReceipts, error) {
	p := pendingReceipts{}
	if b == nil {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("pending receipts: %w", err)
	}
	return p, nil
}

func (p pendingReceipts) record() Record {
	b, _ := json.Marshal(p)
	return Record{Kind: RecordReceipts, Value: b}
}

// pendingReceipts reads the receipts not yet sent.
func (c *Client) pendingReceipts(ctx context.Context) (pendingReceipts, error) {
	b, err := c.st.Record(ctx, RecordReceipts, "")
	if err != nil {
		return nil, &storeError{err}
	}
	return loadReceipts(b)
}

// addReceipt adds id from peer to the pending receipts in t's batch.
func addReceipt(ctx context.Context, t *txn, peer parley.UserID, id parley.MessageID) error {
	b, err := t.get(ctx, RecordReceipts, "")
	if err != nil {
		return err
	}
	p, err := loadReceipts(b)
	if err != nil {
		return err
	}
	p[peer] = append(p[peer], id.String())
	r := p.record()
	t.put(r.Kind, r.Key, r.Value)
	return nil
}

// sendReceipts sends the pending receipts. It returns an error a retry may
// fix; a receipt to a user who is gone is dropped.
func (c *Client) sendReceipts(ctx context.Context, s *session) error {
	p, err := c.pendingReceipts(ctx)
	if err != nil {
		return err
	}
	for peer, ids := range p {
		ids = ids[:min(len(ids), maxReceiptIDs)]
		id, now := parley.NewMessageID(), c.now()
		pt, err := encodeContent(content{Type: contentReceipt, ID: id.String(), IDs: ids, SentAt: now.UnixMilli()})
		if err != nil {
			return err
		}
		_, err = c.sendContent(ctx, s, peer, id, now, pt)
		if err != nil && retryable(err) {
			return fmt.Errorf("receipt to %s: %w", peer, err)
		}
		if err != nil {
			c.log.Info("receipt dropped", "to", peer, "err", err)
		}
		if err := c.forgetReceipts(ctx, peer, ids); err != nil {
			return err
		}
	}
	return nil
}

// forgetReceipts removes ids from peer's pending receipts.
func (c *Client) forgetReceipts(ctx context.Context, peer parley.UserID, ids []string) error {
	c.protoMu.Lock()
	defer c.protoMu.Unlock()
	p, err := c.pendingReceipts(ctx)
	if err != nil {
		return err
	}
	p[peer] = slices.DeleteFunc(p[peer], func(id string) bool { return slices.Contains(ids, id) })
	if len(p[peer]) == 0 {
		delete(p, peer)
	}
	r := p.record()
	if len(p) == 0 {
		r.Value = nil
	}
	if err := c.st.Apply(ctx, &Batch{Records: []Record{r}}); err != nil {
		return &storeError{err}
	}
	return nil
}
