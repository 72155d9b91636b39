package gateway

import (
	"hash/maphash"

	"github.com/nats-io/nats.go"
)

// natsConns are the gateway's NATS connections: ctl carries the gateway's
// own subjects (durable replies, flush requests, heartbeats), and each
// room's traffic — its subscription, presence, live messages and their
// durable requests — goes over one of rooms, chosen by the room name's
// hash. NATS orders what one connection sends, so a room's live message
// still reaches NATS before its durable request; and a write that blocks
// (nats.go writes under the connection's lock when its buffer is full)
// holds up the rooms of its connection only.
type natsConns struct {
	ctl   *nats.Conn
	rooms []*nats.Conn // empty: ctl carries rooms too
	seed  maphash.Seed
}

func newNATSConns(ctl *nats.Conn, rooms []*nats.Conn) *natsConns {
	return &natsConns{ctl: ctl, rooms: rooms, seed: maphash.MakeSeed()}
}

// oneConn is a single connection carrying everything.
func oneConn(nc *nats.Conn) *natsConns { return newNATSConns(nc, nil) }

// room returns the connection that carries room name's traffic.
func (n *natsConns) room(name string) *nats.Conn {
	if len(n.rooms) == 0 {
		return n.ctl
	}
	return n.rooms[maphash.String(n.seed, name)%uint64(len(n.rooms))]
}

// down returns the name of a connection that is not connected: "" when
// all are.
func (n *natsConns) down() string {
	if !n.ctl.IsConnected() {
		return "gateway"
	}
	for _, nc := range n.rooms {
		if !nc.IsConnected() {
			return "rooms"
		}
	}
	return ""
}
