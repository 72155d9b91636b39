// The bridge's producer: asynchronous, batched, with a callback per record.

package kafka

import (
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// Producer writes records to one topic and reports each outcome to the
// callback given with the record.
type Producer struct {
	ap    sarama.AsyncProducer
	topic string
	wg    sync.WaitGroup
	once  sync.Once
}

// NewProducer connects a producer (see NewConfig) to the cluster.
func NewProducer(c Cluster, topic, clientID string) (*Producer, error) {
	ap, err := sarama.NewAsyncProducer(c.Brokers, c.Config(clientID))
	if err != nil {
		return nil, fmt.Errorf("kafka: producer for %s: %w", c, Explain(err))
	}
	p := &Producer{ap: ap, topic: topic}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for m := range ap.Successes() {
			m.Metadata.(func(error))(nil)
		}
	}()
	go func() {
		defer p.wg.Done()
		for e := range ap.Errors() {
			e.Msg.Metadata.(func(error))(fmt.Errorf("kafka: produce %s: %w", e.Msg.Key, e.Err))
		}
	}()
	return p, nil
}

// Produce queues value keyed by key with timestamp ts; done is called once
// Kafka acknowledged it (nil) or gave up (an error). Produce blocks when
// the producer's input queue is full.
func (p *Producer) Produce(key string, value []byte, ts time.Time, done func(error)) {
	p.ap.Input() <- &sarama.ProducerMessage{
		Topic:     p.topic,
		Key:       sarama.StringEncoder(key),
		Value:     sarama.ByteEncoder(value),
		Timestamp: ts,
		Metadata:  done,
	}
}

// Close flushes queued records, reports their outcome and closes the
// producer. It is safe to call more than once.
func (p *Producer) Close() error {
	// AsyncClose, not Close: Close would drain Successes and Errors itself
	// and so swallow callbacks our own loops must run.
	p.once.Do(func() {
		p.ap.AsyncClose()
		p.wg.Wait()
	})
	return nil
}
