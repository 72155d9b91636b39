// One WebSocket connection: a read loop that handles client frames in
// order, and a write side that drains the connection's queue. The queue is
// a slice of shared, immutable frames guarded by a mutex; a flush takes
// everything queued at once and packs it into as few WebSocket frames as
// possible (objects separated by '\n'), so a busy connection costs one
// write per batch, not one per message. A connection whose queue exceeds
// its bound is cut with reason slow_consumer rather than slowing the room.
//
// The write side has no goroutine while there is nothing to write:
// queuing a frame starts the flush loop, which writes at once, then sleeps
// a write delay and writes what queued meanwhile, and exits when a sleep
// found nothing. So the first frame after a quiet spell goes out at once,
// and a busy connection writes at most once per delay, everything that
// queued in between in one frame. The delay grows with the number of busy
// connections (see targetWrites). That bounds the writes (system calls,
// and frames the client has to read) per connection and second whatever
// the message rate, which is what fan-out to large rooms spends most of
// its time on; the price is at most the write delay of added latency
// under load. Keepalive pings come from a timer, not a goroutine.

package gateway

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// maxBatchBytes caps the objects packed into one WebSocket frame; the
// pooled write buffer holds one such frame, so a batch is one write.
const maxBatchBytes = 64 << 10

// Writes to busy connections are spaced so that a gateway makes about
// targetWrites writes a second, whatever the number of busy connections:
// with n flush loops running, each sleeps n/targetWrites between writes,
// at least minWriteDelay and at most maxWriteDelay. Each write is a system
// call here and a read at the client, and on a small machine that, not the
// bytes, is what fan-out costs (docs/performance.md); a busy connection
// pays for it with up to that delay of latency, an idle one not at all.
// The ceiling is high on purpose: past it the writes outgrow the budget
// and a saturated gateway's latency grows without bound (a room of 10,000
// at 50 messages/s fell behind by seconds with a 100 ms ceiling), so a
// gateway with very many busy connections trades latency for keeping up.
const (
	targetWrites  = 25000
	minWriteDelay = time.Millisecond
	maxWriteDelay = 500 * time.Millisecond
)

// writeDelay is how long a flush loop sleeps after a write.
func (g *Gateway) writeDelay() time.Duration {
	d := time.Duration(g.flushers.Load()) * time.Second / targetWrites
	return min(max(d, minWriteDelay), maxWriteDelay)
}

// Client frames are read into pooled buffers; a buffer that grew past
// this (a rare large frame) goes back to the garbage collector instead.
const (
	frameBufSize   = 512
	maxPooledFrame = 4 << 10
)

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
	idle    *idleWait           // nil: the read loop reads (TLS, tests)
	sec     connSec

	mu       sync.Mutex
	queue    [][]byte
	spare    [][]byte
	queued   int // bytes in queue
	resuming map[string]*resumeBuf
	// resumed holds the ids this connection's resumes brought while a
	// resync after a NATS link loss may bring them again (resync.go,
	// hub.resumeFloor), so it skips them. Binary: 16 bytes each.
	resumed  map[natter.ID]struct{}
	closing  closeReason // once the connection is to be closed
	flushing bool        // the flush loop runs; never two at once
	dead     bool        // the write side has ended and closed the socket
	ping     *time.Timer
	done     chan struct{} // closed when the write side has ended

	writeDeadline time.Time // flush loop only
}

func newConn(g *Gateway, ws *websocket.Conn, remote string) *conn {
	return &conn{g: g, ws: ws, remote: remote, done: make(chan struct{})}
}

