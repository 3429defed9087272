package clientstore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleychat/parley"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientstore"
	"github.com/parleychat/parley/client/storetest"
)

func open(t *testing.T, path string) *clientstore.Store {
	t.Helper()
	s, err := clientstore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) client.Store {
		return open(t, filepath.Join(t.TempDir(), "parley.db"))
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s := open(t, path)
	m := client.Message{ID: parley.NewMessageID(), Peer: "bob", Text: "kept", State: client.StateUnread}
	if err := s.Apply(ctx, &client.Batch{Messages: []client.Message{m}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path) // migrations run again: must be a no-op
	got, err := s.Messages(ctx, client.Query{})
	if err != nil || len(got) != 1 || got[0].Text != "kept" {
		t.Fatalf("after reopening: %v, %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("store file mode %v: readable by others", fi.Mode().Perm())
	}
}
