package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
)

// heldProducer keeps each produce's callback for the test to complete:
// a real Kafka cannot be made to fail one record on cue.
type heldProducer struct {
	mu    sync.Mutex
	dones []func(error)
}

func (p *heldProducer) Produce(_ string, _ []byte, _ time.Time, done func(error)) {
	p.mu.Lock()
	p.dones = append(p.dones, done)
	p.mu.Unlock()
}

func (p *heldProducer) next(t *testing.T) func(error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		if len(p.dones) > 0 {
			d := p.dones[0]
			p.dones = p.dones[1:]
			p.mu.Unlock()
			return d
		}
		p.mu.Unlock()
	}
	t.Fatal("no produce call")
	return nil
}

// TestDurableOnlyAfterKafkaAcknowledged checks that the bridge hands a
// message on (to federation) only once Kafka acknowledged it, never after
// a failed produce, and not again for a client's retry.
func TestDurableOnlyAfterKafkaAcknowledged(t *testing.T) {
	nc := natstest.Conn(t)
	prod := &heldProducer{}
	durable := make(chan natter.Message, 10)
	b := New(Config{NATS: nc, Producer: prod, Durable: func(m natter.Message) { durable <- m }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Wait until Run has subscribed: a malformed request gets an error
	// reply from the bridge, and "no responders" before.
	for i := 0; ; i++ {
		if _, err := nc.Request(natter.SubjectDurable, []byte("{"), time.Second); !errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if i == 200 {
			t.Fatal("the bridge did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}

	gen := natter.NewIDGen(nil)
	request := func(cid string) chan natter.DurableReply {
		m := natter.Message{ID: gen.Next().String(), Room: "lobby", User: "ann", Body: "hi", TS: time.Now().UnixMilli(), Region: "here", CID: cid}
		data, _ := json.Marshal(m)
		out := make(chan natter.DurableReply, 1)
		go func() {
			r, err := nc.Request(natter.SubjectDurable, data, 10*time.Second)
			var rep natter.DurableReply
			if err == nil {
				err = json.Unmarshal(r.Data, &rep)
			}
			if err != nil {
				rep.Error = err.Error()
			}
			out <- rep
		}()
		return out
	}
	noDurable := func(when string) {
		t.Helper()
		select {
		case m := <-durable:
			t.Fatalf("%s: handed on %s", when, m.ID)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// A failed produce: an error reply, nothing handed on.
	rep := request("c1")
	fail := prod.next(t)
	noDurable("before Kafka answered")
	fail(errors.New("broker down"))
	if r := <-rep; r.OK || r.Error == "" {
		t.Fatalf("failed produce replied %+v", r)
	}
	noDurable("after a failed produce")

	// The resend succeeds: handed on once, before the reply.
	rep = request("c1")
	prod.next(t)(nil)
	r := <-rep
	if !r.OK {
		t.Fatalf("reply %+v", r)
	}
	select {
	case m := <-durable:
		if m.ID != r.ID || m.CID != "c1" {
			t.Fatalf("handed on %+v, want id %s", m, r.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an acknowledged message was not handed on")
	}

	// A retry of the same cid through another gateway: answered with
	// the first id from memory, not produced or handed on again.
	if r2 := <-request("c1"); !r2.OK || r2.Canonical != r.ID {
		t.Fatalf("retry replied %+v, want canonical %s", r2, r.ID)
	}
	noDurable("after a retry")
}
