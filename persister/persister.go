// Package persister writes the durable log into the history store: a Kafka
// consumer group whose members batch records per partition, insert each
// batch in one transaction that skips rows already stored, and commit the
// Kafka offsets only after the transaction committed. A crash between the
// two replays the batch, which the idempotent insert turns into no change:
// each message is stored exactly once.
package persister

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/kafka"
)

// Store is where messages are written.
type Store interface {
	// Insert stores msgs, skipping those already stored, and returns how
	// many were new.
	Insert(ctx context.Context, msgs []natter.Message) (int64, error)
}

// Config configures a Persister. Zero values of the tuning fields take the
// documented defaults.
type Config struct {
	Brokers []string
	Topic   string
	Group   string
	Store   Store
	// Sarama is the client configuration; nil is not allowed (use
	// kafka.NewConfig).
	Sarama *sarama.Config
	// BatchSize caps rows per transaction (default 2000).
	BatchSize int
	// Linger is how long a partial batch waits for more records (default
	// 20ms).
	Linger time.Duration
	Log    *slog.Logger
}

// Persister is the Kafka → store writer.
type Persister struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New validates cfg and returns a persister; Run starts it.
func New(cfg Config) (*Persister, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.Group == "" || cfg.Store == nil || cfg.Sarama == nil {
		return nil, errors.New("persister: brokers, topic, group, store and sarama config are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2000
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Persister{cfg: cfg, log: cfg.Log.With("role", "persister"), metrics: newMetrics()}, nil
}

// Collectors returns the persister's metrics for registration.
func (p *Persister) Collectors() []prometheus.Collector { return p.metrics.all() }

// Run consumes until ctx is cancelled; it returns nil after a cancel.
func (p *Persister) Run(ctx context.Context) error {
	group, err := sarama.NewConsumerGroup(p.cfg.Brokers, p.cfg.Group, p.cfg.Sarama)
	if err != nil {
		return fmt.Errorf("persister: join group %s: %w", p.cfg.Group, err)
	}
	p.log.Info("persister ready", "topic", p.cfg.Topic, "group", p.cfg.Group)
	kafka.Consume(ctx, group, p.cfg.Topic, &handler{p: p}, p.log)
	p.log.Info("persister stopped")
	return nil
}

type handler struct{ p *Persister }

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim batches one partition's records.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	p := h.p
	batch := make([]natter.Message, 0, p.cfg.BatchSize)
	var last *sarama.ConsumerMessage
	timer := time.NewTimer(p.cfg.Linger)
	defer timer.Stop()
	flush := func() error {
		if last == nil {
			return nil
		}
		if err := p.write(sess.Context(), batch); err != nil {
			return err
		}
		sess.MarkOffset(last.Topic, last.Partition, last.Offset+1, "")
		sess.Commit()
		p.metrics.lag.WithLabelValues(fmt.Sprint(claim.Partition())).Set(float64(claim.HighWaterMarkOffset() - last.Offset - 1))
		batch, last = batch[:0], nil
		return nil
	}
	for {
		select {
		case r, ok := <-claim.Messages():
			if !ok {
				return flush()
			}
			if m, err := decode(r.Value); err != nil {
				p.metrics.malformed.Inc()
				p.log.Error("skipping malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
			} else {
				batch = append(batch, m)
			}
			last = r
			if len(batch) >= p.cfg.BatchSize {
				if err := flush(); err != nil {
					return nil // session over; the batch is replayed
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return nil
			}
			timer.Reset(p.cfg.Linger)
		case <-sess.Context().Done():
			return nil
		}
	}
}

// write inserts batch, retrying with backoff until it succeeds or ctx
// ends: a database outage stalls the persister, it never skips messages.
func (p *Persister) write(ctx context.Context, batch []natter.Message) error {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		n, err := p.cfg.Store.Insert(ctx, batch)
		if err == nil {
			p.metrics.batchSeconds.Observe(time.Since(start).Seconds())
			p.metrics.batchSize.Observe(float64(len(batch)))
			p.metrics.rows.Add(float64(n))
			p.metrics.duplicates.Add(float64(int64(len(batch)) - n))
			return nil
		}
		p.metrics.errors.Inc()
		p.log.Warn("insert failed, retrying", "rows", len(batch), "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// decode parses and checks a record; a record that could never be stored
// is refused here rather than blocking its partition forever.
func decode(v []byte) (natter.Message, error) {
	var m natter.Message
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("not a message: %w", err)
	}
	if err := natter.CheckRoom(m.Room); err != nil {
		return m, err
	}
	if _, err := natter.ParseID(m.ID); err != nil {
		return m, err
	}
	if err := natter.CheckBody(m.Body, 1<<20); err != nil {
		return m, err
	}
	return m, nil
}