// serve runs the connection until the client leaves or the gateway closes
// it (closeAll); ctx is for the frame handlers. Its goroutine becomes the
// read loop; the setup, which goes deeper (timers, metrics, deadlines),
// runs off it (see readLoop).
func (c *conn) serve(ctx context.Context) {
	c.off(func() {
		c.g.met.connections.Inc()
		c.startSec()
		c.g.track(c)
		c.mu.Lock()
		c.ping = time.AfterFunc(c.g.cfg.Limits.PingInterval, c.sendPing)
		c.mu.Unlock()
		c.ws.SetReadLimit(int64(c.g.cfg.Limits.HardFrameBytes))
		idle := c.g.cfg.Limits.IdleTimeout // not all of Limits: every connection keeps this closure
		_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idle)) })
	})
	reason := c.readLoop(ctx)
	c.g.untrack(c)
	c.stop(reason)
	<-c.done
	c.mu.Lock()
	c.ping.Stop()
	c.mu.Unlock()
	for room := range c.rooms {
		c.g.hub.leave(c, room)
	}
	c.ws.Close()
	c.endSec()
	c.g.met.disconnects.WithLabelValues(string(c.whyClosed())).Inc()
	c.g.met.connections.Dec()
}

// readLoop handles frames until an error; it returns the close reason.
//
// On a plain TCP connection the loop itself only waits, on a shallow
// stack, until the client has sent something (idle.go); reading and
// handling what arrived runs on a short-lived goroutine. Reading a frame
// goes deep into the WebSocket library and handling one deeper still, and
// a goroutine keeps its deepest stack until a garbage collection shrinks
// it, which an idle server rarely runs: parked inside the library, every
// idle connection would hold 4–8 KiB of stack instead of 2.
func (c *conn) readLoop(ctx context.Context) closeReason {
	if c.idle == nil {
		for {
			if reason, stop := c.readOne(ctx, c.handleOff); stop {
				return reason
			}
		}
	}
	for {
		if c.idle.br.Buffered() == 0 {
			if err := c.idle.wait(); err != nil {
				return readErrReason(err)
			}
		}
		var reason closeReason
		var stop bool
		c.off(func() { reason, stop = c.readBuffered(ctx) })
		if stop {
			return reason
		}
	}
}

// readBuffered reads and handles frames until the connection's buffer is
// empty, consuming keepalive pongs itself so that a pong does not leave
// the library's reader parked waiting for the next frame.
func (c *conn) readBuffered(ctx context.Context) (closeReason, bool) {
	for {
		if c.idle.skipPong() {
			_ = c.ws.SetReadDeadline(time.Now().Add(c.g.cfg.Limits.IdleTimeout))
		} else if reason, stop := c.readOne(ctx, c.handle); stop {
			return reason, true
		}
		if c.idle.br.Buffered() == 0 {
			return "", false
		}
	}
}

// readOne reads the next message and hands it to handle; stop reports
// that the connection is over, for reason.
func (c *conn) readOne(ctx context.Context, handle func(context.Context, []byte) bool) (reason closeReason, stop bool) {
	lim := c.g.cfg.Limits
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return readErrReason(err), true
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
	if mt != websocket.TextMessage {
		_, _ = io.Copy(io.Discard, r)
		c.sendError(protocol.CodeBadFrame, "binary frames are not supported; send JSON text frames", "")
		return "", false
	}
	// Read at most the frame limit; a longer frame is skipped without
	// being buffered.
	bp := c.g.framePool.Get().(*[]byte)
	buf, tooLong, err := readFrame(r, (*bp)[:0], lim.FrameBytes)
	if err != nil {
		return readErrReason(err), true
	}
	if tooLong {
		n := int64(len(buf))
		// Skip the rest, but not past the hard limit: with compression
		// the reader yields decompressed bytes, which the WebSocket read
		// limit does not bound.
		rest, err := io.Copy(io.Discard, io.LimitReader(r, int64(lim.HardFrameBytes)-n+1))
		if err != nil {
			return readErrReason(err), true
		}
		if n+rest > int64(lim.HardFrameBytes) {
			c.stop(reasonTooLarge)
			return reasonTooLarge, true
		}
		c.sendError(protocol.CodeTooLarge, "frame exceeds the frame limit", "")
		return "", false
	}
	ok := handle(ctx, buf)
	if cap(buf) <= maxPooledFrame {
		*bp = buf
		c.g.framePool.Put(bp)
	}
	if !ok {
		return reasonClosedByServer, true
	}
	if c.isClosing() {
		return c.whyClosed(), true
	}
	return "", false
}

