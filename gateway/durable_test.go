package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
)

func testMsg(g *natter.IDGen, body string) natter.Message {
	id := g.Next()
	return natter.Message{ID: id.String(), Room: "r", User: "u", Body: body, TS: id.Time().UnixMilli(), Region: "x", CID: id.String()}
}

// With no bridge answering, pending messages are bounded by count and by
// bytes: past either, sends are refused (the client keeps its outbox).
func TestPendingIsBoundedByCountAndBytes(t *testing.T) {
	nc := natstest.Conn(t)
	g := natter.NewIDGen(nil)
	byCount := newDurable(oneConn(nc), "gw", 10, 1<<20, slog.Default(), newMetrics())
	for i := 0; i < 10; i++ {
		if _, err := byCount.reserve(testMsg(g, "hi"), nil, false); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	if _, err := byCount.reserve(testMsg(g, "hi"), nil, false); !errors.Is(err, errBusy) {
		t.Fatalf("11th submit: %v, want errBusy", err)
	}
	byBytes := newDurable(oneConn(nc), "gw", 1000, 10_000, slog.Default(), newMetrics())
	big := strings.Repeat("x", 3000)
	n := 0
	for ; n < 10; n++ {
		if _, err := byBytes.reserve(testMsg(g, big), nil, false); err != nil {
			break
		}
	}
	if n != 3 {
		t.Fatalf("accepted %d messages of 3 KB under a 10 KB bound, want 3", n)
	}
}

// A bridge's reply acks every waiter of the message once, with the
// canonical id when the bridge found an earlier write of the same cid.
func TestReplyAcksWaitersWithTheCanonicalID(t *testing.T) {
	nc := natstest.Conn(t)
	d := newDurable(oneConn(nc), "gw", 100, 1<<20, slog.Default(), newMetrics())
	g := natter.NewIDGen(nil)
	first := testMsg(g, "hi")
	acks := make(chan string, 4)
	if _, err := d.reserve(first, func(id string, ts int64) { acks <- id }, false); err != nil {
		t.Fatal(err)
	}
	// The same cid again while pending: joins as a waiter.
	if !d.lookup(natter.CIDKey(first.User, first.Room, first.CID), func(id string, ts int64) { acks <- id }) {
		t.Fatal("lookup did not find the pending cid")
	}
	canonical := g.Next().String()
	data, _ := json.Marshal(natter.DurableReply{ID: first.ID, OK: true, Canonical: canonical, CanonicalTS: 1})
	d.onReply(&nats.Msg{Data: data})
	for i := 0; i < 2; i++ {
		select {
		case id := <-acks:
			if id != canonical {
				t.Errorf("ack %d with %s, want canonical %s", i, id, canonical)
			}
		case <-time.After(time.Second):
			t.Fatal("waiter not acked")
		}
	}
	if d.count() != 0 {
		t.Errorf("%d still pending", d.count())
	}
	// Later repeats are answered from the record at once.
	if !d.lookup(natter.CIDKey(first.User, first.Room, first.CID), func(id string, ts int64) { acks <- id }) || <-acks != canonical {
		t.Error("a repeat after the ack did not get the canonical id")
	}
}

// pendingAndFailure returns a durable hop with one pending message and a
// bridge reply that fails it.
func pendingAndFailure(t *testing.T) (*durable, *pendingSend, *nats.Msg) {
	t.Helper()
	d := newDurable(oneConn(nil), "gw", 10, 1<<20, slog.Default(), newMetrics())
	msg := testMsg(natter.NewIDGen(nil), "hi")
	p, err := d.reserve(msg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	fail, _ := json.Marshal(natter.DurableReply{ID: msg.ID, Error: "durable log unavailable"})
	return d, p, &nats.Msg{Data: fail}
}

// Failure replies (Kafka down, bridge full) space the message's next send
// out: 200 ms after the first, doubling up to 10 s, so a long outage is
// not a storm of retries.
func TestFailureRepliesBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, p, fail := pendingAndFailure(t)
		want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
			3200 * time.Millisecond, 6400 * time.Millisecond, maxRetry, maxRetry, maxRetry}
		for i, w := range want {
			d.onReply(fail)
			d.mu.Lock()
			got := time.Until(p.next)
			d.mu.Unlock()
			if got != w {
				t.Fatalf("after failure %d the next send is in %v, want %v", i+1, got, w)
			}
		}
		if d.count() != 1 {
			t.Fatalf("%d pending, want the message still pending", d.count())
		}
	})
}

