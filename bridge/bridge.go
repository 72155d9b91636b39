// Package bridge moves a region's messages from NATS to the durable log.
//
// Gateways send each accepted message as a NATS request to
// natter.SubjectDurable; the bridges of a region share the queue group
// natter.QueueBridge, so each request reaches one bridge. The bridge
// produces the message to Kafka (idempotent, acks=all, key = room) and
// replies only once Kafka acknowledged it. A gateway that gets no reply
// (bridge down, restarting, Kafka unavailable) sends the same message, with
// the same id, again; the log may then hold a message twice, which the
// persister and resume absorb because they are idempotent on the id.
//
// Request/reply with retry was chosen over JetStream because the durable
// store already is Kafka: a second durable store in front of it would add a
// disk write and a copy to every message for no stronger guarantee.
//
// While Kafka is down the producer holds what it was given. So that an
// outage of any length holds a bounded amount of memory here, a bridge
// keeps at most Config.MaxInflight messages in the producer and refuses
// more at once ("durable log busy"; the gateway backs off and retries),
// and it ignores a request for a message it already has in flight: the
// reply to the first copy answers both.
package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/expiring"
)

// Producer is the durable log the bridge writes to.
type Producer interface {
	// Produce queues value under key and calls done once with the outcome.
	Produce(key string, value []byte, ts time.Time, done func(error))
}

// Config configures a Bridge.
type Config struct {
	// NATS is the region's NATS connection; the bridge does not close it.
	NATS *nats.Conn
	// Producer writes to Kafka.
	Producer Producer
	// Durable, if set, is called with each message Kafka acknowledged,
	// from the producer's callback; it must not block. Federation's
	// Forward is one.
	Durable func(natter.Message)
	// Log receives the bridge's logs; nil means slog.Default().
	Log *slog.Logger
	// MaxInflight is the most messages handed to the producer and not
	// yet answered; past it requests are refused at once. 0 means
	// DefaultMaxInflight.
	MaxInflight int
}

// DefaultMaxInflight is Config.MaxInflight's default: at the 4 KiB
// largest body, about 100 MiB held while Kafka is down.
const DefaultMaxInflight = 20000

// Bridge is the NATS → Kafka durable hop.
type Bridge struct {
	cfg      Config
	log      *slog.Logger
	inflight sync.WaitGroup
	metrics  *metrics
	cids     *cidCache

	mu     sync.Mutex
	flying map[string]struct{} // ids handed to the producer, not yet answered
}

// New returns a bridge; Run starts it.
func New(cfg Config) *Bridge {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	return &Bridge{cfg: cfg, log: log.With("role", "bridge"), metrics: newMetrics(), cids: newCIDCache(15*time.Minute, 1<<20),
		flying: make(map[string]struct{})}
}

// Run serves durable requests until ctx is cancelled, then stops taking
// new ones and waits for those in flight to be answered. It returns nil
// after a cancel.
func (b *Bridge) Run(ctx context.Context) error {
	sub, err := b.cfg.NATS.QueueSubscribe(natter.SubjectDurable, natter.QueueBridge, b.handle)
	if err != nil {
		return fmt.Errorf("bridge: subscribe %s: %w", natter.SubjectDurable, err)
	}
	// A deep pending limit: requests are small and the producer applies
	// back-pressure by blocking the handler.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return fmt.Errorf("bridge: pending limits: %w", err)
	}
	b.log.Info("bridge ready", "subject", natter.SubjectDurable, "queue", natter.QueueBridge)
	<-ctx.Done()
	b.drain(sub)
	b.inflight.Wait()
	b.log.Info("bridge stopped")
	return nil
}

// drainWait bounds how long a stopping bridge waits for the requests it
// received to be handled.
const drainWait = 10 * time.Second

// drain stops receiving and waits until what was received is handled: the
// subscription closes when its last message is. Without a NATS connection
// the drain cannot finish (and replies could not be sent anyway): then it
// waits no longer, and only the produce callbacks are waited for.
func (b *Bridge) drain(sub *nats.Subscription) {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	lost := b.cfg.NATS.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer b.cfg.NATS.RemoveStatusListener(lost)
	if err := sub.Drain(); err != nil {
		b.log.Warn("bridge drain", "err", err)
		return
	}
	if !b.cfg.NATS.IsConnected() {
		return
	}
	t := time.NewTimer(drainWait)
	defer t.Stop()
	select {
	case <-closed:
	case <-lost:
	case <-t.C:
		b.log.Warn("bridge drain: requests still unhandled", "after", drainWait)
	}
}

