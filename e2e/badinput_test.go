// Bad input: each case gets a documented error code, the connection stays
// usable and the process stays up.

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestBadInputGetsErrorFramesAndHarmsNothing(t *testing.T) {
	b := brokers()[0] // the protocol layer is the same whatever the broker
	p, db := startCore(t, b)
	c := dial(t, p)

	// Before connect.
	c.sendJSON(map[string]any{"op": "join", "room": "r"})
	expectError(t, c, "not_connected")
	c.connect("tester")
	c.join("r", "")
	c.sendJSON(map[string]any{"op": "connect", "user": "again"})
	expectError(t, c, "already_connected")

	big := strings.Repeat("x", 17<<10)
	cases := []struct {
		name string
		raw  string // sent as a text frame
		code string
	}{
		{"unknown op", `{"op":"dance"}`, "unknown_op"},
		{"missing op", `{"room":"r"}`, "unknown_op"},
		{"malformed JSON", `{"op":"send",`, "bad_frame"},
		{"not an object", `[1,2,3]`, "bad_frame"},
		{"wrong field type", `{"op":"join","room":5}`, "bad_frame"},
		{"deeply nested", strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100), "bad_frame"},
		{"oversized frame", `{"op":"send","room":"r","cid":"big","body":"` + big + `"}`, "too_large"},
		{"room with dot", `{"op":"join","room":"a.b"}`, "invalid_room"},
		{"room star", `{"op":"join","room":"*"}`, "invalid_room"},
		{"room gt", `{"op":"join","room":">"}`, "invalid_room"},
		{"room empty", `{"op":"join","room":""}`, "invalid_room"},
		{"room 65 chars", `{"op":"join","room":"` + strings.Repeat("a", 65) + `"}`, "invalid_room"},
		{"room with space", `{"op":"join","room":"a b"}`, "invalid_room"},
		{"room look-alike", `{"op":"join","room":"rооm"}`, "invalid_room"},
		{"send to room not joined", `{"op":"send","room":"other","cid":"x1","body":"hi"}`, "not_joined"},
		{"send without cid", `{"op":"send","room":"r","body":"hi"}`, "invalid_cid"},
		{"cid too long", `{"op":"send","room":"r","cid":"` + strings.Repeat("c", 65) + `","body":"hi"}`, "invalid_cid"},
		{"empty body", `{"op":"send","room":"r","cid":"e1","body":""}`, "invalid_body"},
		{"body with NUL", `{"op":"send","room":"r","cid":"n1","body":"a\u0000b"}`, "invalid_body"},
		{"body too long", `{"op":"send","room":"r","cid":"l1","body":"` + strings.Repeat("y", 4097) + `"}`, "invalid_body"},
		{"history absurd limit", `{"op":"history","room":"r","limit":1000000}`, "invalid_limit"},
		{"history zero limit", `{"op":"history","room":"r","limit":0}`, "invalid_limit"},
		{"history negative limit", `{"op":"history","room":"r","limit":-5}`, "invalid_limit"},
		{"history negative limit", `{"op":"history","room":"r","limit":-1}`, "invalid_limit"},
		{"history bad before", `{"op":"history","room":"r","before":"'; DROP TABLE messages;--"}`, "invalid_id"},
		{"join bad since", `{"op":"join","room":"s","since":"not-an-id"}`, "invalid_id"},
		{"typing in room not joined", `{"op":"typing","room":"other"}`, "not_joined"},
		{"leave room not joined", `{"op":"leave","room":"other"}`, "not_joined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(websocket.TextMessage, []byte(tc.raw))
			expectError(t, c, tc.code)
			assertAlive(t, c)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		c.sendRaw(websocket.BinaryMessage, []byte{0, 1, 2})
		expectError(t, c, "bad_frame")
		assertAlive(t, c)
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		c.sendRaw(websocket.TextMessage, []byte("{\"op\":\"send\",\"room\":\"r\",\"cid\":\"u1\",\"body\":\"\xff\xfe\"}"))
		expectError(t, c, "bad_frame")
		assertAlive(t, c)
	})
	t.Run("frame over the hard limit closes the connection only", func(t *testing.T) {
		victim := dial(t, p)
		victim.connect("victim")
		// The server may close while the frame is still being written, so
		// the write itself may fail; the close is what matters.
		victim.wmu.Lock()
		_ = victim.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("z"), 2<<20))
		victim.wmu.Unlock()
		select {
		case <-victim.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not closed after a 2 MiB frame")
		}
		if !websocket.IsCloseError(victim.err, websocket.CloseMessageTooBig) {
			t.Errorf("close error %v, want 1009", victim.err)
		}
		assertAlive(t, c)
	})

	// HTTP API.
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"bad room", "POST", "/api/rooms/a.b/messages", `{"user":"u","body":"b"}`, 400, "invalid_room"},
		{"bad json", "POST", "/api/rooms/r/messages", `{"user":`, 400, "bad_frame"},
		{"bad user", "POST", "/api/rooms/r/messages", `{"user":"a b","body":"b"}`, 400, "invalid_user"},
		{"empty body", "POST", "/api/rooms/r/messages", `{"user":"u","body":""}`, 400, "invalid_body"},
		{"huge post", "POST", "/api/rooms/r/messages", `{"user":"u","body":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large"},
		{"bad limit", "GET", "/api/rooms/r/messages?limit=0", "", 400, "invalid_limit"},
		{"absurd limit", "GET", "/api/rooms/r/messages?limit=99999999999999999999", "", 400, "invalid_limit"},
		{"bad before", "GET", "/api/rooms/r/messages?before=zzz", "", 400, "invalid_id"},
		{"presence bad room", "GET", "/api/rooms/%2A/presence", "", 400, "invalid_room"},
	} {
		t.Run("http "+tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, p.url(tc.path), strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e frame
			_ = jsonDecode(resp.Body, &e)
			if resp.StatusCode != tc.status || e.Code != tc.code {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, e.Code, tc.status, tc.code)
			}
		})
	}

	// Nothing accepted was harmed: a good message still goes through and
	// is stored, and it is the only row.
	c.sendJSON(map[string]any{"op": "send", "room": "r", "cid": "good", "body": "still here"})
	c.expect("ack")
	checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if rows, _ := pgCount(t, db, "r"); rows != 1 {
			return fmt.Errorf("%d rows, want 1", rows)
		}
		return nil
	})
}

// TestRetryWithSameCIDNeverDuplicates: a resend of a cid, on the same
// connection or after a reconnect, is acked with the first id and neither
// delivered nor stored twice.
func TestRetryWithSameCIDNeverDuplicates(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b broker) {
		p, db := startCore(t, b)
		watcher := dial(t, p)
		watcher.connect("watcher")
		watcher.join("dup", "")
		c := dial(t, p)
		c.connect("sender")
		c.join("dup", "")
		send := func(c *client) frame {
			c.sendJSON(map[string]any{"op": "send", "room": "dup", "cid": "same", "body": "once"})
			return c.expect("ack")
		}
		first := send(c)
		again := send(c)
		c.close()
		c2 := dial(t, p)
		c2.connect("sender")
		c2.join("dup", "")
		third := send(c2)
		if again.ID != first.ID || third.ID != first.ID {
			t.Fatalf("acks %s %s %s, want one id", first.ID, again.ID, third.ID)
		}
		watcher.sendJSON(map[string]any{"op": "ping"})
		msgs := 0
		for {
			f := watcher.next(10 * time.Second)
			if f.Op == "msg" {
				msgs++
			}
			if f.Op == "pong" {
				break
			}
		}
		if msgs != 1 {
			t.Errorf("watcher saw %d messages, want 1", msgs)
		}
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if rows, _ := pgCount(t, db, "dup"); rows != 1 {
				return fmt.Errorf("%d rows, want 1", rows)
			}
			return nil
		})
	})
}

func expectError(t *testing.T, c *client, code string) {
	t.Helper()
	f := c.next(10 * time.Second)
	for f.Op == "presence" || f.Op == "typing" {
		f = c.next(10 * time.Second)
	}
	if f.Op != "error" || f.Code != code {
		t.Fatalf("got %s %s (%s), want error %s", f.Op, f.Code, f.Message, code)
	}
	if f.Message == "" {
		t.Errorf("error %s has no message", code)
	}
}

// assertAlive checks the connection still answers.
func assertAlive(t *testing.T, c *client) {
	t.Helper()
	c.sendJSON(map[string]any{"op": "ping"})
	for {
		f := c.next(10 * time.Second)
		if f.Op == "pong" {
			return
		}
		if f.Op == "error" {
			t.Fatalf("unexpected error %s: %s", f.Code, f.Message)
		}
	}
}
