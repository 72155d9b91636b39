// One WebSocket connection: a read loop that handles client frames in
// order, and a write loop that drains the connection's queue. The queue is
// a slice of shared, immutable frames guarded by a mutex; the writer takes
// everything queued at once and packs it into as few WebSocket frames as
// possible (objects separated by '\n'), so a busy connection costs one
// write per batch, not one per message. A connection whose queue exceeds
// its bound is cut with reason slow_consumer rather than slowing the room.

package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/natter-chat/natter/protocol"
)

// maxBatchBytes caps the objects packed into one WebSocket frame.
const maxBatchBytes = 64 << 10

type resumeBuf struct {
	frames [][]byte
	ids    []string
	bytes  int
}

type conn struct {
	g       *Gateway
	ws      *websocket.Conn
	remote  string
	user    string // set once by connect, read by the hub afterwards
	session string
	rooms   map[string]struct{} // read loop only
	sec     connSec

	mu       sync.Mutex
	queue    [][]byte
	spare    [][]byte
	queued   int // bytes in queue
	resuming map[string]*resumeBuf
	closing  string // reason, once the connection is to be closed
	wake     chan struct{}
	done     chan struct{}
}

func newConn(g *Gateway, ws *websocket.Conn, remote string) *conn {
	return &conn{g: g, ws: ws, remote: remote, rooms: make(map[string]struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// serve runs the connection until the client leaves or ctx ends.
func (c *conn) serve(ctx context.Context) {
	c.g.met.connections.Inc()
	defer c.g.met.connections.Dec()
	c.startSec()
	defer c.endSec()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(ctx)
	}()
	reason := c.readLoop(ctx)
	c.stop(reason)
	<-writerDone
	for room := range c.rooms {
		c.g.hub.leave(c, room)
	}
	c.ws.Close()
	c.g.met.disconnects.WithLabelValues(c.closeReason()).Inc()
}

// readLoop handles frames until an error; it returns the close reason.
func (c *conn) readLoop(ctx context.Context) string {
	lim := c.g.cfg.Limits
	c.ws.SetReadLimit(int64(lim.HardFrameBytes))
	_ = c.ws.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(lim.IdleTimeout)) })
	buf := make([]byte, 0, 512)
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			return readErrReason(err)
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		if mt != websocket.TextMessage {
			_, _ = io.Copy(io.Discard, r)
			c.sendError(protocol.CodeBadFrame, "binary frames are not supported; send JSON text frames", "")
			continue
		}
		// Read at most the frame limit; a longer frame is skipped without
		// being buffered.
		buf = buf[:0]
		w := bytes.NewBuffer(buf)
		n, err := io.Copy(w, io.LimitReader(r, int64(lim.FrameBytes)+1))
		if err != nil {
			return readErrReason(err)
		}
		if n > int64(lim.FrameBytes) {
			// Skip the rest, but not past the hard limit: with
			// compression the reader yields decompressed bytes, which
			// the WebSocket read limit does not bound.
			rest, err := io.Copy(io.Discard, io.LimitReader(r, int64(lim.HardFrameBytes)-n+1))
			if err != nil {
				return readErrReason(err)
			}
			if n+rest > int64(lim.HardFrameBytes) {
				c.stop(string(protocol.CodeTooLarge))
				return string(protocol.CodeTooLarge)
			}
			c.sendError(protocol.CodeTooLarge, "frame exceeds the frame limit", "")
			continue
		}
		buf = w.Bytes()
		if !c.handle(ctx, buf) {
			return "closed_by_server"
		}
		if c.isClosing() {
			return c.closeReason()
		}
	}
}

func readErrReason(err error) string {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return "too_large"
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		return "client_closed"
	default:
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return "idle_timeout"
		}
		return "read_error"
	}
}

