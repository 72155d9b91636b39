package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded"
)

// gate dials NATS with connections whose writes can be held, as a socket
// whose peer stopped reading holds them.
type gate struct {
	mu      sync.Mutex
	open    *sync.Cond
	closed  bool
	waiting int
}

func newGate() *gate {
	g := &gate{}
	g.open = sync.NewCond(&g.mu)
	return g
}

func (g *gate) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: g}, nil
}

func (g *gate) set(closed bool) {
	g.mu.Lock()
	g.closed = closed
	g.mu.Unlock()
	g.open.Broadcast()
}

// held reports how many writes wait at the gate.
func (g *gate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.g.mu.Lock()
	for c.g.closed {
		c.g.waiting++
		c.g.open.Wait()
		c.g.waiting--
	}
	c.g.mu.Unlock()
	return c.Conn.Write(p)
}

// wsClient is a protocol client of a gateway, reading frames into a
// channel.
type wsClient struct {
	ws     *websocket.Conn
	frames chan map[string]any
	kept   []map[string]any // read while awaiting another op
}

func dialClient(t *testing.T, addr, user string) *wsClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{ws: ws, frames: make(chan map[string]any, 1024)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var f map[string]any
				if json.Unmarshal([]byte(line), &f) == nil {
					c.frames <- f
				}
			}
		}
	}()
	c.send(t, map[string]any{"op": "connect", "user": user})
	c.await(t, "connected", nil)
	return c
}

func (c *wsClient) send(t *testing.T, f map[string]any) {
	t.Helper()
	data, _ := json.Marshal(f)
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		t.Fatal(err)
	}
}

// await returns the first frame of op that match accepts (nil: any);
// frames it passes over are kept for later awaits.
func (c *wsClient) await(t *testing.T, op string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	want := func(f map[string]any) bool { return f["op"] == op && (match == nil || match(f)) }
	for i, f := range c.kept {
		if want(f) {
			c.kept = append(c.kept[:i], c.kept[i+1:]...)
			return f
		}
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("connection closed waiting for %s", op)
			}
			if f["op"] == "error" {
				t.Fatalf("waiting for %s: error %v", op, f)
			}
			if want(f) {
				return f
			}
			c.kept = append(c.kept, f)
		case <-deadline:
			t.Fatalf("no %s", op)
		}
	}
}

// A NATS connection whose socket stops taking writes holds up only the
// rooms it carries: on the gateway's other connections, rooms are joined,
// sends are acked and delivered meanwhile; once the socket takes writes
// again, the held room's messages arrive, all of them, in order.
func TestABlockedNATSSocketHoldsUpOnlyItsRooms(t *testing.T) {
	ns, err := embedded.StartNATS(embedded.NATSConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	connect := func(name string) *nats.Conn {
		nc, err := ns.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	gt := newGate()
	t.Cleanup(func() { gt.set(false) })
	held, err := nats.Connect(ns.ClientURL(), nats.SetCustomDialer(gt), nats.Name("rooms-held"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Close)
	free := connect("rooms-free")

	// A bridge: every durable request is written, and answered.
	bridge := connect("bridge")
	if _, err := bridge.QueueSubscribe(natter.SubjectDurable, natter.QueueBridge, func(m *nats.Msg) {
		var msg natter.Message
		_ = json.Unmarshal(m.Data, &msg)
		data, _ := json.Marshal(natter.DurableReply{ID: msg.ID, OK: true})
		_ = m.Respond(data)
	}); err != nil {
		t.Fatal(err)
	}

	store := &memLog{}
	g, err := New(Config{ID: "gw-a", NATS: connect("gateway"), RoomConns: []*nats.Conn{held, free},
		History: store, DurableLog: store, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	// Rooms by the connection that carries them.
	var heldRoom, freeRooms []string
	for i := 0; len(heldRoom) < 2 || len(freeRooms) < 2; i++ {
		name := fmt.Sprintf("room%d", i)
		if g.nats.room(name) == held {
			heldRoom = append(heldRoom, name)
		} else {
			freeRooms = append(freeRooms, name)
		}
	}
	stuck, stuckFresh, open, fresh := heldRoom[0], heldRoom[1], freeRooms[0], freeRooms[1]

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, ln) }()
	t.Cleanup(func() {
		gt.set(false)
		cancel()
		<-done
	})
	addr := ln.Addr().String()

	alice := dialClient(t, addr, "alice") // in the room that will be held
	alice.send(t, map[string]any{"op": "join", "room": stuck})
	alice.await(t, "joined", nil)
	bob := dialClient(t, addr, "bob") // in a room of the other connection
	bob.send(t, map[string]any{"op": "join", "room": open})
	bob.await(t, "joined", nil)

	// The socket stops taking writes; alice's sends fill what nats.go
	// buffers, and its writer waits at the socket holding the
	// connection's lock.
	gt.set(true)
	const heldSends = 12
	body := strings.Repeat("x", 4000)
	for i := range heldSends {
		alice.send(t, map[string]any{"op": "send", "room": stuck, "body": fmt.Sprintf("%d %s", i, body), "cid": fmt.Sprint("a", i)})
	}
	for deadline := time.Now().Add(20 * time.Second); gt.held() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no write reached the held socket")
		}
	}

	// A join of a new room on the held connection waits for it...
	dave := dialClient(t, addr, "dave")
	dave.send(t, map[string]any{"op": "join", "room": stuckFresh})

	// ...while on the other connection a join of an existing room, a
	// join of a new one (a NATS subscription) and sends all go through.
	carol := dialClient(t, addr, "carol")
	carol.send(t, map[string]any{"op": "join", "room": open})
	carol.await(t, "joined", nil)
	carol.send(t, map[string]any{"op": "join", "room": fresh})
	carol.await(t, "joined", nil)
	bob.send(t, map[string]any{"op": "send", "room": open, "body": "while held", "cid": "b1"})
	bob.await(t, "ack", nil)
	carol.await(t, "msg", func(f map[string]any) bool { return f["body"] == "while held" })
	carol.send(t, map[string]any{"op": "send", "room": fresh, "body": "new room", "cid": "c1"})
	carol.await(t, "ack", nil)
	carol.await(t, "msg", func(f map[string]any) bool { return f["body"] == "new room" })
	if gt.held() == 0 {
		t.Fatal("the socket took writes before it was let go: the test proved nothing")
	}

	// The held room's messages arrive once the socket takes writes again:
	// every one, acked, in the order sent.
	gt.set(false)
	dave.await(t, "joined", nil)
	var msgs []map[string]any
	for range heldSends {
		msgs = append(msgs, alice.await(t, "msg", nil))
	}
	for range heldSends {
		alice.await(t, "ack", nil)
	}
	last := ""
	for i, m := range msgs {
		if !strings.HasPrefix(m["body"].(string), fmt.Sprint(i, " ")) {
			t.Fatalf("message %d of the held room: got %.10q", i, m["body"])
		}
		id := m["id"].(string)
		if id <= last {
			t.Fatalf("message %d id %s not after %s", i, id, last)
		}
		last = id
	}
}
