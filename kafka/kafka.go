// Package kafka is natter's adapter for Apache Kafka (IBM/sarama): the one
// client configuration every role uses, topic creation, the producer the
// bridge writes the durable log with, and the log reader that resume and
// replay use.
//
// Messages are keyed by room, so one room lives in one partition and its
// order in the log is the order the bridge produced it. The record
// timestamp is the message's ts (CreateTime), which lets a reader seek by
// time: a message id carries the same millisecond.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
)

// Version is the Kafka protocol version natter speaks; it works with Kafka
// 3.x and 4.x and with the embedded broker.
var version = sarama.V3_9_0_0

// NewConfig returns the sarama configuration natter uses, for the role
// named clientID: acks=all with one request in flight per broker (which
// keeps per-partition order across retries), hash partitioning on the key,
// manual offset commits for consumers.
//
// The producer is deliberately not idempotent. natter does not need it:
// the persister, resume, replay and repair are all idempotent on the
// message id, so a retry that writes a message twice changes nothing. And
// sarama's idempotent producer has a reported defect (messages queued
// behind a retried batch can go out without sequence numbers, which a
// broker may drop as duplicates while the client reports success) whose
// failure mode would be silent loss of acked messages — the one outcome
// natter must never allow.
func NewConfig(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = version
	c.Net.MaxOpenRequests = 1
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	// Linger briefly so concurrent sends share a produce request.
	c.Producer.Flush.Frequency = time.Millisecond
	c.Producer.Flush.Messages = 256
	c.Producer.Flush.MaxMessages = 2048
	// The smallest session Kafka allows: a consumer killed with -9 is
	// replaced after 6 s instead of 10.
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 2 * time.Second
	// A rebalance waits this long for members to rejoin; a dead member
	// never does, so the default 60 s would stall its partitions that long.
	c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Return.Errors = true
	return c
}

// EnsureTopic creates topic with partitions partitions if it does not
// exist. An existing topic is left as it is.
func EnsureTopic(c Cluster, topic string, partitions int32) error {
	admin, err := sarama.NewClusterAdmin(c.Brokers, c.Config("natter-admin"))
	if err != nil {
		return fmt.Errorf("kafka: connect to %s: %w", c, Explain(err))
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false)
	var te *sarama.TopicError
	if err != nil && !(errors.As(err, &te) && te.Err == sarama.ErrTopicAlreadyExists) && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
	return nil
}

// partitionOf returns the partition the producer's hash partitioner picks
// for room among n partitions.
func partitionOf(topic, room string, n int32) (int32, error) {
	return sarama.NewHashPartitioner(topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(room)}, n)
}

// Consume runs handler on group for topic until ctx ends, then closes
// the group. sarama's Consume returns at every rebalance, so it is called
// again; a failed call is logged and retried after a second. Errors the
// group reports on its channel are logged. Consume returns once the group
// is closed and its error channel drained: nothing it started outlives it.
func Consume(ctx context.Context, group sarama.ConsumerGroup, topic string, handler sarama.ConsumerGroupHandler, log *slog.Logger) {
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for err := range group.Errors() {
			log.Warn("consumer group", "err", err)
		}
	}()
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{topic}, handler); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			log.Warn("consume", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	_ = group.Close()
	<-drained
}