func (b *Bridge) handle(m *nats.Msg) {
	var msg natter.Message
	if err := json.Unmarshal(m.Data, &msg); err != nil || natter.CheckRoom(msg.Room) != nil {
		b.metrics.rejected.Inc()
		b.log.Warn("bridge: dropping malformed durable request", "bytes", len(m.Data))
		b.reply(m, natter.DurableReply{Error: "malformed message"})
		return
	}
	if _, err := natter.ParseID(msg.ID); err != nil {
		b.metrics.rejected.Inc()
		b.reply(m, natter.DurableReply{Error: "malformed id"})
		return
	}
	// A client that lost its gateway resends with the same cid through
	// another gateway, which stamps a new id: answer with the first one.
	if msg.CID != "" {
		if id, ts, ok := b.cids.get(msg.User, msg.Room, msg.CID); ok {
			b.metrics.retries.Inc()
			b.reply(m, natter.DurableReply{ID: msg.ID, OK: true, Canonical: id, CanonicalTS: ts})
			return
		}
	}
	switch b.take(msg.ID) {
	case repeat:
		return // the copy in flight answers for both
	case busy:
		b.reply(m, natter.DurableReply{ID: msg.ID, Error: "durable log busy"})
		return
	}
	b.inflight.Add(1)
	start := time.Now()
	b.cfg.Producer.Produce(msg.Room, m.Data, time.UnixMilli(msg.TS), func(err error) {
		defer b.inflight.Done()
		b.release(msg.ID)
		b.metrics.produceSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			b.metrics.produceErrors.Inc()
			b.log.Warn("kafka produce failed", "room", msg.Room, "id", msg.ID, "err", err)
			b.reply(m, natter.DurableReply{ID: msg.ID, Error: "durable log unavailable"})
			return
		}
		b.metrics.produced.Inc()
		if msg.CID != "" {
			b.cids.put(msg.User, msg.Room, msg.CID, msg.ID, msg.TS)
		}
		if b.cfg.Durable != nil {
			b.cfg.Durable(msg)
		}
		b.reply(m, natter.DurableReply{ID: msg.ID, OK: true})
	})
}

type takeResult int

const (
	taken  takeResult = iota
	repeat            // the id is in flight already
	busy              // MaxInflight ids are in flight
)

// take records id as in flight, unless it is already or MaxInflight are.
func (b *Bridge) take(id string) takeResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.flying[id]; ok {
		b.metrics.repeats.Inc()
		return repeat
	}
	if len(b.flying) >= b.cfg.MaxInflight {
		b.metrics.busy.Inc()
		return busy
	}
	b.flying[id] = struct{}{}
	b.metrics.inflight.Set(float64(len(b.flying)))
	return taken
}

func (b *Bridge) release(id string) {
	b.mu.Lock()
	delete(b.flying, id)
	b.metrics.inflight.Set(float64(len(b.flying)))
	b.mu.Unlock()
}

func (b *Bridge) reply(m *nats.Msg, r natter.DurableReply) {
	if m.Reply == "" {
		return
	}
	data, _ := json.Marshal(r)
	if err := m.Respond(data); err != nil {
		b.log.Debug("bridge reply", "err", err)
	}
}

// cidCache remembers which id a (user, room, cid) was written under, for
// ttl and at most max entries.
type cidCache struct {
	mu   sync.Mutex
	ttl  time.Duration
	cids *expiring.Set[string, cidVal]
}

type cidVal struct {
	id string
	ts int64
}

func newCIDCache(ttl time.Duration, max int) *cidCache {
	return &cidCache{ttl: ttl, cids: expiring.New[string, cidVal](max, nil)}
}

func (c *cidCache) get(user, room, cid string) (string, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cids.Get(natter.CIDKey(user, room, cid))
	return v.id, v.ts, ok
}

// put records the first id of a key; a later put of the same key keeps it.
func (c *cidCache) put(user, room, cid, id string, ts int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.cids.ExpireBefore(now.Add(-c.ttl))
	c.cids.Add(natter.CIDKey(user, room, cid), cidVal{id, ts}, now)
}
