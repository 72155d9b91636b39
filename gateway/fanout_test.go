package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/natter-chat/natter/protocol"
)

// testGateway is a Gateway with just what the write path uses.
func testGateway() *Gateway {
	g := &Gateway{cfg: Config{Limits: DefaultLimits}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), met: newMetrics()}
	g.framePool.New = func() any { b := make([]byte, 0, frameBufSize); return &b }
	g.hub = newHub(oneConn(nil), "gw-test", "local", time.Second, nil, g.log, g.met)
	return g
}

// wsPair is a gateway conn over a real WebSocket, and the client's end.
type wsPair struct {
	c      *conn
	client *websocket.Conn
}

// dialPairs opens n WebSocket connections to an in-process server and
// returns the server-side conns (not yet serving) and client ends.
func dialPairs(t testing.TB, g *Gateway, n int) []wsPair {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: maxBatchBytes, WriteBufferPool: &g.writePool}
	got := make(chan *websocket.Conn, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err == nil {
			got <- ws
		}
	}))
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	pairs := make([]wsPair, n)
	for i := range pairs {
		cl, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		pairs[i] = wsPair{c: newConn(g, <-got, "test"), client: cl}
		pairs[i].c.user = "u"
	}
	t.Cleanup(func() {
		for _, p := range pairs {
			p.client.Close()
			p.c.ws.Close()
		}
	})
	return pairs
}

// countObjects reads the client ends and counts the '\n'-separated
// objects they receive.
func countObjects(pairs []wsPair, n *atomic.Int64, wg *sync.WaitGroup) {
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := p.client.ReadMessage()
				if err != nil {
					return
				}
				n.Add(int64(bytes.Count(data, newline) + 1))
			}
		}()
	}
}

var benchFrame = []byte(`{"op":"msg","room":"lobby","id":"01M8JGN9YK9T4JHN4RZGFCRC7E","user":"alice","body":"hello there, this is a typical chat message of about a hundred bytes, give or take a few","ts":1795917785043,"region":"local"}`)

