// The core guarantees, each against real Apache Kafka and against the
// embedded broker, with a real PostgreSQL.

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// startCore starts a one-process natter on broker with a fresh database
// and its own topic; it returns the process and the database URL. The
// message rate limits are off: these tests send as fast as they can on
// purpose (the hostile suite tests the limits).
func startCore(t *testing.T, b broker) (*proc, string) {
	t.Helper()
	db := freshDatabase(t)
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	args := append([]string{"--database-url", db, "--data-dir", t.TempDir(),
		"--kafka-topic", "e2e." + uniq, "--kafka-group", "e2e-" + uniq,
		"--rate-per-conn", "0", "--rate-per-user", "0"}, b.args(t)...)
	return startNatter(t, args...), db
}

func forEachBroker(t *testing.T, f func(t *testing.T, b broker)) {
	for _, b := range brokers() {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func TestTwoClientsExchangeMessages(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b broker) {
		p, _ := startCore(t, b)
		alice, bob := dial(t, p), dial(t, p)
		alice.connect("alice")
		bob.connect("bob")
		alice.join("lobby", "")
		j := bob.join("lobby", "")
		if len(j.Members) != 2 {
			t.Errorf("members = %v, want alice and bob", j.Members)
		}
		alice.sendJSON(map[string]any{"op": "send", "room": "lobby", "cid": "c1", "body": "hi bob"})
		got := bob.expect("msg")
		if got.User != "alice" || got.Body != "hi bob" || got.Room != "lobby" || len(got.ID) != 26 || got.CID != "c1" {
			t.Errorf("bob got %+v", got)
		}
		ack := alice.expect("ack")
		if ack.CID != "c1" || ack.ID != got.ID {
			t.Errorf("ack %+v, delivered id %s", ack, got.ID)
		}
		bob.sendJSON(map[string]any{"op": "typing", "room": "lobby"})
		if ty := alice.expect("typing"); ty.User != "bob" {
			t.Errorf("typing from %q, want bob", ty.User)
		}
		bob.sendJSON(map[string]any{"op": "leave", "room": "lobby"})
		bob.expect("left")
		if pr := alice.expect("presence"); len(pr.Left) != 1 || pr.Left[0] != "bob" {
			t.Errorf("presence %+v, want bob left", pr)
		}
	})
}

// TestTenThousandMessagesExactlyOnce: 10 clients send 1,000 messages each
// into one room; every member receives all 10,000 once, each sender's in
// order, and PostgreSQL holds each once.
func TestTenThousandMessagesExactlyOnce(t *testing.T) {
	const clients, each = 10, 1000
	forEachBroker(t, func(t *testing.T, b broker) {
		p, db := startCore(t, b)
		cs := make([]*client, clients)
		for i := range cs {
			cs[i] = dial(t, p)
			cs[i].connect(fmt.Sprintf("u%d", i))
			cs[i].join("big", "")
		}
		var wg sync.WaitGroup
		results := make([]error, clients)
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = sendAndReceive(c, "big", i, each, clients*each)
			}()
		}
		wg.Wait()
		for i, err := range results {
			if err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		}
		checkFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			rows, distinct := pgCount(t, db, "big")
			if rows != clients*each || distinct != clients*each {
				return fmt.Errorf("postgres has %d rows, %d distinct ids; want %d", rows, distinct, clients*each)
			}
			return nil
		})
	})
}

