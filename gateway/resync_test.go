package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
	"github.com/natter-chat/natter/protocol"
)

// memLog is a store holding a fixed set of messages and a log with none
// beyond it: the resync reads both, and merges.
type memLog struct {
	mu   sync.Mutex
	msgs []natter.Message
}

func (l *memLog) add(m natter.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, m)
}

func (l *memLog) Page(context.Context, string, string, int) ([]natter.Message, bool, error) {
	return nil, false, nil
}

func (l *memLog) After(_ context.Context, room, after string, limit int) ([]natter.Message, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []natter.Message
	for _, m := range l.msgs {
		if m.Room == room && m.ID > after && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (l *memLog) Mark(context.Context, string, natter.ID) (LogTail, error) {
	return func(context.Context, int) ([]natter.Message, bool, error) { return nil, false, nil }, nil
}

// linkScript is the embedded NATS server's links as a test sets them.
type linkScript struct {
	mu    sync.Mutex
	links []Link
}

func (s *linkScript) set(ls ...Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links = ls
}

func (s *linkScript) get() ([]Link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.links), nil
}

// resyncFixture is a gateway with one member in room "r", a scripted set
// of links, a log, and what the member has received.
type resyncFixture struct {
	g     *Gateway
	links *linkScript
	log   *memLog
	ids   *natter.IDGen
	w     *linkWatch
	got   chan string // message ids the member received, in order
}

func newResyncFixture(t *testing.T) *resyncFixture {
	t.Helper()
	f := &resyncFixture{links: &linkScript{}, log: &memLog{}, ids: natter.NewIDGen(nil), got: make(chan string, 1000)}
	f.links.set(Link{ID: "route:1", Remote: "gw-b"})
	g, err := New(Config{ID: "gw-a", NATS: natstest.Conn(t), History: f.log, DurableLog: f.log, Links: f.links.get,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	p := dialPairs(t, g, 1)[0]
	if _, err := g.hub.join(p.c, "r"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			_, data, err := p.client.ReadMessage()
			if err != nil {
				close(f.got)
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				var m struct{ Op, ID string }
				if json.Unmarshal([]byte(line), &m) == nil && m.Op == "msg" {
					f.got <- m.ID
				}
			}
		}
	}()
	f.w = newLinkWatch(g, f.links.get, defaultLinkTimeout)
	return f
}

// msg makes a message of room "r" stamped at.
func (f *resyncFixture) msg(at time.Time) natter.Message {
	id := natter.NewIDGen(func() time.Time { return at }).Next()
	return natter.Message{ID: id.String(), Room: "r", User: "x", Body: "b", TS: at.UnixMilli(), Region: "local"}
}

// live delivers m as if it had come over NATS.
func (f *resyncFixture) live(m natter.Message, at time.Time) {
	r := f.g.hub.rooms["r"]
	if !r.seen(m.ID, at) {
		r.fanout(f.g.hub, protocol.EncodeMsg(m), m.ID, "")
	}
}

// received returns the ids the member got within a short wait.
func (f *resyncFixture) received(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case id := <-f.got:
			out = append(out, id)
		case <-timeout:
			t.Fatalf("member received %d of %d messages: %v", len(out), n, out)
		}
	}
	select {
	case id := <-f.got:
		t.Fatalf("member received more than %d messages: %v and %s", n, out, id)
	case <-time.After(100 * time.Millisecond):
	}
	return out
}

