// Tests for the in-process Kafka broker, driven by sarama as natter drives
// it: an idempotent producer, keyed messages, and a consumer group whose
// committed offsets must survive broker restarts on the same data dir.

package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

const testTopic = "natter.messages"

func startKafka(t *testing.T, cfg KafkaConfig) *Kafka {
	t.Helper()
	k, err := StartKafka(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("StartKafka: %v", err)
	}
	t.Cleanup(func() { mustNotErr(t, "close kafka", k.Close()) })
	return k
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Net.MaxOpenRequests = 1 // sarama's rule for idempotence
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	return cfg
}

// produce sends n keyed messages numbered from first and checks that each
// key stays on one partition.
func produce(t *testing.T, brokers []string, first, n int) {
	t.Helper()
	p, err := sarama.NewSyncProducer(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	defer func() { mustNotErr(t, "close producer", p.Close()) }()
	partitionOf := map[string]int32{}
	for i := first; i < first+n; i++ {
		key := fmt.Sprintf("room-%d", i%5)
		part, _, err := p.SendMessage(&sarama.ProducerMessage{
			Topic: testTopic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(fmt.Sprint(i)),
		})
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if was, ok := partitionOf[key]; ok && was != part {
			t.Fatalf("key %s went to partitions %d and %d", key, was, part)
		}
		partitionOf[key] = part
	}
}

// consume joins group and returns the values it reads until it has want of
// them, committing as it goes; the group's Close commits the last marks.
func consume(t *testing.T, brokers []string, group string, want int) []string {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(brokers, group, saramaConfig())
	if err != nil {
		t.Fatalf("new consumer group: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &collector{want: want, got: make(chan string, want+100), cancel: cancel}
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{testTopic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var vals []string
	for len(vals) < want {
		select {
		case v := <-h.got:
			vals = append(vals, v)
		case err := <-done:
			t.Fatalf("consumer group stopped after %d of %d messages: %v (ctx: %v)", len(vals), want, err, ctx.Err())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustNotErr(t, "close consumer group", cg.Close())
	close(h.got)
	for v := range h.got { // anything past want is a message read twice
		vals = append(vals, v)
	}
	return vals
}

type collector struct {
	want   int
	got    chan string
	cancel context.CancelFunc
}

func (*collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (c *collector) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.got <- string(m.Value)
		s.MarkMessage(m, "")
	}
	return nil
}

func TestKafkaKeepsLogAndCommittedOffsetsAcrossRestarts(t *testing.T) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := KafkaConfig{Port: port, DataDir: t.TempDir(), Topics: []string{testTopic}}
	restart := func(k *Kafka) *Kafka {
		t.Helper()
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		return startKafka(t, cfg)
	}

	k := startKafka(t, cfg)
	if got, want := k.Brokers(), []string{fmt.Sprintf("127.0.0.1:%d", port)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Brokers() = %v, want %v", got, want)
	}
	produce(t, k.Brokers(), 0, 50)

	k = restart(k)
	if got := consume(t, k.Brokers(), "persister", 50); !sameSet(got, 0, 50) {
		t.Fatalf("after restart the group read %v, want 0..49 once each", got)
	}

	k = restart(k)
	produce(t, k.Brokers(), 50, 10)
	if got := consume(t, k.Brokers(), "persister", 10); !sameSet(got, 50, 10) {
		t.Fatalf("after another restart the group read %v, want only 50..59", got)
	}
}

// sameSet reports whether vals are the numbers first..first+n-1, once each.
func sameSet(vals []string, first, n int) bool {
	seen := map[string]bool{}
	for _, v := range vals {
		seen[v] = true
	}
	if len(vals) != n || len(seen) != n {
		return false
	}
	for i := first; i < first+n; i++ {
		if !seen[fmt.Sprint(i)] {
			return false
		}
	}
	return true
}

func TestKafkaReportsTakenPortInOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	k, err := StartKafka(KafkaConfig{Port: port}, testLogger(t))
	if err == nil {
		k.Close()
		t.Fatal("StartKafka succeeded on a taken port")
	}
	want := fmt.Sprintf("kafka: 127.0.0.1:%d is in use; pass --embedded-kafka-port or stop the other process", port)
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestKafkaRefusesDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	startKafka(t, KafkaConfig{DataDir: dir})
	k, err := StartKafka(KafkaConfig{DataDir: dir}, testLogger(t))
	if err == nil {
		k.Close()
		t.Fatal("second broker on one data dir started")
	}
	if !strings.Contains(err.Error(), "in use by another natter process") {
		t.Errorf("error = %v", err)
	}
}