// sendAndReceive sends n messages (at most 200 unacked) while reading, and
// checks that total distinct messages arrive once each, every sender's in
// order, and every send is acked once.
func sendAndReceive(c *client, room string, me, n, total int) error {
	window := make(chan struct{}, 200)
	sendErr := make(chan error, 1)
	go func() {
		for k := 0; k < n; k++ {
			window <- struct{}{}
			c.wmu.Lock()
			err := c.ws.WriteJSON(map[string]any{"op": "send", "room": room, "cid": fmt.Sprintf("c%d-%d", me, k), "body": fmt.Sprintf("%d:%d", me, k)})
			c.wmu.Unlock()
			if err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	seen := map[string]bool{}
	lastFrom := map[string]int{}
	acks := map[string]bool{}
	timeout := time.After(120 * time.Second)
	for len(seen) < total || len(acks) < n {
		select {
		case f := <-c.frames:
			switch f.Op {
			case "msg":
				if seen[f.ID] {
					return fmt.Errorf("message %s delivered twice", f.ID)
				}
				seen[f.ID] = true
				var who, k int
				if _, err := fmt.Sscanf(f.Body, "%d:%d", &who, &k); err != nil {
					return fmt.Errorf("body %q", f.Body)
				}
				if last, ok := lastFrom[f.User]; ok && k != last+1 {
					return fmt.Errorf("from %s got %d after %d", f.User, k, last)
				}
				lastFrom[f.User] = k
			case "ack":
				if acks[f.CID] {
					return fmt.Errorf("cid %s acked twice", f.CID)
				}
				acks[f.CID] = true
				<-window
			case "error":
				return fmt.Errorf("error frame %s: %s", f.Code, f.Message)
			}
		case <-timeout:
			return fmt.Errorf("timeout: %d/%d messages, %d/%d acks", len(seen), total, len(acks), n)
		case <-c.closed:
			return fmt.Errorf("connection closed: %v", c.err)
		}
	}
	return <-sendErr
}

// TestResumeDeliversMissedMessagesOnce: a client misses 500 messages and
// rejoins with since; it gets exactly those, in order, once — both before
// the persister wrote them (from the log) and after (from PostgreSQL).
func TestResumeDeliversMissedMessagesOnce(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b broker) {
		p, db := startCore(t, b)
		sender := dial(t, p)
		sender.connect("sender")
		sender.join("r", "")
		sendN := func(prefix string, n int) []string {
			ids := make([]string, 0, n)
			for k := 0; k < n; k++ {
				sender.sendJSON(map[string]any{"op": "send", "room": "r", "cid": fmt.Sprintf("%s-%d", prefix, k), "body": fmt.Sprintf("%s %d", prefix, k)})
			}
			for len(ids) < n {
				ids = append(ids, sender.expect("ack").ID)
			}
			sort.Strings(ids) // acks may overtake each other; ids are in send order
			return ids
		}
		reader := dial(t, p)
		reader.connect("reader")
		reader.join("r", "")
		first := sendN("seen", 10)
		for range first {
			reader.expect("msg")
		}
		last := first[len(first)-1]
		reader.close()

		check := func(since string, want []string) {
			t.Helper()
			c := dial(t, p)
			c.connect("reader")
			j := c.join("r", since)
			if j.Resumed != len(want) || j.More {
				t.Fatalf("joined resumed=%d more=%v, want %d", j.Resumed, j.More, len(want))
			}
			for i, id := range want {
				f := c.next(10 * time.Second)
				for f.Op == "presence" {
					f = c.next(10 * time.Second)
				}
				if f.Op != "msg" || f.ID != id {
					t.Fatalf("resumed message %d = %s %s, want msg %s", i, f.Op, f.ID, id)
				}
				if !strings.HasPrefix(f.CID, "missed-") {
					t.Fatalf("resumed message %s has cid %q, want the sender's", f.ID, f.CID)
				}
			}
			c.sendJSON(map[string]any{"op": "ping"})
			for {
				f := c.next(10 * time.Second)
				if f.Op == "pong" {
					break
				}
				if f.Op == "msg" {
					t.Fatalf("extra message %s after resume", f.ID)
				}
			}
			c.close()
		}
		missed := sendN("missed", 500)
		// At once: most of these are not yet in PostgreSQL.
		check(last, missed)
		checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if rows, _ := pgCount(t, db, "r"); rows != 510 {
				return fmt.Errorf("%d rows", rows)
			}
			return nil
		})
		// Now all from PostgreSQL.
		check(last, missed)
		// And from the middle.
		check(missed[249], missed[250:])
	})
}

// TestHistoryPagesWalkBackWithoutGaps pages back through 1,234 messages
// over WebSocket and over HTTP.
func TestHistoryPagesWalkBackWithoutGaps(t *testing.T) {
	const n = 1234
	forEachBroker(t, func(t *testing.T, b broker) {
		p, db := startCore(t, b)
		c := dial(t, p)
		c.connect("writer")
		c.join("hist", "")
		var ids []string
		for k := 0; k < n; k++ {
			c.sendJSON(map[string]any{"op": "send", "room": "hist", "cid": fmt.Sprint(k), "body": fmt.Sprint(k)})
		}
		for len(ids) < n {
			ids = append(ids, c.expect("ack").ID)
		}
		sort.Strings(ids)
		checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if rows, _ := pgCount(t, db, "hist"); rows != n {
				return fmt.Errorf("%d rows", rows)
			}
			return nil
		})
		// WebSocket pages of 100.
		var got []string
		before := ""
		for {
			req := map[string]any{"op": "history", "room": "hist", "limit": 100}
			if before != "" {
				req["before"] = before
			}
			c.sendJSON(req)
			h := c.expect("history")
			page := make([]string, len(h.Messages))
			for i, m := range h.Messages {
				page[i] = m.ID
				if m.CID != m.Body {
					t.Fatalf("history message %s: cid %q, want %q", m.ID, m.CID, m.Body)
				}
			}
			got = append(page, got...)
			if !h.More {
				break
			}
			before = h.Messages[0].ID
		}
		assertSameIDs(t, "websocket history", got, ids)
		// HTTP pages of 200.
		got = nil
		before = ""
		for {
			url := p.url("/api/rooms/hist/messages?limit=200")
			if before != "" {
				url += "&before=" + before
			}
			var h struct {
				Messages []frame `json:"messages"`
				More     bool    `json:"more"`
			}
			getJSON(t, url, &h)
			page := make([]string, len(h.Messages))
			for i, m := range h.Messages {
				page[i] = m.ID
			}
			got = append(page, got...)
			if !h.More {
				break
			}
			before = h.Messages[0].ID
		}
		assertSameIDs(t, "http history", got, ids)
	})
}

func assertSameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d ids, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: id %d = %s, want %s", what, i, got[i], want[i])
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
