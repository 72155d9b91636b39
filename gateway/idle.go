// Waiting for a client frame on a shallow stack. The read loop of an idle
// connection parks here rather than inside the WebSocket library, so it
// keeps the smallest goroutine stack (readLoop explains why that matters):
// it asks the socket whether data is waiting, without reading it, and
// parks in the network poller until some is. For that the gateway owns the
// connection's buffered reader (it hands the upgrader one through the
// hijack, below), so it knows when a frame is already buffered and no
// wait is needed.

package gateway

import (
	"bufio"
	"net"
	"net/http"
	"syscall"

	"github.com/gorilla/websocket"
)

// readBufSize is each connection's read buffer. Client frames are small
// (a send is ~200 bytes), a larger one is read past the buffer, and every
// idle connection holds one; the upgrader reuses a hijacked reader only
// above 256 bytes.
const readBufSize = 288

// idleWait is a connection's buffered reader and its socket.
type idleWait struct {
	br *bufio.Reader
	rc syscall.RawConn
}

// newIdleWait returns the wait for ws, or nil where the socket is not a
// plain one (TLS keeps decrypted data of its own, which the socket cannot
// tell about) or the reader was not captured.
func newIdleWait(ws *websocket.Conn, br *bufio.Reader) *idleWait {
	if br == nil || !peekSupported {
		return nil
	}
	sc, ok := ws.UnderlyingConn().(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &idleWait{br: br, rc: rc}
}

// wait returns once the socket has data (or is closed or failed, which
// the read that follows reports), or with the read deadline's error.
func (w *idleWait) wait() error {
	return w.rc.Read(func(fd uintptr) bool { return !peekWouldBlock(fd) })
}

// skipPong consumes a complete pong frame at the head of the buffer and
// reports whether it did; anything else is left to the library. It may
// wait for a frame header's first bytes, which the socket has.
func (w *idleWait) skipPong() bool {
	h, err := w.br.Peek(2)
	// A client's frames are masked: FIN and opcode, mask bit and a
	// length up to 125 (control frames), 4 mask bytes, the payload.
	if err != nil || h[0] != 0x80|websocket.PongMessage || h[1]&0x80 == 0 || h[1]&0x7f > 125 {
		return false
	}
	n := 2 + 4 + int(h[1]&0x7f)
	if _, err := w.br.Peek(n); err != nil {
		return false
	}
	_, _ = w.br.Discard(n)
	return true
}

// captureReader is the ResponseWriter handed to the upgrader: its Hijack
// gives the connection a buffered reader the gateway keeps.
type captureReader struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (w *captureReader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		return conn, brw, err // the upgrader refuses early data itself
	}
	w.br = bufio.NewReaderSize(conn, readBufSize)
	return conn, bufio.NewReadWriter(w.br, brw.Writer), nil
}
