// Repair: the durable log is the source of truth for what other regions
// said. Each region's bridges read the whole topic in their own consumer
// group (natter.RepairGroup), and inject into the local NATS every other
// region's message that Redis has not delivered within Delay of its
// timestamp. Its committed offsets make a restarted bridge catch up on
// what it missed while down, so regions converge after any Redis outage,
// lost publish or bridge restart: within Delay plus the consumer lag once
// Kafka has the message.

package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/protocol"
)

// RepairConfig configures a Repair.
type RepairConfig struct {
	Region  string
	Brokers []string
	Topic   string
	// Sarama is the client configuration (kafka.NewConfig); Repair turns
	// on periodic offset commits and starts a new group at the newest
	// offset, which it commits at once (see Setup).
	Sarama *sarama.Config
	NATS   *nats.Conn
	// Federation tells which messages already arrived through Redis.
	Federation *Federation
	// Delay is how long a message may take through Redis before it is
	// injected from Kafka (2s).
	Delay time.Duration
	Log   *slog.Logger
}

// Repair re-delivers other regions' messages that federation missed.
type Repair struct {
	cfg   RepairConfig
	log   *slog.Logger
	group string
	// client and admin are Run's, for Setup.
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// NewRepair returns a Repair; Run starts it.
func NewRepair(cfg RepairConfig) (*Repair, error) {
	if cfg.Federation == nil || cfg.NATS == nil || cfg.Sarama == nil || len(cfg.Brokers) == 0 {
		return nil, errors.New("repair: federation, NATS, brokers and sarama config are required")
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Sarama.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Sarama.Consumer.Offsets.AutoCommit.Interval = time.Second
	cfg.Sarama.Consumer.Offsets.Initial = sarama.OffsetNewest
	return &Repair{cfg: cfg, log: cfg.Log.With("role", "repair", "region", cfg.Region), group: natter.RepairGroup(cfg.Region, cfg.Topic)}, nil
}

// Run consumes until ctx ends; it returns nil after a cancel.
func (r *Repair) Run(ctx context.Context) error {
	client, err := sarama.NewClient(r.cfg.Brokers, r.cfg.Sarama)
	if err != nil {
		return fmt.Errorf("repair: kafka client: %w", err)
	}
	defer client.Close()
	// The admin only wraps the client; the deferred client.Close ends both.
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("repair: kafka admin: %w", err)
	}
	r.client, r.admin = client, admin
	group, err := sarama.NewConsumerGroupFromClient(r.group, client)
	if err != nil {
		return fmt.Errorf("repair: join group: %w", err)
	}
	r.log.Info("repair ready", "group", r.group, "delay", r.cfg.Delay)
	kafka.Consume(ctx, group, r.cfg.Topic, r, r.log)
	return nil
}

// Setup is part of sarama.ConsumerGroupHandler. A partition the group
// has never committed starts at the newest offset; Setup commits that
// start at once. Otherwise a bridge that dies before its first commit
// would start again at the newest offset of its restart, and never check
// what arrived while it was down.
func (r *Repair) Setup(sess sarama.ConsumerGroupSession) error {
	parts := sess.Claims()[r.cfg.Topic]
	if len(parts) == 0 {
		return nil
	}
	res, err := r.admin.ListConsumerGroupOffsets(r.group, map[string][]int32{r.cfg.Topic: parts})
	if err != nil {
		return fmt.Errorf("repair: committed offsets: %w", err)
	}
	var fresh []int32
	for _, p := range parts {
		b := res.GetBlock(r.cfg.Topic, p)
		if b == nil || b.Err != sarama.ErrNoError {
			return fmt.Errorf("repair: committed offset of partition %d: %v", p, b)
		}
		if b.Offset >= 0 {
			continue
		}
		newest, err := r.client.GetOffset(r.cfg.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("repair: newest offset of partition %d: %w", p, err)
		}
		sess.MarkOffset(r.cfg.Topic, p, newest, "")
		fresh = append(fresh, p)
	}
	if len(fresh) > 0 {
		sess.Commit()
		r.log.Info("repair starts new partitions at their newest offset", "partitions", fresh)
	}
	return nil
}

// Cleanup is part of sarama.ConsumerGroupHandler.
func (r *Repair) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim checks one partition's records in order.
func (r *Repair) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case rec, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if err := r.check(sess.Context(), rec); err != nil {
				return nil // session over; the record is read again
			}
			sess.MarkMessage(rec, "")
		}
	}
}

func (r *Repair) check(ctx context.Context, rec *sarama.ConsumerMessage) error {
	var m natter.Message
	if json.Unmarshal(rec.Value, &m) != nil || m.Region == r.cfg.Region || !natter.ValidRoom(m.Room) {
		return nil
	}
	if _, err := natter.ParseID(m.ID); err != nil {
		return nil
	}
	// Give Redis its chance first.
	if wait := time.Until(time.UnixMilli(m.TS).Add(r.cfg.Delay)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	f := r.cfg.Federation
	if f.Seen(m.ID) {
		return nil
	}
	injected, err := f.inject(m.ID, m.Room, protocol.EncodeMsg(m))
	if err != nil || !injected {
		return err
	}
	f.met.repaired.Inc()
	r.log.Debug("repaired", "room", m.Room, "id", m.ID, "origin", m.Region)
	return nil
}