// TestFanoutDeliversEveryFrameOnceInOrder checks the batching write path:
// every member gets every frame once, in order, however they are packed.
func TestFanoutDeliversEveryFrameOnceInOrder(t *testing.T) {
	g := testGateway()
	pairs := dialPairs(t, g, 20)
	r := &room{name: "lobby", conns: map[*conn]struct{}{}}
	for _, p := range pairs {
		r.conns[p.c] = struct{}{}
	}
	const msgs = 500
	var wg sync.WaitGroup
	errs := make(chan string, len(pairs))
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := 0
			for next < msgs {
				_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := p.client.ReadMessage()
				if err != nil {
					errs <- err.Error()
					return
				}
				for _, line := range bytes.Split(data, newline) {
					if want := []byte(`{"n":` + itoa(next) + `}`); !bytes.Equal(line, want) {
						errs <- "got " + string(line) + " want " + string(want)
						return
					}
					next++
				}
			}
		}()
	}
	for i := 0; i < msgs; i++ {
		r.fanout(g.hub, []byte(`{"n":`+itoa(i)+`}`), "", "")
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestFlushLoopEndsWhenIdle checks that the write side holds no goroutine
// once everything queued is written, and starts one again for new frames.
func TestFlushLoopEndsWhenIdle(t *testing.T) {
	g := testGateway()
	pairs := dialPairs(t, g, 5)
	r := &room{name: "lobby", conns: map[*conn]struct{}{}}
	for _, p := range pairs {
		r.conns[p.c] = struct{}{}
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 50; i++ {
			r.fanout(g.hub, []byte(`{"n":`+itoa(i)+`}`), "", "")
		}
		for _, p := range pairs {
			for got := 0; got < 50; {
				_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := p.client.ReadMessage()
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				got += bytes.Count(data, newline) + 1
			}
		}
		waitFor(t, func() bool { return g.flushers.Load() == 0 }, "flush loops to end after round %d (running: %d)", round, g.flushers.Load())
	}
}

// TestStopClosesWithTheReason checks that stopping a connection sends the
// close frame with the reason's code and ends the write side.
func TestStopClosesWithTheReason(t *testing.T) {
	for _, tc := range []struct {
		reason closeReason
		code   int
	}{
		{reasonShuttingDown, websocket.CloseGoingAway},
		{reasonSlowConsumer, websocket.ClosePolicyViolation},
		{reasonClosedByServer, websocket.CloseNormalClosure},
	} {
		g := testGateway()
		p := dialPairs(t, g, 1)[0]
		p.c.enqueue([]byte(`{"op":"last"}`))
		p.c.stop(tc.reason)
		select {
		case <-p.c.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the write side did not end", tc.reason)
		}
		_ = p.client.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := p.client.ReadMessage()
		if err != nil || string(data) != `{"op":"last"}` {
			t.Fatalf("%s: frame before the close: %q, %v", tc.reason, data, err)
		}
		_, _, err = p.client.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != tc.code || ce.Text != string(tc.reason) {
			t.Fatalf("%s: got %v, want close %d %q", tc.reason, err, tc.code, tc.reason)
		}
		// Nothing is queued or written after the end.
		waitFor(t, func() bool { return g.flushers.Load() == 0 }, "the flush loop to return")
		p.c.enqueue([]byte(`{"op":"late"}`))
		p.c.mu.Lock()
		queued := len(p.c.queue)
		p.c.mu.Unlock()
		if queued != 0 || g.flushers.Load() != 0 {
			t.Fatalf("%s: after the end: %d queued, %d flush loops", tc.reason, queued, g.flushers.Load())
		}
	}
}

// TestQueueOverItsBoundCutsTheConnection checks the slow-consumer cut:
// a member that does not read is closed instead of queueing without end.
func TestQueueOverItsBoundCutsTheConnection(t *testing.T) {
	g := testGateway()
	g.cfg.Limits.QueueBytes = 64 << 10
	p := dialPairs(t, g, 1)[0]
	big := bytes.Repeat([]byte("x"), 1000)
	// The client never reads: the socket buffers fill, writes block and
	// the queue grows past its bound.
	for i := 0; i < 100000 && !p.c.isClosing(); i++ {
		p.c.enqueue(big)
	}
	if got := p.c.whyClosed(); got != reasonSlowConsumer {
		t.Fatalf("close reason %q, want %s", got, protocol.CodeSlowConsumer)
	}
	p.client.Close() // unblocks a write stuck on the full socket
	select {
	case <-p.c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the write side did not end")
	}
}

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		in      string
		limit   int
		want    string
		tooLong bool
	}{
		{"", 10, "", false},
		{"hello", 10, "hello", false},
		{"0123456789", 10, "0123456789", false},
		{"0123456789a", 10, "0123456789a", true},
		{strings.Repeat("y", 5000), 4096, strings.Repeat("y", 4097), true},
		{strings.Repeat("z", 3000), 4096, strings.Repeat("z", 3000), false},
	} {
		// A reader that hands out a few bytes at a time, as a socket does.
		got, tooLong, err := readFrame(iotest.OneByteReader(strings.NewReader(tc.in)), make([]byte, 0, 4), tc.limit)
		if err != nil || string(got) != tc.want || tooLong != tc.tooLong {
			t.Errorf("readFrame(%d bytes, %d) = %d bytes, %v, %v; want %d bytes, %v", len(tc.in), tc.limit, len(got), tooLong, err, len(tc.want), tc.tooLong)
		}
	}
	if _, _, err := readFrame(iotest.ErrReader(io.ErrUnexpectedEOF), nil, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error: got %v", err)
	}
}

func waitFor(t *testing.T, ok func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}

// BenchmarkFanoutQueue measures queueing one frame to 1,000 members, the
// work a room's NATS goroutine does per message (no writes: the members'
// flush loops are held off).
func BenchmarkFanoutQueue(b *testing.B) {
	g := testGateway()
	r := &room{name: "lobby", conns: map[*conn]struct{}{}}
	conns := make([]*conn, 1000)
	for i := range conns {
		c := newConn(g, nil, "bench")
		c.flushing = true // as if a flush loop were running
		conns[i] = c
		r.conns[c] = struct{}{}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r.fanout(g.hub, benchFrame, "01M8JGN9YK9T4JHN4RZGFCRC7E", "")
		if n++; n%100 == 0 {
			for _, c := range conns {
				c.queue, c.queued = c.queue[:0], 0
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(conns)), "ns/delivery")
}

// BenchmarkFanoutWrite measures fan-out to 100 members over real loopback
// WebSockets: queueing, batching, framing and the writes, until every
// member has read every message.
func BenchmarkFanoutWrite(b *testing.B) {
	g := testGateway()
	pairs := dialPairs(b, g, 100)
	r := &room{name: "lobby", conns: map[*conn]struct{}{}}
	for _, p := range pairs {
		r.conns[p.c] = struct{}{}
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	countObjects(pairs, &got, &wg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.fanout(g.hub, benchFrame, "", "")
	}
	want := int64(b.N * len(pairs))
	for got.Load() < want && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got.Load() < want {
		b.Fatalf("delivered %d of %d", got.Load(), want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
}
