package clientmem_test

import (
	"testing"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/client/clientmem"
	"github.com/parleychat/parley/client/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) client.Store { return clientmem.New() })
}
