package bridge

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
)

// blockingProducer blocks in Produce until release, then acknowledges every
// message at once, as a producer applying back-pressure does.
type blockingProducer struct {
	release chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (p *blockingProducer) Produce(_ string, _ []byte, _ time.Time, done func(error)) {
	p.once.Do(func() { close(p.entered) })
	<-p.release
	done(nil)
}

// A stopping bridge handles every request it had received before Run
// returns: the requests queued behind a blocked producer are produced and
// answered, not dropped.
func TestStopFinishesWhatWasReceived(t *testing.T) {
	nc := natstest.Conn(t)
	prod := &blockingProducer{release: make(chan struct{}), entered: make(chan struct{})}
	b := New(Config{NATS: nc, Producer: prod})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()

	replies := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("gw.reply", replies); err != nil {
		t.Fatal(err)
	}
	g := natter.NewIDGen(nil)
	var ids []string
	send := func() {
		id := g.Next()
		data, _ := json.Marshal(natter.Message{ID: id.String(), Room: "r", User: "u", Body: "hi", TS: id.Time().UnixMilli()})
		if err := nc.PublishRequest(natter.SubjectDurable, "gw.reply", data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id.String())
	}
	// The first request blocks the handler in the producer; wait until it
	// is there (before the bridge subscribed, NATS drops requests), then
	// queue four more behind it.
	for waiting := true; waiting; {
		send()
		select {
		case <-prod.entered:
			waiting = false
		case <-time.After(50 * time.Millisecond):
			ids = ids[:0] // not received: no bridge yet
		}
	}
	for range 4 {
		send()
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with requests still held", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(prod.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Had the stop dropped them, they would never be answered.
	got := map[string]bool{}
	for deadline := time.After(10 * time.Second); len(got) < len(ids); {
		select {
		case m := <-replies:
			if len(m.Data) == 0 { // "no responders" to a probe before the bridge listened
				continue
			}
			var r natter.DurableReply
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			if r.OK {
				got[r.ID] = true
			}
		case <-deadline:
			t.Fatalf("%d of %d requests answered", len(got), len(ids))
		}
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("request %s was not answered; answered: %v", id, got)
		}
	}
}
