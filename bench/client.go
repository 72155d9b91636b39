// One load-generator connection: dial from a chosen source address,
// connect and join, then read frames and account for every message. In the
// soak scenario a connection is also closed and opened again now and then,
// resuming its room from the last message it saw.

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// client is one connection of the load generator.
type client struct {
	w          *worker
	idx        int // global connection index
	d          *websocket.Dialer
	url, user  string
	room       string // "" for none
	hist       *Hist
	buf        []byte
	alive      atomic.Bool
	reopening  atomic.Bool  // a reopen is under way
	cycling    atomic.Bool  // being closed on purpose to reconnect
	acks       atomic.Int64 // acks received, over every connection
	readerDone chan struct{}

	// Touched only by the read loop; read by others after it ended.
	// seen[slot] has bit seq set once publisher slot's message seq was
	// received. lastID is the newest message id received (len 0: none).
	seen   [][]uint64
	lastID []byte

	wmu   sync.Mutex // serialises sends and guards ws, down and sends
	ws    *websocket.Conn
	down  bool  // between connections: sends are skipped
	sends int64 // sends written, over every connection
	wbuf  []byte
}

// errDown is a send skipped because its connection is being reopened.
var errDown = errors.New("connection is being reopened")

var (
	prefixMsg   = []byte(`{"op":"msg"`)
	prefixAck   = []byte(`{"op":"ack"`)
	prefixError = []byte(`{"op":"error"`)
	bodyKey     = []byte(`"body":"`)
	codeKey     = []byte(`"code":"`)
	idKey       = []byte(`"id":"`)
)

// dialer returns a websocket dialer that connects from src (nil: any).
func dialer(src net.IP) *websocket.Dialer {
	nd := &net.Dialer{Timeout: 15 * time.Second}
	if src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  512,
		WriteBufferPool:  writePool,
	}
}

var writePool = &sync.Pool{}

// sourceAddr is the source address of connection i when dialing u, or nil
// when u is not a loopback IPv4 host or n is 0.
func sourceAddr(u string, i, n int) net.IP {
	if n == 0 {
		return nil
	}
	pu, err := url.Parse(u)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(pu.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+i%n))
}

