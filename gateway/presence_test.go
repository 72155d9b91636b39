package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
	"github.com/natter-chat/natter/protocol"
)

// presenceReader reads p's client in the background and returns its
// presence frames and messages ("msg"), in order. (A read that times out
// leaves a WebSocket unusable, so one goroutine reads to the end.)
func presenceReader(p wsPair) <-chan string {
	out := make(chan string, 1000)
	go func() {
		defer close(out)
		for {
			_, data, err := p.client.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				var f struct {
					Op           string
					Joined, Left []string
				}
				if json.Unmarshal([]byte(line), &f) != nil {
					continue
				}
				switch f.Op {
				case "presence":
					out <- "+" + strings.Join(f.Joined, ",") + " -" + strings.Join(f.Left, ",")
				case "msg":
					out <- "msg"
				}
			}
		}
	}()
	return out
}

// within returns what ch brings within d.
func within(ch <-chan string, d time.Duration) []string {
	var got []string
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, f)
		case <-timeout:
			return got
		}
	}
}

func newPresenceGateway(t *testing.T) *Gateway {
	t.Helper()
	l := &memLog{}
	g, err := New(Config{ID: "gw-a", NATS: natstest.Conn(t), History: l, DurableLog: l,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// namedPairs dials n connections of users user0, user1, ...
func namedPairs(t *testing.T, g *Gateway, n int) []wsPair {
	t.Helper()
	pairs := dialPairs(t, g, n)
	for i, p := range pairs {
		p.c.user = fmt.Sprintf("user%d", i)
	}
	return pairs
}

// joinAll joins each connection to room "r", in order.
func joinAll(t *testing.T, g *Gateway, pairs ...wsPair) {
	t.Helper()
	for _, p := range pairs {
		if _, err := g.hub.join(p.c, "r"); err != nil {
			t.Fatal(err)
		}
	}
}

// Other gateways' members come and go one event at a time; local members
// hear of a user only when the room as a whole gains or loses them.
func TestRemotePresenceEvents(t *testing.T) {
	g := newPresenceGateway(t)
	p := dialPairs(t, g, 1)[0] // user "u"
	frames := presenceReader(p)
	if _, err := g.hub.join(p.c, "r"); err != nil {
		t.Fatal(err)
	}
	r := g.hub.rooms["r"]
	ev := func(gw string, typ eventKind, user string) {
		data, _ := json.Marshal(event{T: typ, User: user, GW: gw, Region: "local"})
		r.onEvent(g.hub, data)
	}
	time.Sleep(presenceBatch)       // u's own arrival was the last change
	ev("gw-b", "join", "x")         // the room gains x
	ev("gw-b", "join", "x")         // repeated
	ev("gw-c", "join", "x")         // x on a second gateway too
	ev("gw-b", "join", "u")         // u is here already
	ev("gw-b", "join", "not valid") // refused
	got := within(frames, 2*presenceBatch)
	ev("gw-b", "leave", "x") // x is still on gw-c
	ev("gw-c", "leave", "x") // the room loses x
	ev("gw-d", "leave", "y") // a gateway never heard of
	got = append(got, within(frames, 2*presenceBatch)...)
	if want := []string{"+x -", "+ -x"}; strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("presence frames %q, want %q", got, want)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if got := r.membersLocked(); strings.Join(got, ",") != "u" {
		t.Errorf("members %v, want [u]", got)
	}
	if got := r.toldMembersLocked("u"); strings.Join(got, ",") != "u" {
		t.Errorf("told members %v, want [u]", got)
	}
	if _, ok := r.remote["gw-c"]; ok {
		t.Error("gw-c kept with no members")
	}
	if _, ok := r.remote["gw-d"]; ok {
		t.Error("a leave from an unknown gateway left an entry")
	}
}

// A room filling up tells its members in a few frames, not one per
// arrival, and every member's view (its join's answer, then the frames)
// ends exact: nobody is told of a user it already has, or of one leaving
// that it does not.
func TestPresenceBatchesARoomFillingUp(t *testing.T) {
	g := newPresenceGateway(t)
	const n = 40
	pairs := namedPairs(t, g, n)
	readers := make([]<-chan string, n)
	views := make([]map[string]bool, n)
	for i, p := range pairs {
		readers[i] = presenceReader(p)
		members, err := g.hub.join(p.c, "r")
		if err != nil {
			t.Fatal(err)
		}
		views[i] = map[string]bool{}
		for _, u := range members {
			views[i][u] = true
		}
	}
	// One leaves again, and one more connection of user0 comes and goes:
	// no change to the room as a whole.
	g.hub.leave(pairs[n-1].c, "r")
	extra := namedPairs(t, g, 1)[0] // user0
	joinAll(t, g, extra)
	g.hub.leave(extra.c, "r")

	frames := make([][]string, n-1)
	var wg sync.WaitGroup
	for i := range n - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frames[i] = within(readers[i], 3*presenceBatch)
		}()
	}
	wg.Wait()
	want := map[string]bool{}
	for i := range n - 1 {
		want[fmt.Sprintf("user%d", i)] = true
	}
	for i, fs := range frames {
		view := views[i]
		for _, f := range fs {
			parts := strings.SplitN(f, " ", 2)
			for _, u := range strings.Split(strings.TrimPrefix(parts[0], "+"), ",") {
				if u == "" {
					continue
				}
				if view[u] {
					t.Errorf("user%d told %s joined, whom it had", i, u)
				}
				view[u] = true
			}
			for _, u := range strings.Split(strings.TrimPrefix(parts[1], "-"), ",") {
				if u == "" {
					continue
				}
				if !view[u] {
					t.Errorf("user%d told %s left, whom it did not have", i, u)
				}
				delete(view, u)
			}
		}
		if !maps.Equal(view, want) {
			t.Errorf("user%d ends with %d members, want %d", i, len(view), len(want))
		}
	}
	r := g.hub.rooms["r"]
	r.mu.RLock()
	told, now := r.toldMembersLocked("user0"), r.membersLocked()
	r.mu.RUnlock()
	if !slices.Equal(told, now) {
		t.Errorf("the room's told members %v differ from its members %v with nothing waiting", told, now)
	}
	// The first member was told of 38 others: one frame per batch, not
	// one per arrival.
	if len(frames[0]) > 5 {
		t.Errorf("the first member got %d presence frames for %d arrivals: %q", len(frames[0]), n-1, frames[0])
	}
}

// A message from a user whose arrival waits fans out after the changes
// that wait, so a member is told of the sender before reading it; a
// message from anyone else leaves the batch alone.
func TestPresenceGoesOutBeforeItsSendersMessage(t *testing.T) {
	g := newPresenceGateway(t)
	pairs := namedPairs(t, g, 3)
	frames := presenceReader(pairs[0])
	joinAll(t, g, pairs[0])
	time.Sleep(2 * presenceBatch)
	// user1's arrival goes out at once; user2's, right after, waits.
	joinAll(t, g, pairs[1:]...)
	r := g.hub.rooms["r"]
	if !r.waiting.Load() {
		t.Fatal("the second arrival in a row went out at once")
	}
	onNATS := r.onNATS(g.hub)
	send := func(id, user string) {
		onNATS(&nats.Msg{Subject: "room.r.msg", Data: []byte(`{"op":"msg","room":"r","id":"` + id + `","user":"` + user + `","body":"hi","ts":1}`)})
	}
	send("a", "user1")
	if !r.waiting.Load() {
		t.Error("a message from a user told of already sent the waiting changes")
	}
	send("b", "user2")
	got := within(frames, 3*presenceBatch)
	if want := []string{"+user1 -", "msg", "+user2 -", "msg"}; strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("user0 got %q, want %q", got, want)
	}
}

