package bridge

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
	"github.com/natter-chat/natter/kafka"
)

// stuckKafka is a Kafka-protocol broker that holds every produce request
// until release is called, as a broker that stopped answering does.
func stuckKafka(t *testing.T, topic string) (brokers []string, release func()) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	held := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-held })
		return nil, nil, false // then answer it as usual
	})
	return c.ListenAddrs(), func() { close(held) }
}

// While Kafka holds what it was given, a bridge keeps at most MaxInflight
// messages in the producer, refuses more at once, and does not produce a
// message again that a gateway resent; once Kafka answers, each message
// is acked once.
func TestInflightIsBoundedAndResentMessagesAreNotProducedTwice(t *testing.T) {
	brokers, release := stuckKafka(t, "log")
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	prod, err := kafka.NewProducer(kafka.Cluster{Brokers: brokers}, "log", "test")
	if err != nil {
		t.Fatal(err)
	}
	nc := natstest.Conn(t)
	b := New(Config{NATS: nc, Producer: prod, MaxInflight: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = prod.Close()
	})

	replies := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("gw.reply", replies); err != nil {
		t.Fatal(err)
	}
	next := func() natter.DurableReply {
		t.Helper()
		select {
		case m := <-replies:
			var r natter.DurableReply
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no reply")
		}
		return natter.DurableReply{}
	}
	// The bridge answers a malformed request at once: then it listens.
	// Before it subscribes, NATS answers "no responders" (a status
	// message without data), which is not the bridge.
	for {
		if err := nc.PublishRequest(natter.SubjectDurable, "gw.reply", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-replies:
			if len(m.Data) == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	// A late answer to the probing (a "no responders", or the bridge's
	// to a probe that seemed unanswered) may still be on its way.
	time.Sleep(100 * time.Millisecond)
	for drained := false; !drained; {
		select {
		case <-replies:
		default:
			drained = true
		}
	}

	g := natter.NewIDGen(nil)
	var msgs [][]byte
	var ids []string
	for i := 0; i < 15; i++ {
		id := g.Next()
		data, _ := json.Marshal(natter.Message{ID: id.String(), Room: "r", User: "u", Body: "hi", TS: id.Time().UnixMilli()})
		msgs, ids = append(msgs, data), append(ids, id.String())
	}
	send := func(data []byte) {
		if err := nc.PublishRequest(natter.SubjectDurable, "gw.reply", data); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs[:10] {
		send(m)
	}
	for _, m := range msgs[:5] { // resent by the gateway while in flight
		send(m)
	}
	for _, m := range msgs[10:] {
		send(m)
	}
	for i := 10; i < 15; i++ {
		if r := next(); r.OK || r.ID != ids[i] || r.Error != "durable log busy" {
			t.Fatalf("reply %+v, want %s refused as busy", r, ids[i])
		}
	}
	if n, rep := testutil.ToFloat64(b.metrics.inflight), testutil.ToFloat64(b.metrics.repeats); n != 10 || rep != 5 {
		t.Fatalf("%v in flight, %v repeats; want 10 and 5", n, rep)
	}

	release()
	released = true
	acked := map[string]int{}
	for i := 0; i < 10; i++ {
		r := next()
		if !r.OK {
			t.Fatalf("reply %+v, want OK", r)
		}
		acked[r.ID]++
	}
	b.inflight.Wait()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(replies) > 0 {
		t.Errorf("%d more replies than messages", len(replies))
	}
	for _, id := range ids[:10] {
		if acked[id] != 1 {
			t.Errorf("%s acked %d times, want once", id, acked[id])
		}
	}
	if n := testutil.ToFloat64(b.metrics.produced); n != 10 {
		t.Errorf("%v produced, want 10", n)
	}
}