// open dials, connects as c.user and joins c.room, resuming after since
// when it is set. Messages that come with the joined object (resumed ones)
// are accounted for like any other.
func (c *client) open(ctx context.Context, since string) error {
	ws, _, err := c.d.DialContext(ctx, c.url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.url, err)
	}
	c.wmu.Lock()
	c.ws = ws
	c.wmu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	_ = ws.SetReadDeadline(deadline)
	if err := c.sendRaw([]byte(`{"op":"connect","user":"` + c.user + `"}`)); err != nil {
		ws.Close()
		return err
	}
	if err := c.await(`{"op":"connected"`); err != nil {
		ws.Close()
		return fmt.Errorf("connect: %w", err)
	}
	if c.room != "" {
		join := `{"op":"join","room":"` + c.room + `"}`
		if since != "" {
			join = `{"op":"join","room":"` + c.room + `","since":"` + since + `"}`
		}
		if err := c.sendRaw([]byte(join)); err != nil {
			ws.Close()
			return err
		}
		if err := c.await(`{"op":"joined"`); err != nil {
			ws.Close()
			return fmt.Errorf("join: %w", err)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	c.alive.Store(true)
	return nil
}

// await reads frames until an object starting with prefix; an error
// object fails. Other objects are accounted for as the read loop would,
// including those after the awaited one in the same frame.
func (c *client) await(prefix string) error {
	for {
		frame, err := c.readFrame()
		if err != nil {
			return err
		}
		found := false
		var msgs, news int64
		now := time.Now().UnixNano()
		for len(frame) > 0 {
			var line []byte
			line, frame, _ = bytes.Cut(frame, []byte{'\n'})
			switch {
			case !found && bytes.HasPrefix(line, []byte(prefix)):
				found = true
			case bytes.HasPrefix(line, prefixError):
				return fmt.Errorf("server error: %.200s", line)
			default:
				m, n := c.onLine(line, now)
				msgs += m
				news += n
			}
		}
		c.count(msgs, news)
		if found {
			return nil
		}
	}
}

// readFrame reads one text frame into c.buf, reusing it.
func (c *client) readFrame() ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	c.buf = c.buf[:0]
	for {
		if len(c.buf) == cap(c.buf) {
			c.buf = append(c.buf, 0)[:len(c.buf)]
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		if errors.Is(err, io.EOF) {
			return c.buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// readLoop accounts for every object until the connection ends.
func (c *client) readLoop() {
	defer close(c.readerDone)
	defer c.alive.Store(false)
	for {
		frame, err := c.readFrame()
		if err != nil {
			if !c.w.closing.Load() && !c.cycling.Load() {
				c.w.noteDisconnect(err)
			}
			return
		}
		now := time.Now().UnixNano()
		var msgs, news int64
		for len(frame) > 0 {
			var line []byte
			line, frame, _ = bytes.Cut(frame, []byte{'\n'})
			m, n := c.onLine(line, now)
			msgs += m
			news += n
		}
		c.count(msgs, news)
	}
}

// onLine accounts for one server object: it returns 1, 1 for a new
// message, 1, 0 for a repeated one.
func (c *client) onLine(line []byte, now int64) (msgs, news int64) {
	switch {
	case bytes.HasPrefix(line, prefixMsg):
		if c.onMsg(line, now) {
			return 1, 1
		}
		return 1, 0
	case bytes.HasPrefix(line, prefixAck):
		c.acks.Add(1)
		c.w.acks.Add(1)
	case bytes.HasPrefix(line, prefixError):
		c.w.noteError(string(field(line, codeKey)))
	}
	return 0, 0
}

func (c *client) count(msgs, news int64) {
	if msgs > 0 {
		c.w.delivered.Add(msgs)
		c.w.distinct.Add(news)
	}
}

// onMsg records one msg object; it reports whether it was new.
func (c *client) onMsg(line []byte, now int64) bool {
	body := field(line, bodyKey)
	pub, rest, ok1 := cutInt(body)
	seq, rest, ok2 := cutInt(rest)
	sent, _, ok3 := cutInt(rest)
	if !ok1 || !ok2 || !ok3 || pub >= int64(len(c.w.plan.slot)) {
		c.w.noteError("bench_foreign_message")
		return false
	}
	slot := c.w.plan.slot[pub]
	room := c.w.plan.conns[c.w.plan.pubs[pub]].room
	if room != c.w.plan.conns[c.idx].room || slot >= len(c.seen) {
		c.w.noteError("bench_wrong_room")
		return false
	}
	bits := c.seen[slot]
	word := int(seq >> 6)
	if word >= len(bits) {
		bits = append(bits, make([]uint64, word+1-len(bits)+len(bits)/2)...)
		c.seen[slot] = bits
	}
	mask := uint64(1) << (seq & 63)
	if bits[word]&mask != 0 {
		c.w.dups.Add(1)
		return false
	}
	bits[word] |= mask
	c.hist.Record(time.Duration(now - sent))
	// Ids of one room reach a member in id order; keep the newest anyway.
	if id := field(line, idKey); bytes.Compare(id, c.lastID) > 0 {
		c.lastID = append(c.lastID[:0], id...)
	}
	return true
}

// send publishes message seq of publisher pub, scheduled at sched (Unix ns).
func (c *client) send(room string, pub, seq, sched int64, bodyBytes int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.down {
		return errDown
	}
	b := c.wbuf[:0]
	b = append(b, `{"op":"send","room":"`...)
	b = append(b, room...)
	b = append(b, `","cid":"`...)
	b = strconv.AppendInt(b, pub, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `","body":"`...)
	start := len(b)
	b = strconv.AppendInt(b, pub, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, sched, 10)
	b = append(b, ':')
	for len(b)-start < bodyBytes {
		b = append(b, 'x')
	}
	b = append(b, `"}`...)
	c.wbuf = b
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return err
	}
	c.sends++
	return nil
}

func (c *client) sendRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// field returns the string value after key, up to the next quote.
func field(line, key []byte) []byte {
	i := bytes.Index(line, key)
	if i < 0 {
		return nil
	}
	v := line[i+len(key):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		v = v[:j]
	}
	return v
}

// cutInt parses a decimal integer ended by ':' and returns the rest.
func cutInt(s []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return 0, s, false
	}
	return n, s[i+1:], true
}

// reopen closes the connection and opens it again as the same user,
// resuming its room after the newest message it received (or since,
// when it received none). Sends scheduled meanwhile are skipped; those
// already written are waited for to be acked, so that none is lost with
// the socket.
func (c *client) reopen(ctx context.Context, since string) error {
	c.wmu.Lock()
	c.down = true
	sends := c.sends
	c.wmu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); c.acks.Load() < sends && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	c.cycling.Store(true)
	c.closeWS()
	<-c.readerDone
	if len(c.lastID) > 0 {
		since = string(c.lastID)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.open(ctx, since); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		return err // the client stays down
	}
	c.cycling.Store(false)
	c.startReader()
	c.wmu.Lock()
	c.down = false
	c.wmu.Unlock()
	return nil
}

// startReader runs the read loop of the current connection.
func (c *client) startReader() {
	c.readerDone = make(chan struct{})
	c.w.readers.Add(1)
	go func() { defer c.w.readers.Done(); c.readLoop() }()
}

func (c *client) closeWS() {
	c.wmu.Lock()
	ws := c.ws
	c.wmu.Unlock()
	if ws != nil {
		_ = ws.Close()
	}
}