// A stale batch timer (one that fired while the batch went out with a
// message) leaves the next batch to its own timer.
func TestPresenceStaleTimerLeavesTheNextBatch(t *testing.T) {
	g := newPresenceGateway(t)
	pairs := namedPairs(t, g, 4)
	frames := presenceReader(pairs[0])
	joinAll(t, g, pairs[:3]...)
	r := g.hub.rooms["r"]
	r.mu.Lock()
	stale := r.pres.timer
	r.mu.Unlock()
	if stale == nil {
		t.Fatal("no timer for the waiting arrival")
	}
	r.flushPresence(g.hub, "user2") // told with user2's message
	joinAll(t, g, pairs[3])
	// The stale timer's function runs now (as if it had fired while the
	// batch went out): user3's arrival must keep waiting.
	stale.Reset(0)
	time.Sleep(20 * time.Millisecond)
	if !r.waiting.Load() {
		t.Error("a stale timer sent the next batch early")
	}
	got := within(frames, 3*presenceBatch)
	if want := []string{"+user1 -", "+user2 -", "+user3 -"}; strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("user0 got %q, want %q", got, want)
	}
}

// BenchmarkRemoteRoomFill fills a room with 5,000 members of another
// gateway, one join event each, as a gateway following the room sees it.
func BenchmarkRemoteRoomFill(b *testing.B) {
	h := newHub(oneConn(nil), "gw-a", "local", time.Second, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
	const members = 5000
	events := make([][]byte, members)
	for i := range events {
		events[i], _ = json.Marshal(event{T: "join", User: "user" + strconv.Itoa(i), GW: "gw-b", Region: "local"})
	}
	b.ReportAllocs()
	for b.Loop() {
		r := &room{name: "r", conns: make(map[*conn]struct{}), users: make(map[string]int), remote: make(map[string]*remoteGW), keep: &h.retainFrom}
		for _, e := range events {
			r.onEvent(h, e)
		}
		if len(r.remote["gw-b"].users) != members {
			b.Fatalf("%d members", len(r.remote["gw-b"].users))
		}
	}
}

// failingHistory blocks a resume's read until release, then fails it.
type failingHistory struct {
	memLog
	reading chan struct{}
	release chan struct{}
}

func (h *failingHistory) After(ctx context.Context, room, after string, limit int) ([]natter.Message, error) {
	close(h.reading)
	<-h.release
	return nil, errors.New("history is down")
}

// A resume that fails leaves the connection out of the room: what reached
// the room while it was being read (a message, the arrival of another
// member) is not delivered to it, only the error.
func TestFailedResumeDropsWhatItHeld(t *testing.T) {
	hist := &failingHistory{reading: make(chan struct{}), release: make(chan struct{})}
	g, err := New(Config{ID: "gw-a", NATS: natstest.Conn(t), History: hist, DurableLog: &hist.memLog,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pairs := dialPairs(t, g, 2)
	pairs[0].c.user, pairs[1].c.user = "resumer", "other"
	pairs[0].c.sec.ident = natter.Identity{User: "resumer", Write: []string{"*"}}
	var got []string
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			_, data, err := pairs[0].client.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				var f struct{ Op, Code string }
				if json.Unmarshal([]byte(line), &f) == nil {
					got = append(got, f.Op+" "+f.Code)
					if f.Op == "error" {
						return
					}
				}
			}
		}
	}()
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		pairs[0].c.join(context.Background(), protocol.ClientFrame{Op: "join", Room: "r", Since: natter.MinIDAt(time.Now().Add(-time.Minute)).String()})
	}()
	<-hist.reading
	if _, err := g.hub.join(pairs[1].c, "r"); err != nil {
		t.Fatal(err)
	}
	g.hub.rooms["r"].fanout(g.hub, []byte(`{"op":"msg","room":"r","id":"x","user":"other","body":"hi","ts":1}`), "x", "")
	close(hist.release)
	<-joined
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("no error frame")
	}
	if want := []string{"error unavailable"}; strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("the resumer got %q, want only %q", got, want)
	}
	if _, in := g.hub.rooms["r"].conns[pairs[0].c]; in {
		t.Error("the resumer is still in the room")
	}
}