// A broken route loses what the other side sent into it; once the server
// is back, the resync delivers that from the log, and nothing the member
// already had.
func TestResyncAfterLinkLossDeliversWhatWasMissedOnce(t *testing.T) {
	f := newResyncFixture(t)
	t0 := time.Now()
	before := f.msg(t0.Add(-time.Minute)) // long before: outside the resync
	had := f.msg(t0.Add(-time.Second))    // delivered live before the loss
	f.log.add(before)
	f.log.add(had)
	f.live(had, t0)
	f.received(t, 1)

	f.w.poll(t0)
	f.links.set()
	f.w.poll(t0.Add(500 * time.Millisecond))
	if f.w.gap == nil {
		t.Fatal("no gap after the route to gw-b broke")
	}
	if _, lost := f.w.gap.lost["gw-b"]; !lost {
		t.Fatalf("gw-b not among the lost servers: %v", f.w.gap.lost)
	}
	// The link may have been dead, unnoticed, for up to LinkTimeout.
	if want := t0.Add(500*time.Millisecond - defaultLinkTimeout - linkPoll - gapMargin); !f.w.gap.since.Equal(want) {
		t.Fatalf("gap since %v, want the loss less the link timeout, a poll and the margin, %v", f.w.gap.since, want)
	}
	missed := f.msg(t0.Add(400 * time.Millisecond)) // sent into the broken route
	local := f.msg(t0.Add(600 * time.Millisecond))  // this gateway's own, live
	f.live(local, t0.Add(600*time.Millisecond))
	f.received(t, 1)
	f.log.add(missed)
	f.log.add(local)

	// While the server is away and the retry is not due, nothing happens.
	f.w.maybeResync(context.Background(), t0.Add(2*time.Second))
	if got := testutil.ToFloat64(f.g.met.resyncDelivered); got != 0 {
		t.Fatalf("resync ran before gw-b was back: %v delivered", got)
	}
	// Back, on a new connection; the resync waits for the links to settle.
	f.links.set(Link{ID: "route:7", Remote: "gw-b"})
	f.w.poll(t0.Add(3 * time.Second))
	if len(f.w.gap.lost) != 0 {
		t.Fatalf("gw-b still lost after it came back: %v", f.w.gap.lost)
	}
	f.w.maybeResync(context.Background(), t0.Add(3*time.Second+gapSettle/2))
	if f.w.gap == nil {
		t.Fatal("gap closed before the links settled")
	}
	f.w.maybeResync(context.Background(), t0.Add(3*time.Second+gapSettle))
	if f.w.gap != nil {
		t.Fatal("gap still open after the resync")
	}
	if got := f.received(t, 1); got[0] != missed.ID {
		t.Fatalf("resync delivered %v, want only the missed %s", got, missed.ID)
	}
	if got := testutil.ToFloat64(f.g.met.resyncDelivered); got != 1 {
		t.Fatalf("natter_resync_delivered_total %v, want 1", got)
	}
	if f.g.hub.retainFrom.Load() != 0 {
		t.Fatal("rooms still retain ids after the gap closed")
	}
}

// A server that does not come back: the resync runs every gapRetry for
// what its side made durable, and the gap closes after gapMax.
func TestResyncWhileTheServerStaysAway(t *testing.T) {
	f := newResyncFixture(t)
	t0 := time.Now()
	f.links.set()
	f.w.poll(t0)
	if f.w.gap == nil {
		t.Fatal("no gap after the route broke")
	}
	first := f.msg(t0.Add(-time.Second)) // sent into the dead link
	f.log.add(first)
	f.w.maybeResync(context.Background(), t0.Add(gapRetry-time.Millisecond))
	if got := testutil.ToFloat64(f.g.met.resyncDelivered); got != 0 {
		t.Fatalf("resync before gapRetry: %v delivered", got)
	}
	f.w.maybeResync(context.Background(), t0.Add(gapRetry))
	if got := f.received(t, 1); got[0] != first.ID {
		t.Fatalf("retry delivered %v, want %s", got, first.ID)
	}
	if f.w.gap == nil {
		t.Fatal("gap closed while the server is still away")
	}
	second := f.msg(t0.Add(20 * time.Second))
	f.log.add(second)
	f.w.maybeResync(context.Background(), t0.Add(gapMax))
	if got := f.received(t, 1); got[0] != second.ID {
		t.Fatalf("final resync delivered %v, want %s", got, second.ID)
	}
	if f.w.gap != nil {
		t.Fatal("gap still open after gapMax")
	}
}

// A pooled route carries a room's traffic on one of its links: losing one
// of two links to a server makes the server lost until it has two again.
func TestPooledRouteLossWaitsForTheWholePool(t *testing.T) {
	f := newResyncFixture(t)
	f.links.set(Link{ID: "route:1", Remote: "gw-b"}, Link{ID: "route:2", Remote: "gw-b"})
	t0 := time.Now()
	f.w.poll(t0)
	f.links.set(Link{ID: "route:2", Remote: "gw-b"})
	f.w.poll(t0.Add(linkPoll))
	if f.w.gap == nil || f.w.gap.lost["gw-b"] != 2 {
		t.Fatalf("gap %+v: want gw-b lost until it has 2 links", f.w.gap)
	}
	f.w.maybeResync(context.Background(), t0.Add(linkPoll+gapSettle))
	if f.w.gap == nil || f.w.gap.lost["gw-b"] != 2 {
		t.Fatal("gap settled while the pool is short of a link")
	}
	f.links.set(Link{ID: "route:2", Remote: "gw-b"}, Link{ID: "route:3", Remote: "gw-b"})
	f.w.poll(t0.Add(2 * linkPoll))
	f.w.maybeResync(context.Background(), t0.Add(2*linkPoll+gapSettle))
	if f.w.gap != nil {
		t.Fatal("gap still open once the pool is whole and settled")
	}
}

