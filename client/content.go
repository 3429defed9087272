package client

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/parleychat/parley"
)

// contentVersion is the version of the plaintext encoding (see the package
// doc); bump it only for a change an old client would misread.
const contentVersion = 1

// paddingBlock is the padding granularity, as Signal's.
const paddingBlock = 160

// content is the plaintext inside a Signal message.
type content struct {
	V      int         `json:"v"`
	Type   string      `json:"type"`
	ID     string      `json:"id"`
	Text   string      `json:"text,omitempty"`
	IDs    []string    `json:"ids,omitempty"`  // receipt: the messages it acknowledges
	Call   *CallSignal `json:"call,omitempty"` // call: one signalling step
	SentAt int64       `json:"sent_at"`        // Unix milliseconds
}

// The content types.
const (
	contentText    = "text"
	contentReceipt = "receipt" // delivery receipt: the messages in IDs are stored on the recipient's device
	contentCall    = "call"    // call signalling (see call.go)
)

func textContent(id parley.MessageID, text string, sentAt time.Time) content {
	return content{Type: contentText, ID: id.String(), Text: text, SentAt: sentAt.UnixMilli()}
}

// encodeContent encodes c (at contentVersion) and pads it.
func encodeContent(c content) ([]byte, error) {
	c.V = contentVersion
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	n := (len(b)/paddingBlock + 1) * paddingBlock // room for at least the 0x80 byte
	p := make([]byte, n)
	copy(p, b)
	p[len(b)] = 0x80
	return p, nil
}

func decodeContent(p []byte) (*content, error) {
	end := len(bytes.TrimRight(p, "\x00"))
	if end == 0 || p[end-1] != 0x80 {
		return nil, parley.Errorf(parley.KindInvalid, "content: bad padding")
	}
	var c content
	if err := json.Unmarshal(p[:end-1], &c); err != nil {
		return nil, parley.Errorf(parley.KindInvalid, "content: %w", err)
	}
	if c.V < 1 {
		return nil, parley.Errorf(parley.KindInvalid, "content: version %d", c.V)
	}
	return &c, nil
}
