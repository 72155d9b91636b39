package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/kafka"
)

// A bridge that dies before its repair group ever committed must, once
// back, still check what other regions wrote while it was down: the group
// commits where it started as soon as it gets its partitions.
func TestRepairRestartedBeforeItsFirstCommitChecksWhatItMissed(t *testing.T) {
	brokers := strings.Split(os.Getenv("NATTER_TEST_KAFKA_BROKERS"), ",")
	if brokers[0] == "" {
		t.Fatal("NATTER_TEST_KAFKA_BROKERS is not set: run the suite with ./scripts/test, which starts Kafka")
	}
	topic := fmt.Sprintf("repair-test-%d", time.Now().UnixNano())
	if err := kafka.EnsureTopic(kafka.Cluster{Brokers: brokers}, topic, 2); err != nil {
		t.Fatal(err)
	}
	f, nc := newTestFederation(t)
	sub, err := nc.SubscribeSync("natter.room.>")
	if err != nil {
		t.Fatal(err)
	}
	run := func() (stop func()) {
		r, err := NewRepair(RepairConfig{Region: "here", Brokers: brokers, Topic: topic, Sarama: kafka.NewConfig("repair-test"),
			NATS: nc, Federation: f, Delay: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("repair run: %v", err)
			}
		}
	}

	// The first run gets its partitions, sees no message, and stops.
	stop := run()
	admin, err := sarama.NewClusterAdmin(brokers, kafka.NewConfig("repair-test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	group := natter.RepairGroup("here", topic)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
		committed := 0
		if err == nil {
			for _, p := range []int32{0, 1} {
				if b := res.GetBlock(topic, p); b != nil && b.Offset >= 0 {
					committed++
				}
			}
		}
		if committed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the repair group committed %d of 2 partitions' start within 60s (err %v)", committed, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()

	// While no repair runs, another region writes a message, which this
	// region never got through Redis.
	id := natter.NewIDGen(nil).Next().String()
	m := natter.Message{ID: id, Room: "lobby", User: "ana", Body: "while you were away", TS: time.Now().UnixMilli(), Region: "there"}
	val, _ := json.Marshal(m)
	cfg := kafka.NewConfig("repair-test-producer")
	cfg.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(m.Room), Value: sarama.ByteEncoder(val)}); err != nil {
		t.Fatal(err)
	}
	_ = prod.Close()

	stop = run()
	defer stop()
	got, err := sub.NextMsg(60 * time.Second)
	if err != nil {
		t.Fatalf("the restarted repair did not inject the message written while it was down: %v", err)
	}
	if !strings.Contains(string(got.Data), id) || got.Subject != natter.MsgSubject("lobby") {
		t.Fatalf("injected %s on %s, want message %s on %s", got.Data, got.Subject, id, natter.MsgSubject("lobby"))
	}
}
