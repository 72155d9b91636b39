// The hostile-input suite: a real natter that requires tokens, with tight
// limits, is sent what an attacker would send. Each case asserts the
// exact error (frame code, HTTP status, close code) and that the server
// is still up and serving a bystander.

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
)

func TestHostileInput(t *testing.T) {
	const connsPerIP, roomsPerConn, burst = 100, 100, 10
	k := newTokenKeys(t)
	p, db := startHostile(t, k,
		"--max-conns-per-ip", fmt.Sprint(connsPerIP), "--max-conns-per-user", "3",
		"--max-rooms-per-conn", fmt.Sprint(roomsPerConn),
		"--rate-per-conn", "5", "--burst-per-conn", fmt.Sprint(burst), "--rate-per-user", "8", "--burst-per-user", "15",
		"--handshake-timeout", "2s")
	everything := []string{"*"}
	ctl := dialToken(t, p, hs(t, claims("control", everything, everything, nil)))

	// Authentication: each case on a fresh connection (an unconnected
	// one is closed after the 2 s handshake timeout).
	t.Run("tokens", func(t *testing.T) {
		otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		good := claims("mallory", everything, nil, nil)
		hour := time.Hour
		for _, tc := range []struct {
			name  string
			frame map[string]any
			code  string
			msg   string
		}{
			{"no token", map[string]any{"op": "connect"}, "unauthorized", "token is required"},
			{"a user name only (open mode is off)", map[string]any{"op": "connect", "user": "mallory"}, "unauthorized", "token is required"},
			{"garbage token", map[string]any{"op": "connect", "token": "garbage"}, "unauthorized", "malformed"},
			{"alg none", map[string]any{"op": "connect", "token": unsignedToken(good)}, "unauthorized", "algorithm is not accepted"},
			{"HS256 signed with the RSA public key", map[string]any{"op": "connect", "token": signToken(t, jwt.SigningMethodHS256, k.rsaPubPEM, good)}, "unauthorized", "signature is invalid"},
			{"RS256 signed by an unknown key", map[string]any{"op": "connect", "token": signToken(t, jwt.SigningMethodRS256, otherRSA, good)}, "unauthorized", "signature is invalid"},
			{"expired", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"exp": time.Now().Add(-hour).Unix()}))}, "token_expired", "expired"},
			{"not yet valid", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"nbf": time.Now().Add(hour).Unix()}))}, "unauthorized", "not valid yet"},
			{"issued in the future", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"iat": time.Now().Add(hour).Unix()}))}, "unauthorized", "issued in the future"},
			{"wrong issuer", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"iss": "someone-else"}))}, "unauthorized", "issuer"},
			{"wrong audience", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"aud": "other-app"}))}, "unauthorized", "audience"},
			{"no exp", map[string]any{"op": "connect", "token": hs(t, claims("mallory", everything, nil, map[string]any{"exp": nil}))}, "unauthorized", "no exp"},
			{"sub breaks the name rule", map[string]any{"op": "connect", "token": hs(t, claims("a.b", everything, nil, nil))}, "unauthorized", "invalid user"},
			{"wildcard room pattern", map[string]any{"op": "connect", "token": hs(t, claims("mallory", []string{"natter.>"}, nil, nil))}, "unauthorized", "invalid room pattern"},
			{"frame before connect", map[string]any{"op": "join", "room": "lobby"}, "not_connected", "connect first"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, p)
				c.sendJSON(tc.frame)
				f := c.next(10 * time.Second)
				if f.Op != "error" || f.Code != tc.code || !strings.Contains(f.Message, tc.msg) {
					t.Fatalf("got %s %s %q, want error %s containing %q", f.Op, f.Code, f.Message, tc.code, tc.msg)
				}
				assertAlive(t, c)
				c.close()
				assertUp(t, p, ctl)
			})
		}
		t.Run("a refused token leaves the connection usable", func(t *testing.T) {
			c := dial(t, p)
			c.sendJSON(map[string]any{"op": "connect", "token": unsignedToken(good)})
			expectError(t, c, "unauthorized")
			c.sendJSON(map[string]any{"op": "connect", "token": hs(t, good)})
			c.expect("connected")
		})
		for _, tc := range []struct {
			alg   string
			token string
		}{
			{"RS256", signToken(t, jwt.SigningMethodRS256, k.rsa, claims("rsa-user", everything, nil, nil))},
			{"EdDSA", signToken(t, jwt.SigningMethodEdDSA, k.ed, claims("ed-user", everything, nil, nil))},
			{"HS256", hs(t, good)},
		} {
			t.Run("valid "+tc.alg, func(t *testing.T) {
				c := dial(t, p)
				c.sendJSON(map[string]any{"op": "connect", "token": tc.token})
				if f := c.expect("connected"); f.User == "" {
					t.Errorf("connected %+v", f)
				}
				c.close()
			})
		}
	})

	t.Run("permissions", func(t *testing.T) {
		c := dialToken(t, p, hs(t, claims("reader", []string{"news", "team-*"}, []string{"lobby"}, nil)))
		for _, tc := range []struct {
			name  string
			frame map[string]any
			code  string
		}{
			{"join a room not in the claim", map[string]any{"op": "join", "room": "secret"}, "forbidden"},
			{"join outside the prefix pattern", map[string]any{"op": "join", "room": "teamblue"}, "forbidden"},
			{"history of a room not in the claim", map[string]any{"op": "history", "room": "secret"}, "forbidden"},
			{"send to a room not in the claim", map[string]any{"op": "send", "room": "secret", "cid": "s1", "body": "x"}, "forbidden"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.sendJSON(tc.frame)
				expectError(t, c, tc.code)
				assertUp(t, p, ctl)
			})
		}
		c.join("news", "")
		c.join("team-blue", "")
		c.join("lobby", "")
		t.Run("publish to a read-only room", func(t *testing.T) {
			c.sendJSON(map[string]any{"op": "send", "room": "news", "cid": "ro1", "body": "let me in"})
			expectError(t, c, "forbidden")
			assertUp(t, p, ctl)
		})
		t.Run("typing in a read-only room", func(t *testing.T) {
			c.sendJSON(map[string]any{"op": "typing", "room": "team-blue"})
			expectError(t, c, "forbidden")
			assertUp(t, p, ctl)
		})
		c.sendJSON(map[string]any{"op": "send", "room": "lobby", "cid": "ok1", "body": "allowed"})
		c.expect("ack")
		t.Run("refresh for another user", func(t *testing.T) {
			c.sendJSON(map[string]any{"op": "refresh", "token": hs(t, claims("someone-else", everything, everything, nil))})
			expectError(t, c, "unauthorized")
			assertUp(t, p, ctl)
		})
		t.Run("refresh that drops a room leaves it", func(t *testing.T) {
			c.sendJSON(map[string]any{"op": "refresh", "token": hs(t, claims("reader", []string{"news"}, []string{"lobby"}, nil))})
			left := c.expect("left")
			if left.Room != "team-blue" {
				t.Errorf("left %q, want team-blue", left.Room)
			}
			c.expect("refreshed")
			c.sendJSON(map[string]any{"op": "join", "room": "team-blue"})
			expectError(t, c, "forbidden")
		})
	})

	t.Run("session ends at exp unless refreshed", func(t *testing.T) {
		exp := time.Now().Add(3 * time.Second).Unix()
		short := func(user string) string {
			return hs(t, claims(user, everything, everything, map[string]any{"exp": exp}))
		}
		lapsing := dialToken(t, p, short("lapsing"))
		kept := dialToken(t, p, short("kept"))
		kept.sendJSON(map[string]any{"op": "refresh", "token": hs(t, claims("kept", everything, everything, nil))})
		kept.expect("refreshed")
		expectError(t, lapsing, "token_expired")
		expectClose(t, lapsing, websocket.ClosePolicyViolation, "token_expired")
		// Both sessions had the same exp; the refreshed one outlives it.
		assertAlive(t, kept)
		assertUp(t, p, ctl)
	})

	t.Run("connections per user", func(t *testing.T) {
		tok := hs(t, claims("multi", everything, everything, nil))
		var cs []*client
		for i := 0; i < 3; i++ {
			cs = append(cs, dialToken(t, p, tok))
		}
		extra := dial(t, p)
		extra.sendJSON(map[string]any{"op": "connect", "token": tok})
		expectError(t, extra, "too_many_connections")
		extra.close()
		cs[0].close()
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			again := dial(t, p)
			defer again.close()
			again.sendJSON(map[string]any{"op": "connect", "token": tok})
			if f := again.next(10 * time.Second); f.Op != "connected" {
				return fmt.Errorf("after a close: %s %s", f.Op, f.Code)
			}
			return nil
		})
		assertUp(t, p, ctl)
	})

	t.Run("input", func(t *testing.T) {
		c := dialToken(t, p, hs(t, claims("prober", everything, everything, nil)))
		c.join("lobby", "")
		cases := []struct {
			name string
			raw  string
			code string
		}{
			{"room *", `{"op":"join","room":"*"}`, "invalid_room"},
			{"room >", `{"op":"join","room":">"}`, "invalid_room"},
			{"room a.b", `{"op":"join","room":"a.b"}`, "invalid_room"},
			{"room a b", `{"op":"join","room":"a b"}`, "invalid_room"},
			{"room ..", `{"op":"join","room":".."}`, "invalid_room"},
			{"room of 65 chars", `{"op":"join","room":"` + strings.Repeat("r", 65) + `"}`, "invalid_room"},
			{"room with Cyrillic look-alikes", `{"op":"join","room":"lоbby"}`, "invalid_room"},
			{"room with fullwidth letters", `{"op":"join","room":"ｌobby"}`, "invalid_room"},
			{"room with a zero-width space", `{"op":"join","room":"lob\u200bby"}`, "invalid_room"},
			{"send to a wildcard room", `{"op":"send","room":"natter.room.>","cid":"w1","body":"x"}`, "invalid_room"},
			{"deeply nested JSON", strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000), "bad_frame"},
			{"1 MiB frame", `{"op":"send","room":"lobby","cid":"big","body":"` + strings.Repeat("x", 1<<20-60) + `"}`, "too_large"},
			{"SQL in before", `{"op":"history","room":"lobby","before":"' OR 1=1; DROP TABLE messages;--"}`, "invalid_id"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if len(tc.raw) > 1<<20 {
					t.Fatalf("case frame is %d bytes, over 1 MiB", len(tc.raw))
				}
				c.sendRaw(websocket.TextMessage, []byte(tc.raw))
				expectError(t, c, tc.code)
				assertAlive(t, c)
				assertUp(t, p, ctl)
			})
		}
		t.Run("invalid UTF-8", func(t *testing.T) {
			c.sendRaw(websocket.TextMessage, []byte("{\"op\":\"send\",\"room\":\"lobby\",\"cid\":\"u\",\"body\":\"\xc3\x28\"}"))
			expectError(t, c, "bad_frame")
			assertUp(t, p, ctl)
		})
		t.Run("binary frame", func(t *testing.T) {
			c.sendRaw(websocket.BinaryMessage, []byte(`{"op":"ping"}`))
			expectError(t, c, "bad_frame")
			assertUp(t, p, ctl)
		})
	})

	t.Run("10,000 joins", func(t *testing.T) {
		c := dialToken(t, p, hs(t, claims("joiner", everything, nil, nil)))
		const n = 10000
		go func() {
			c.wmu.Lock()
			defer c.wmu.Unlock()
			for i := 0; i < n; i++ {
				if c.ws.WriteJSON(map[string]any{"op": "join", "room": fmt.Sprintf("j%d", i)}) != nil {
					return // the reads below fail the test
				}
			}
		}()
		joined, refused := 0, 0
		for joined+refused < n {
			f := c.next(30 * time.Second)
			switch {
			case f.Op == "joined":
				joined++
			case f.Op == "error" && f.Code == "too_many_rooms":
				refused++
			case f.Op == "presence":
			default:
				t.Fatalf("unexpected %s %s %s", f.Op, f.Code, f.Message)
			}
		}
		if joined != roomsPerConn || refused != n-roomsPerConn {
			t.Errorf("%d joined, %d too_many_rooms; want %d and %d", joined, refused, roomsPerConn, n-roomsPerConn)
		}
		assertAlive(t, c)
		assertUp(t, p, ctl)
	})

	t.Run("send flood is rate limited, others unaffected", func(t *testing.T) {
		flooder := dialToken(t, p, hs(t, claims("flooder", everything, everything, nil)))
		bystander := dialToken(t, p, hs(t, claims("bystander", everything, everything, nil)))
		flooder.join("flood", "")
		bystander.join("flood", "")
		const n = 300
		for i := 0; i < n; i++ {
			flooder.sendJSON(map[string]any{"op": "send", "room": "flood", "cid": fmt.Sprint("f", i), "body": "spam"})
		}
		acks, limited := 0, 0
		for acks+limited < n {
			f := flooder.next(30 * time.Second)
			switch {
			case f.Op == "ack":
				acks++
			case f.Op == "error" && f.Code == "rate_limited":
				limited++
			case f.Op == "msg" || f.Op == "presence":
			default:
				t.Fatalf("flooder got %s %s %s", f.Op, f.Code, f.Message)
			}
		}
		if limited == 0 || acks < burst {
			t.Errorf("%d acked, %d rate_limited: want at least the burst (%d) acked and some refused", acks, limited, burst)
		}
		// The bystander, in the same room, sends at its own pace: every
		// message is acked.
		for i := 0; i < 5; i++ {
			bystander.sendJSON(map[string]any{"op": "send", "room": "flood", "cid": fmt.Sprint("b", i), "body": "hello"})
			for {
				f := bystander.next(30 * time.Second)
				if f.Op == "error" {
					t.Fatalf("bystander got error %s: %s", f.Code, f.Message)
				}
				if f.Op == "ack" {
					break
				}
			}
		}
		assertUp(t, p, ctl)
	})

	t.Run("a user's connections share the user's rate", func(t *testing.T) {
		tok := hs(t, claims("twin", everything, everything, nil))
		a, b := dialToken(t, p, tok), dialToken(t, p, tok)
		a.join("twins", "")
		b.join("twins", "")
		// 10 each stays within each connection's burst (10) but not
		// within the user's (15).
		for i := 0; i < burst; i++ {
			a.sendJSON(map[string]any{"op": "send", "room": "twins", "cid": fmt.Sprint("a", i), "body": "x"})
			b.sendJSON(map[string]any{"op": "send", "room": "twins", "cid": fmt.Sprint("b", i), "body": "x"})
		}
		acks, limited := 0, 0
		for _, c := range []*client{a, b} {
			for got := 0; got < burst; {
				f := c.next(30 * time.Second)
				switch {
				case f.Op == "ack":
					acks++
					got++
				case f.Op == "error" && f.Code == "rate_limited":
					limited++
					got++
				case f.Op == "msg" || f.Op == "presence":
				default:
					t.Fatalf("got %s %s %s", f.Op, f.Code, f.Message)
				}
			}
		}
		if limited == 0 || acks < 15 {
			t.Errorf("%d acked, %d rate_limited; want at least the user's burst (15) acked and some refused", acks, limited)
		}
		assertUp(t, p, ctl)
	})

	t.Run("2,000 connections from one address", func(t *testing.T) {
		const attempts, workers = 2000, 16
		// An address of its own: the rest of the suite dials from 127.0.0.1,
		// and the 2,000 ports this leaves in TIME_WAIT must not block the
		// gateways later tests start on 127.0.0.2 and up.
		src := "127.0.0.250"
		tokens := make([]string, attempts)
		for i := range tokens {
			tokens[i] = hs(t, claims(fmt.Sprint("many", i), nil, nil, nil))
		}
		var mu sync.Mutex
		var open []*websocket.Conn
		refused, other := 0, []string{}
		var wg sync.WaitGroup
		next := make(chan int)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					ws, resp, err := dialFrom(p, src, nil)
					mu.Lock()
					switch {
					case err == nil:
						open = append(open, ws)
						// Connect at once, or the handshake timeout would
						// close it and free its slot.
						_ = ws.WriteJSON(map[string]any{"op": "connect", "token": tokens[i]})
					case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
						var e frame
						if jsonDecode(resp.Body, &e) == nil && e.Code == "too_many_connections" {
							refused++
						} else {
							other = append(other, "429 with code "+e.Code)
						}
					default:
						other = append(other, fmt.Sprint(err))
					}
					mu.Unlock()
				}
			}()
		}
		for i := 0; i < attempts; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		if len(open) != connsPerIP || refused != attempts-connsPerIP || len(other) > 0 {
			t.Errorf("%d accepted, %d refused with 429 too_many_connections, others %v; want %d and %d",
				len(open), refused, other[:min(len(other), 5)], connsPerIP, attempts-connsPerIP)
		}
		assertUp(t, p, ctl)
		for _, ws := range open {
			ws.Close()
		}
		// The slots are released: the address may connect again.
		checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			ws, _, err := dialFrom(p, src, nil)
			if err != nil {
				return err
			}
			ws.Close()
			return nil
		})
	})

	t.Run("slowloris headers are cut by the handshake timeout", func(t *testing.T) {
		req := "GET /ws HTTP/1.1\r\nHost: " + p.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sent, cut := 0, false
		buf := make([]byte, 512)
		for sent < len(req) && !cut {
			if _, err := conn.Write([]byte{req[sent]}); err != nil {
				cut = true
				break
			}
			sent++
			// One byte a second: the read doubles as the pause.
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			n, err := conn.Read(buf)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if n > 0 && strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101") {
				t.Fatal("upgraded a slowloris request")
			}
			cut = true // closed (EOF/reset) or answered with an error
		}
		if !cut || sent >= len(req) {
			t.Fatalf("sent all %d header bytes at 1/s without being cut", sent)
		}
		t.Logf("cut after %d of %d header bytes", sent, len(req))
		assertUp(t, p, ctl)
	})

	t.Run("a socket that never connects is closed", func(t *testing.T) {
		c := dial(t, p)
		c.sendJSON(map[string]any{"op": "ping"}) // pings do not count
		c.expect("pong")
		expectError(t, c, "handshake_timeout")
		expectClose(t, c, websocket.ClosePolicyViolation, "handshake_timeout")
		assertUp(t, p, ctl)
	})

	t.Run("foreign Origin", func(t *testing.T) {
		_, resp, err := dialFrom(p, "127.0.0.1", http.Header{"Origin": {"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: err %v, resp %v; want 403", err, resp)
		}
		var e frame
		if jsonDecode(resp.Body, &e); e.Code != "forbidden" {
			t.Errorf("code %q, want forbidden", e.Code)
		}
		ws, _, err := dialFrom(p, "127.0.0.1", http.Header{"Origin": {"http://" + p.addr}})
		if err != nil {
			t.Fatalf("same origin refused: %v", err)
		}
		ws.Close()
		assertUp(t, p, ctl)
	})

	t.Run("HTTP API credentials", func(t *testing.T) {
		reader := hs(t, claims("api-reader", []string{"lobby"}, nil, nil))
		pub := p.url("/api/rooms/lobby/messages")
		for _, tc := range []struct {
			name, method, url, bearer, body string
			status                          int
			code                            string
		}{
			{"publish without credentials", "POST", pub, "", `{"user":"x","body":"b"}`, 401, "unauthorized"},
			{"publish with a wrong key", "POST", pub, "not-the-key-0123456789", `{"user":"x","body":"b"}`, 401, "unauthorized"},
			{"publish with a user token", "POST", pub, reader, `{"user":"x","body":"b"}`, 403, "forbidden"},
			{"publish with an alg:none token", "POST", pub, unsignedToken(claims("x", everything, everything, nil)), `{"user":"x","body":"b"}`, 401, "unauthorized"},
			{"history without credentials", "GET", pub, "", "", 401, "unauthorized"},
			{"history of a room the token lacks", "GET", p.url("/api/rooms/secret/messages"), reader, "", 403, "forbidden"},
			{"presence of a room the token lacks", "GET", p.url("/api/rooms/secret/presence"), reader, "", 403, "forbidden"},
			{"history with an expired token", "GET", pub, hs(t, claims("api-reader", []string{"lobby"}, nil, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), "", 401, "token_expired"},
			{"history with the token", "GET", pub, reader, "", 200, ""},
			{"publish with the key", "POST", pub, hostileAPIKey, `{"user":"backend","body":"from the server"}`, 201, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, code, body := httpDo(t, tc.method, tc.url, tc.bearer, tc.body)
				if status != tc.status || code != tc.code {
					t.Errorf("%s %s = %d %q (%s), want %d %q", tc.method, tc.url, status, code, body, tc.status, tc.code)
				}
				assertUp(t, p, ctl)
			})
		}
	})

	t.Run("HTML, JS and SQL in a body are stored and returned byte-exact", func(t *testing.T) {
		body := `<script>alert(document.cookie)</script><img src=x onerror="fetch('//evil')"> '; DROP TABLE messages; -- ` +
			`" OR "1"="1 \ %s %n {{.}} ${x} ` + "\u2028\u2029\t\r\n😀 \u202ertl"
		c := dialToken(t, p, hs(t, claims("quoter", everything, everything, nil)))
		c.join("quotes", "")
		c.sendJSON(map[string]any{"op": "send", "room": "quotes", "cid": "q1", "body": body})
		// The live msg comes before the ack (it is published at once).
		if got := c.expect("msg"); got.Body != body {
			t.Errorf("live body %q, want %q", got.Body, body)
		}
		ack := c.expect("ack")
		// History comes from PostgreSQL, which the persister fills soon.
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			c.sendJSON(map[string]any{"op": "history", "room": "quotes"})
			if h := c.expect("history"); len(h.Messages) != 1 || h.Messages[0].Body != body {
				return fmt.Errorf("WebSocket history %+v", h.Messages)
			}
			return nil
		})
		_, _, data := httpDo(t, "GET", p.url("/api/rooms/quotes/messages"), hostileAPIKey, "")
		var h struct{ Messages []frame }
		if err := jsonDecode(bytes.NewReader(data), &h); err != nil || len(h.Messages) != 1 || h.Messages[0].Body != body {
			t.Errorf("HTTP history %s (%v)", data, err)
		}
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			conn, err := pgx.Connect(context.Background(), db)
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			var stored string
			if err := conn.QueryRow(context.Background(), `SELECT body FROM messages WHERE id = $1`, ack.ID).Scan(&stored); err != nil {
				return err
			}
			if stored != body {
				return fmt.Errorf("stored %q", stored)
			}
			return nil
		})
		assertUp(t, p, ctl)
	})

	// Every refusal was counted by reason.
	for _, sample := range []string{
		`natter_connections_refused_total{reason="conns_per_ip"}`,
		`natter_connections_refused_total{reason="origin"}`,
		`natter_auth_failures_total{reason="invalid"}`,
		`natter_auth_failures_total{reason="expired"}`,
		`natter_client_errors_total{code="rate_limited"}`,
		`natter_disconnects_total{reason="handshake_timeout"}`,
		`natter_disconnects_total{reason="token_expired"}`,
	} {
		if metric(t, p, sample) == 0 {
			t.Errorf("%s is 0", sample)
		}
	}
}
