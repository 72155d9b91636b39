package gateway

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clientFrame is a masked client frame with opcode op and payload p.
func clientFrame(op byte, p string) []byte {
	mask := [4]byte{1, 2, 3, 4}
	f := []byte{0x80 | op, 0x80 | byte(len(p))}
	f = append(f, mask[:]...)
	for i := 0; i < len(p); i++ {
		f = append(f, p[i]^mask[i%4])
	}
	return f
}

func TestSkipPong(t *testing.T) {
	pong := clientFrame(websocket.PongMessage, "")
	pongPayload := clientFrame(websocket.PongMessage, "keepalive")
	text := clientFrame(websocket.TextMessage, `{"op":"ping"}`)
	unmasked := []byte{0x80 | websocket.PongMessage, 0}
	for _, tc := range []struct {
		name    string
		in      []byte
		skipped bool
		left    int
	}{
		{"pong", pong, true, 0},
		{"pong with payload, then text", append(append([]byte{}, pongPayload...), text...), true, len(text)},
		{"text", text, false, len(text)},
		{"unmasked pong", unmasked, false, len(unmasked)},
		{"truncated pong", pongPayload[:5], false, 5},
		{"ping", clientFrame(websocket.PingMessage, ""), false, 6},
	} {
		w := &idleWait{br: bufio.NewReaderSize(bytes.NewReader(tc.in), readBufSize)}
		if got := w.skipPong(); got != tc.skipped {
			t.Errorf("%s: skipped %v, want %v", tc.name, got, tc.skipped)
		}
		if n := w.br.Buffered(); n != tc.left {
			t.Errorf("%s: %d bytes left buffered, want %d", tc.name, n, tc.left)
		}
	}
}

// TestIdleConnectionStaysOnKeepalive checks the shallow read loop on a
// real socket: pongs alone keep an idle connection open well past the
// idle timeout, frames sent meanwhile are answered, and a client that
// neither sends nor answers pings is closed for idleness.
func TestIdleConnectionStaysOnKeepalive(t *testing.T) {
	g := testGateway()
	g.cfg.Limits.IdleTimeout = 2 * time.Second
	g.cfg.Limits.PingInterval = 200 * time.Millisecond
	g.up = websocket.Upgrader{WriteBufferSize: maxBatchBytes, WriteBufferPool: &g.writePool}
	type served struct {
		c      *conn
		closed chan closeReason
	}
	conns := make(chan served, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &captureReader{ResponseWriter: w}
		ws, err := g.up.Upgrade(cw, r, nil)
		if err != nil {
			return
		}
		c := newConn(g, ws, "test")
		c.idle = newIdleWait(ws, cw.br)
		s := served{c, make(chan closeReason, 1)}
		conns <- s
		c.serve(context.Background())
		s.closed <- c.whyClosed()
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/"

	// A client that reads (gorilla answers pings while reading) and
	// sends a ping op each second, for three idle timeouts.
	cl, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s := <-conns
	if s.c.idle == nil {
		t.Fatalf("no shallow wait on a plain TCP connection (%s)", runtime.GOOS)
	}
	pongs := make(chan int, 100)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := cl.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			pongs <- strings.Count(string(data), `"op":"pong"`)
		}
	}()
	got := 0
	for i := 0; i < 6; i++ {
		if err := cl.WriteMessage(websocket.TextMessage, []byte(`{"op":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		tick := time.After(time.Second)
	wait:
		for {
			select {
			case n := <-pongs:
				got += n
			case err := <-readErr:
				t.Fatalf("closed while the client answered pings: %v (server: %q)", err, s.c.whyClosed())
			case <-tick:
				break wait
			}
		}
	}
	if got != 6 {
		t.Fatalf("%d pong ops answered, want 6", got)
	}
	select {
	case r := <-s.closed:
		t.Fatalf("closed: %s", r)
	default:
	}

	// A client that never reads, so never answers a ping.
	mute, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	m := <-conns
	select {
	case r := <-m.closed:
		if r != "idle_timeout" {
			t.Fatalf("silent client closed for %q, want idle_timeout", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a silent client was not closed for idleness")
	}
}