// A failing link listing is not a loss.
func TestLinkListingErrorIsNotALoss(t *testing.T) {
	f := newResyncFixture(t)
	f.w.links = func() ([]Link, error) { return nil, errors.New("monitoring unavailable") }
	f.w.poll(time.Now())
	if f.w.gap != nil || len(f.w.known) != 1 {
		t.Fatalf("gap %+v, known %v after a listing error", f.w.gap, f.w.known)
	}
}

// While a gap is open a room keeps the ids it delivered since the gap's
// start past dedupWindow, so a resync does not deliver them again.
func TestSeenKeepsIDsWhileAGapIsOpen(t *testing.T) {
	h := newHub(oneConn(nil), "gw", "local", time.Second, nil, nil, newMetrics())
	r := &room{name: "r", keep: &h.retainFrom}
	t0 := time.Now()
	h.retain(t0.Add(gapMargin)) // keeps what arrived from t0 on
	r.seen("old", t0.Add(-time.Second))
	r.seen("kept", t0)
	later := t0.Add(dedupWindow + time.Minute)
	if r.seen("old", later) {
		t.Error("an id from before the gap was kept past the window")
	}
	if !r.seen("kept", later) {
		t.Error("an id delivered during the gap was forgotten while it is open")
	}
	h.retain(time.Time{})
	if r.seen("kept", later.Add(dedupWindow+time.Second)) {
		t.Error("an id was kept after the gap closed")
	}
}

// A link timeout the rooms' memory cannot cover is refused at start.
func TestNewRefusesALinkTimeoutPastTheRoomsMemory(t *testing.T) {
	l := &memLog{}
	_, err := New(Config{NATS: natstest.Conn(t), History: l, DurableLog: l, LinkTimeout: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "LinkTimeout") {
		t.Fatalf("New with a 1m link timeout: %v", err)
	}
}

// A member whose resume brought a message, in the moments before a link
// loss was noticed or while its gap is open, does not get it again from
// the gap's resync. Ids older than any resync can reach are not kept.
func TestResyncSkipsWhatAMembersResumeBrought(t *testing.T) {
	f := newResyncFixture(t)
	var c *conn
	for c = range f.g.hub.rooms["r"].conns {
	}
	now := time.Now()
	old := f.msg(now.Add(-time.Minute))
	before := f.msg(now.Add(-2 * time.Second))
	c.noteResumed([]natter.Message{old, before}, now)
	if c.wasResumed(parseID(t, old.ID)) {
		t.Error("kept a resumed id older than any resync reaches")
	}
	f.links.set() // the route to gw-b is gone
	f.w.poll(now.Add(time.Second))
	missed := f.msg(now.Add(1500 * time.Millisecond))
	during := f.msg(now.Add(2 * time.Second))
	c.noteResumed([]natter.Message{during}, now.Add(3*time.Second))
	if n := f.g.hub.redeliver("r", []natter.Message{before, missed, during}); n != 3 {
		t.Fatalf("redeliver counted %d, want 3 (the room had delivered none of them)", n)
	}
	if got := f.received(t, 1); got[0] != missed.ID {
		t.Fatalf("member got %v, want only %s (not the resumed %s and %s)", got, missed.ID, before.ID, during.ID)
	}
	// Later, with the gap closed, what the resumes brought ages out.
	f.g.hub.retain(time.Time{})
	c.noteResumed(nil, now.Add(time.Minute))
	if c.wasResumed(parseID(t, before.ID)) || c.wasResumed(parseID(t, during.ID)) {
		t.Error("resumed ids kept after the gap closed and they aged past its reach")
	}
}

func parseID(t *testing.T, s string) natter.ID {
	t.Helper()
	id, err := natter.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