// A client retrying a pending message again and again adds at most
// maxWaiters acks to it, keeping the newest.
func TestRetriesOfAPendingMessageKeepTheNewestWaiters(t *testing.T) {
	d := newDurable(oneConn(nil), "gw", 10, 1<<20, slog.Default(), newMetrics())
	g := natter.NewIDGen(nil)
	msg := testMsg(g, "hi")
	var acked []int
	ack := func(i int) ackFunc { return func(string, int64) { acked = append(acked, i) } }
	if _, err := d.reserve(msg, ack(0), false); err != nil {
		t.Fatal(err)
	}
	const retries = 1000
	for i := 1; i <= retries; i++ {
		if !d.lookup(natter.CIDKey(msg.User, msg.Room, msg.CID), ack(i)) {
			t.Fatal("pending cid not found")
		}
	}
	data, _ := json.Marshal(natter.DurableReply{ID: msg.ID, OK: true})
	d.onReply(&nats.Msg{Data: data})
	if len(acked) != maxWaiters || acked[len(acked)-1] != retries || acked[0] != retries-maxWaiters+1 {
		t.Fatalf("acked %v, want the newest %d of %d", acked, maxWaiters, retries+1)
	}
}

// A pending message's cid is remembered however many messages came after
// it, so that a client's retry joins it instead of making a second message
// under another id.
func TestPendingCIDsOutliveTheCap(t *testing.T) {
	d := newDurable(oneConn(nil), "gw", 4, 1<<20, slog.Default(), newMetrics()) // remembers 16 cids
	g := natter.NewIDGen(nil)
	first := testMsg(g, "first")
	if _, err := d.reserve(first, nil, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		m := testMsg(g, "later")
		if _, err := d.reserve(m, nil, false); err != nil {
			t.Fatal(err)
		}
		ok, _ := json.Marshal(natter.DurableReply{ID: m.ID, OK: true})
		d.onReply(&nats.Msg{Data: ok})
	}
	d.mu.Lock()
	n := d.cids.Len()
	d.mu.Unlock()
	if n > 4*4+1 {
		t.Errorf("%d cids remembered, want at most the cap and the pending one", n)
	}
	if !d.lookup(natter.CIDKey(first.User, first.Room, first.CID), func(string, int64) {}) {
		t.Fatal("the pending message's cid was forgotten")
	}
}

// When a NATS link comes back, pending messages are due at once and
// back off from the start again.
func TestSoonMakesPendingMessagesDueNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d, p, fail := pendingAndFailure(t)
		for range 8 {
			d.onReply(fail)
		}
		d.soon()
		d.mu.Lock()
		next, backoff := time.Until(p.next), p.backoff*2
		d.mu.Unlock()
		if next > 0 || backoff != firstRetry {
			t.Fatalf("after soon: next send in %v with backoff %v, want now and %v", next, backoff, firstRetry)
		}
	})
}

// The drain's wait ends when the last pending message is acked, and at
// its deadline otherwise, saying how many are left.
func TestWaitEmptyEndsWithTheLastAck(t *testing.T) {
	d := newDurable(oneConn(nil), "gw", 10, 1<<20, slog.Default(), newMetrics())
	if n := d.waitEmpty(context.Background()); n != 0 {
		t.Fatalf("nothing pending: waitEmpty = %d", n)
	}
	g := natter.NewIDGen(nil)
	a, b := testMsg(g, "a"), testMsg(g, "b")
	for _, m := range []natter.Message{a, b} {
		if _, err := d.reserve(m, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := d.waitEmpty(ctx); n != 2 {
		t.Fatalf("at the deadline: waitEmpty = %d, want 2", n)
	}
	done := make(chan int)
	go func() { done <- d.waitEmpty(context.Background()) }()
	for _, m := range []natter.Message{a, b} {
		data, _ := json.Marshal(natter.DurableReply{ID: m.ID, OK: true})
		d.onReply(&nats.Msg{Data: data})
	}
	if n := <-done; n != 0 {
		t.Fatalf("after the last ack: waitEmpty = %d", n)
	}
}
