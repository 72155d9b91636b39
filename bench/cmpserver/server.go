// The comparison server: a small, well-made gorilla/websocket broadcast
// server speaking the subset of natter's protocol that `natter bench` uses.
// It is the yardstick for natter's fan-out: what the WebSocket library
// alone gives on this machine when used the way the best Go servers use
// it, with none of natter's work (ids, NATS, the durable log).
//
// What makes it good rather than a straw man:
//   - each room message is encoded once, and the same bytes (and, when a
//     connection has only that message to write, the same prepared
//     WebSocket frame) go to every member;
//   - each connection has a queue and one writer goroutine that takes
//     everything queued at once and packs it into one frame, objects
//     separated by '\n', so a busy connection costs one write per batch;
//   - write buffers come from a pool and are held only while writing;
//     read buffers are 1 KiB;
//   - the upgrade handler returns at once, so net/http's per-request
//     buffers are freed; a connection is two goroutines;
//   - a queue over 4 MiB cuts its connection instead of slowing the room.
package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const (
	maxFrame     = 16 << 10
	maxQueue     = 4 << 20
	maxBatch     = 64 << 10
	pingInterval = 30 * time.Second
	idleTimeout  = 75 * time.Second
	writeTimeout = 10 * time.Second
)

// server is the hub: room name → members.
type server struct {
	up     websocket.Upgrader
	nextID atomic.Uint64

	mu    sync.RWMutex
	rooms map[string]map[*conn]struct{}
}

func newServer() *server {
	return &server{
		up: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		rooms: map[string]map[*conn]struct{}{},
	}
}

// item is a queued object: its bytes, and a prepared frame of them alone.
type item struct {
	data []byte
	pm   *websocket.PreparedMessage
}

type conn struct {
	s     *server
	ws    *websocket.Conn
	user  string
	rooms []string // read loop only

	mu     sync.Mutex
	queue  []item
	queued int
	closed bool
	wake   chan struct{}
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{s: s, ws: ws, wake: make(chan struct{}, 1)}
	go c.writeLoop()
	go c.readLoop()
}

// Frames, op first as natter writes them.
type (
	clientFrame struct {
		Op   string `json:"op"`
		User string `json:"user"`
		Room string `json:"room"`
		CID  string `json:"cid"`
		Body string `json:"body"`
	}
	msgFrame struct {
		Op   string `json:"op"`
		Room string `json:"room"`
		ID   string `json:"id"`
		User string `json:"user"`
		Body string `json:"body"`
		TS   int64  `json:"ts"`
	}
	ackFrame struct {
		Op  string `json:"op"`
		CID string `json:"cid"`
		ID  string `json:"id"`
		TS  int64  `json:"ts"`
	}
	errorFrame struct {
		Op      string `json:"op"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
)

func (c *conn) readLoop() {
	defer c.shutdown()
	c.ws.SetReadLimit(maxFrame)
	_ = c.ws.SetReadDeadline(time.Now().Add(idleTimeout))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idleTimeout)) })
	var buf []byte
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(idleTimeout))
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
		}
		var f clientFrame
		if json.Unmarshal(buf, &f) != nil {
			c.sendError("bad_frame", "malformed JSON")
			continue
		}
		c.handle(f)
	}
}

func (c *conn) handle(f clientFrame) {
	switch f.Op {
	case "ping":
		c.enqueue(item{data: []byte(`{"op":"pong"}`)})
	case "connect":
		if f.User == "" {
			c.sendError("unauthorized", "user is required")
			return
		}
		c.user = f.User
		c.enqueue(item{data: mustJSON(struct {
			Op      string `json:"op"`
			User    string `json:"user"`
			Session string `json:"session"`
			Version int    `json:"version"`
		}{"connected", f.User, strconv.FormatUint(c.s.nextID.Add(1), 10), 1})})
	case "join":
		if c.user == "" || f.Room == "" {
			c.sendError("not_connected", "connect first, with a room")
			return
		}
		c.s.mu.Lock()
		members := c.s.rooms[f.Room]
		if members == nil {
			members = map[*conn]struct{}{}
			c.s.rooms[f.Room] = members
		}
		members[c] = struct{}{}
		c.s.mu.Unlock()
		c.rooms = append(c.rooms, f.Room)
		c.enqueue(item{data: mustJSON(struct {
			Op      string   `json:"op"`
			Room    string   `json:"room"`
			Members []string `json:"members"`
			Resumed int      `json:"resumed"`
		}{"joined", f.Room, []string{}, 0})})
	case "send":
		if c.user == "" {
			c.sendError("not_connected", "connect first")
			return
		}
		ts := time.Now().UnixMilli()
		id := strconv.FormatUint(c.s.nextID.Add(1), 10)
		c.s.broadcast(f.Room, mustJSON(msgFrame{"msg", f.Room, id, c.user, f.Body, ts}))
		c.enqueue(item{data: mustJSON(ackFrame{"ack", f.CID, id, ts})})
	default:
		c.sendError("unknown_op", "unknown op")
	}
}

// broadcast queues one encoded message, and one prepared frame of it, to
// every member of room.
func (s *server) broadcast(room string, data []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
	if err != nil {
		return
	}
	it := item{data: data, pm: pm}
	s.mu.RLock()
	for c := range s.rooms[room] {
		c.enqueue(it)
	}
	s.mu.RUnlock()
}

func (c *conn) sendError(code, msg string) {
	c.enqueue(item{data: mustJSON(errorFrame{"error", code, msg})})
}

func (c *conn) enqueue(it item) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.queued+len(it.data) > maxQueue {
		// Slow consumer: cut it rather than hold the room back.
		c.closed = true
		c.queue = nil
		c.mu.Unlock()
		_ = c.ws.NetConn().Close()
		return
	}
	c.queue = append(c.queue, it)
	c.queued += len(it.data)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes everything queued at each wake-up, one frame per batch.
func (c *conn) writeLoop() {
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	var spare []item
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			if c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)) != nil {
				return
			}
			continue
		}
		c.mu.Lock()
		q, closed := c.queue, c.closed
		c.queue, c.queued = spare[:0], 0
		c.mu.Unlock()
		if closed {
			return
		}
		if err := c.write(q); err != nil {
			_ = c.ws.NetConn().Close()
			return
		}
		clear(q)
		spare = q
	}
}

func (c *conn) write(q []item) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	if len(q) == 1 && q[0].pm != nil {
		return c.ws.WritePreparedMessage(q[0].pm)
	}
	for len(q) > 0 {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		size, i := 0, 0
		for ; i < len(q) && (i == 0 || size+len(q[i].data) < maxBatch); i++ {
			if i > 0 {
				if _, err := w.Write(newline); err != nil {
					return err
				}
			}
			if _, err := w.Write(q[i].data); err != nil {
				return err
			}
			size += len(q[i].data) + 1
		}
		if err := w.Close(); err != nil {
			return err
		}
		q = q[i:]
	}
	return nil
}

var newline = []byte{'\n'}

func (c *conn) shutdown() {
	c.s.mu.Lock()
	for _, r := range c.rooms {
		delete(c.s.rooms[r], c)
		if len(c.s.rooms[r]) == 0 {
			delete(c.s.rooms, r)
		}
	}
	c.s.mu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	_ = c.ws.Close()
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