// writeLoop writes queued frames and keepalive pings until the connection
// is closing; then it sends the close frame.
func (c *conn) writeLoop(ctx context.Context) {
	lim := c.g.cfg.Limits
	ping := time.NewTicker(lim.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(lim.WriteTimeout)); err != nil {
				c.stop("write_error")
				_ = c.ws.UnderlyingConn().Close()
				return
			}
			continue
		case <-c.done:
		case <-ctx.Done():
			c.stop(string(protocol.CodeShuttingDown))
		}
		c.mu.Lock()
		q, reason := c.queue, c.closing
		c.queue, c.spare, c.queued = c.spare[:0], nil, 0
		c.mu.Unlock()
		if len(q) > 0 {
			if err := c.write(q); err != nil {
				c.stop("write_error")
				_ = c.ws.UnderlyingConn().Close()
				return
			}
			clear(q)
			c.mu.Lock()
			if c.spare == nil && cap(q) <= 1024 {
				c.spare = q[:0]
			}
			c.mu.Unlock()
		}
		if reason != "" {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode(reason), reason), time.Now().Add(lim.WriteTimeout))
			// Closing the socket unblocks the reader at once.
			_ = c.ws.UnderlyingConn().Close()
			return
		}
	}
}

// write packs frames into as few WebSocket frames as maxBatchBytes allows.
func (c *conn) write(q [][]byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.g.cfg.Limits.WriteTimeout))
	for len(q) > 0 {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		size := 0
		i := 0
		for ; i < len(q) && (i == 0 || size+len(q[i]) < maxBatchBytes); i++ {
			if i > 0 {
				if _, err := w.Write([]byte{'\n'}); err != nil {
					return err
				}
			}
			if _, err := w.Write(q[i]); err != nil {
				return err
			}
			size += len(q[i]) + 1
		}
		if err := w.Close(); err != nil {
			return err
		}
		c.g.met.frames.Inc()
		q = q[i:]
	}
	return nil
}

// enqueue queues frame; a queue over its bound closes the connection.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	c.enqueueLocked(frame)
	c.mu.Unlock()
	c.signal()
}

func (c *conn) enqueueLocked(frame []byte) {
	if c.closing != "" {
		return
	}
	if c.queued+len(frame) > c.g.cfg.Limits.QueueBytes {
		c.closing = string(protocol.CodeSlowConsumer)
		c.queue = nil
		return
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver queues a room frame, or holds it while the room is resuming.
func (c *conn) deliver(room string, frame []byte, id string) {
	c.mu.Lock()
	if rb := c.resuming[room]; rb != nil {
		if rb.bytes+len(frame) > c.g.cfg.Limits.QueueBytes {
			c.closing = string(protocol.CodeSlowConsumer)
		} else {
			rb.frames = append(rb.frames, frame)
			rb.ids = append(rb.ids, id)
			rb.bytes += len(frame)
		}
		c.mu.Unlock()
		c.signal()
		return
	}
	c.enqueueLocked(frame)
	c.mu.Unlock()
	c.signal()
}

// hold starts holding room's live frames (before the hub adds c to room).
func (c *conn) hold(room string) {
	c.mu.Lock()
	if c.resuming == nil {
		c.resuming = make(map[string]*resumeBuf)
	}
	c.resuming[room] = &resumeBuf{}
	c.mu.Unlock()
}

// release queues first, then the held live frames whose id is not in
// skip, and stops holding room.
func (c *conn) release(room string, first [][]byte, skip map[string]struct{}) {
	c.mu.Lock()
	rb := c.resuming[room]
	delete(c.resuming, room)
	for _, f := range first {
		c.enqueueLocked(f)
	}
	if rb != nil {
		for i, f := range rb.frames {
			if _, dup := skip[rb.ids[i]]; dup && rb.ids[i] != "" {
				continue
			}
			c.enqueueLocked(f)
		}
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) sendError(code protocol.Code, msg, ref string) {
	c.g.met.errors.WithLabelValues(string(code)).Inc()
	c.enqueue(protocol.Encode(protocol.Error{Op: protocol.OpError, Code: code, Message: msg, Ref: ref}))
}

// stop marks the connection closing with reason (the first reason wins).
func (c *conn) stop(reason string) {
	c.mu.Lock()
	if c.closing == "" {
		c.closing = reason
	}
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing != ""
}

func (c *conn) closeReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}
