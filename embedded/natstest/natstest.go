// Package natstest gives tests a client of an in-process NATS server.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/embedded"
)

// Conn starts an in-process NATS server that listens on no port and
// returns a client of it; both end with the test.
func Conn(t testing.TB) *nats.Conn {
	t.Helper()
	ns, err := embedded.StartNATS(embedded.NATSConfig{DontListen: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