// handleOff runs handle on a goroutine of its own and waits for it, so
// that the deep stack handling needs is not kept by the read loop.
func (c *conn) handleOff(ctx context.Context, data []byte) bool {
	var ok bool
	c.off(func() { ok = c.handle(ctx, data) })
	return ok
}

// off runs fn on a goroutine of its own and waits for it. It costs a
// goroutine start per wake-up of the read loop; client frames are few
// next to the deliveries a gateway writes.
func (c *conn) off(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// readFrame appends r's data to buf up to limit bytes; tooLong reports
// that more followed (buf then holds limit+1 bytes).
func readFrame(r io.Reader, buf []byte, limit int) (_ []byte, tooLong bool, err error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, true, nil
		}
		if errors.Is(err, io.EOF) {
			return buf, false, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
}

func readErrReason(err error) closeReason {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return reasonTooLarge
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		return reasonClientClosed
	default:
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return reasonIdle
		}
		return reasonReadError
	}
}

// kickLocked makes sure the flush loop runs; c.mu is held.
func (c *conn) kickLocked() {
	if c.flushing || c.dead {
		return
	}
	c.flushing = true
	c.g.flushers.Add(1)
	go c.flushLoop()
}

// flushLoop writes everything queued, then waits writeDelay and writes
// what queued meanwhile, and so on; it returns once a wait found nothing
// to write. When the connection is closing it sends the close frame and
// ends the write side.
func (c *conn) flushLoop() {
	defer c.g.flushers.Add(-1)
	for {
		c.mu.Lock()
		q, reason := c.queue, c.closing
		if len(q) == 0 && reason == "" {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.queue, c.spare, c.queued = c.spare[:0], nil, 0
		c.mu.Unlock()
		if len(q) > 0 {
			if err := c.write(q); err != nil {
				c.end(reasonWriteError)
				return
			}
			clear(q)
		}
		if reason != "" {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(reason.code(), string(reason)),
				time.Now().Add(c.g.cfg.Limits.WriteTimeout))
			c.end(reason)
			return
		}
		c.mu.Lock()
		if c.spare == nil && cap(q) <= 1024 {
			c.spare = q[:0]
		}
		closing := c.closing != ""
		c.mu.Unlock()
		if !closing {
			time.Sleep(c.g.writeDelay())
		}
	}
}

// end closes the socket, which also ends the read loop, and marks the
// write side over. Only the flush loop that ends the connection calls it.
func (c *conn) end(reason closeReason) {
	_ = c.ws.UnderlyingConn().Close()
	c.mu.Lock()
	if c.closing == "" {
		c.closing = reason
	}
	c.dead = true
	c.queue, c.spare, c.resuming = nil, nil, nil
	c.mu.Unlock()
	close(c.done)
}

// sendPing is the keepalive timer's function.
func (c *conn) sendPing() {
	c.mu.Lock()
	over := c.dead || c.closing != ""
	c.mu.Unlock()
	if over {
		return
	}
	lim := c.g.cfg.Limits
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(lim.WriteTimeout)); err != nil {
		// Closing the socket fails the flush loop's next write and the
		// read loop's read; stop makes sure a flush loop runs to end it.
		_ = c.ws.UnderlyingConn().Close()
		c.stop(reasonWriteError)
		return
	}
	c.mu.Lock()
	if !c.dead {
		c.ping.Reset(lim.PingInterval)
	}
	if c.resumed != nil {
		// An idle connection resumes no more: forget here what aged.
		if floor, ok := c.g.hub.resumeFloor(time.Now()); ok {
			c.forgetResumedLocked(floor)
		}
	}
	c.mu.Unlock()
}

var newline = []byte{'\n'}

// write packs frames into as few WebSocket frames as maxBatchBytes allows.
func (c *conn) write(q [][]byte) error {
	// Moving the deadline costs a timer update; a busy connection writes
	// every few milliseconds, so refresh it only once half of it is used.
	// A write blocked between WriteTimeout/2 and WriteTimeout fails.
	now := time.Now()
	if wt := c.g.cfg.Limits.WriteTimeout; c.writeDeadline.Sub(now) < wt/2 {
		c.writeDeadline = now.Add(wt)
		_ = c.ws.SetWriteDeadline(c.writeDeadline)
	}
	for len(q) > 0 {
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		size := 0
		i := 0
		for ; i < len(q) && (i == 0 || size+len(q[i]) < maxBatchBytes); i++ {
			if i > 0 {
				if _, err := w.Write(newline); err != nil {
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
	c.kickLocked()
	c.mu.Unlock()
}

func (c *conn) enqueueLocked(frame []byte) {
	if c.closing != "" {
		return
	}
	if c.queued+len(frame) > c.g.cfg.Limits.QueueBytes {
		c.closing = reasonSlowConsumer
		c.queue = nil
		return
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
}

// deliver queues a room frame, or holds it while the room is resuming.
func (c *conn) deliver(room string, frame []byte, id string) {
	c.mu.Lock()
	if rb := c.resumeBuf(room); rb != nil {
		if rb.bytes+len(frame) > c.g.cfg.Limits.QueueBytes {
			if c.closing == "" {
				c.closing = reasonSlowConsumer
			}
			c.kickLocked()
		} else {
			rb.frames = append(rb.frames, frame)
			rb.ids = append(rb.ids, id)
			rb.bytes += len(frame)
		}
		c.mu.Unlock()
		return
	}
	c.enqueueLocked(frame)
	c.kickLocked()
	c.mu.Unlock()
}

// resumeBuf is room's held frames, if room is resuming.
func (c *conn) resumeBuf(room string) *resumeBuf {
	if c.resuming == nil { // nearly always: skip the map lookup
		return nil
	}
	return c.resuming[room]
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

// unholdLocked stops holding room and returns what it held.
func (c *conn) unholdLocked(room string) *resumeBuf {
	rb := c.resuming[room]
	delete(c.resuming, room)
	if len(c.resuming) == 0 {
		c.resuming = nil // most connections never resume again
	}
	return rb
}

// unhold stops holding room and drops what it held.
func (c *conn) unhold(room string) {
	c.mu.Lock()
	c.unholdLocked(room)
	c.mu.Unlock()
}

// release queues first, then the held live frames whose id is not in
// skip, and stops holding room.
func (c *conn) release(room string, first [][]byte, skip map[string]struct{}) {
	c.mu.Lock()
	rb := c.unholdLocked(room)
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
	c.kickLocked()
	c.mu.Unlock()
}

func (c *conn) sendError(code protocol.Code, msg, ref string) {
	c.g.met.errors.WithLabelValues(string(code)).Inc()
	c.enqueue(protocol.Encode(protocol.Error{Op: protocol.OpError, Code: code, Message: msg, Ref: ref}))
}

// stop marks the connection closing with reason (the first reason wins);
// the flush it starts sends the close frame and closes the socket.
func (c *conn) stop(reason closeReason) {
	c.mu.Lock()
	if c.closing == "" {
		c.closing = reason
	}
	c.kickLocked()
	c.mu.Unlock()
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing != ""
}

func (c *conn) whyClosed() closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// noteResumed records the ids a resume brought that are recent enough for
// a resync to bring again: one after a link loss noticed in the next
// moments, or during an open gap. The rest are forgotten, and so are the
// ids earlier resumes brought that have aged past that.
func (c *conn) noteResumed(msgs []natter.Message, now time.Time) {
	floor, ok := c.g.hub.resumeFloor(now)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetResumedLocked(floor)
	for _, m := range msgs {
		id, err := natter.ParseID(m.ID)
		if err != nil {
			continue // not from a gateway: a resync cannot bring it either
		}
		if id.Time().UnixNano() >= floor {
			if c.resumed == nil {
				c.resumed = make(map[natter.ID]struct{})
			}
			c.resumed[id] = struct{}{}
		}
	}
}

// forgetResumedLocked drops the resumed ids older than floor.
func (c *conn) forgetResumedLocked(floor int64) {
	for id := range c.resumed {
		if id.Time().UnixNano() < floor {
			delete(c.resumed, id)
		}
	}
	if len(c.resumed) == 0 {
		c.resumed = nil
	}
}

// wasResumed reports whether a resume of this connection brought id
// recently (noteResumed).
func (c *conn) wasResumed(id natter.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.resumed[id]
	return ok
}
