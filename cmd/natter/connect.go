// Connecting a role's links at start: every link (Kafka, PostgreSQL,
// Redis, NATS) is dialled until it works, with backoff, and its state is
// what /readyz reports, so a wrong password or an untrusted certificate
// shows as "kafka: SASL authentication failed …" instead of a process
// that exits, restarts and exits again. Until a link is up, what a role
// holds of it (lazyStore, kafkaLog, lateConn) answers with why not.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/postgres"
)

// Backoff between attempts to bring a link up: doubling from the first
// to the last, so a broken link costs a log line every 30 s, not a flood.
const (
	firstRetry = 500 * time.Millisecond
	lastRetry  = 30 * time.Second
)

// link is the state of one of a role's connections to another service.
type link struct {
	name   string // "kafka", "postgres", "redis", "nats"
	target string // what it reaches, for logs; never a secret

	mu       sync.Mutex
	up       bool
	err      error // the last failure while not up
	attempts int
}

func newLink(name, target string) *link { return &link{name: name, target: target} }

// check is the link's /readyz check: nil once up, else why not.
func (l *link) check(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.up:
		return nil
	case l.err == nil:
		return fmt.Errorf("connecting to %s", l.target)
	default:
		return fmt.Errorf("cannot connect to %s (%d attempts): %v", l.target, l.attempts, l.err)
	}
}

// unavailable is the error of a use of the link before it is up.
func (l *link) unavailable() error {
	if err := l.check(context.Background()); err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	return fmt.Errorf("%s: not connected", l.name)
}

// dial calls f until it succeeds or ctx ends, and records each outcome
// for check. A failure is logged at error level with what to expect
// next; the delay between attempts doubles up to lastRetry. ok is false
// when ctx ended first.
func dial[T any](ctx context.Context, log *slog.Logger, l *link, f func() (T, error)) (v T, ok bool) {
	wait := firstRetry
	for {
		v, err := f()
		l.mu.Lock()
		l.attempts++
		n := l.attempts
		if err == nil {
			l.up, l.err = true, nil
			l.mu.Unlock()
			if n > 1 {
				log.Info("link up", "link", l.name, "target", l.target, "attempts", n)
			}
			return v, true
		}
		l.err = err
		l.mu.Unlock()
		log.Error("link down: retrying", "link", l.name, "target", l.target, "attempt", n, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return v, false
		case <-time.After(wait):
		}
		wait = min(wait*2, lastRetry)
	}
}

// kafkaLog adapts kafka.Log to what the gateway needs; until the log's
// link is up, a resume that needs it fails with why.
type kafkaLog struct {
	link *link
	l    atomic.Pointer[kafka.Log]
}

func (k *kafkaLog) Mark(ctx context.Context, room string, since natter.ID) (gateway.LogTail, error) {
	l := k.l.Load()
	if l == nil {
		return nil, k.link.unavailable()
	}
	pos, err := l.Start(ctx, room, since)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, limit int) ([]natter.Message, bool, error) {
		return l.Read(ctx, pos, room, since, limit)
	}, nil
}

// ping is the log's /readyz check.
func (k *kafkaLog) ping(ctx context.Context) error {
	if l := k.l.Load(); l != nil {
		return l.Ping(ctx)
	}
	return k.link.check(ctx)
}

// lazyStore is the gateway's history store, which answers with why it
// cannot until PostgreSQL's link is up.
type lazyStore struct {
	link *link
	s    atomic.Pointer[postgres.Store]
}

func (z *lazyStore) Page(ctx context.Context, room, before string, limit int) ([]natter.Message, bool, error) {
	s := z.s.Load()
	if s == nil {
		return nil, false, z.link.unavailable()
	}
	return s.Page(ctx, room, before, limit)
}

func (z *lazyStore) After(ctx context.Context, room, after string, limit int) ([]natter.Message, error) {
	s := z.s.Load()
	if s == nil {
		return nil, z.link.unavailable()
	}
	return s.After(ctx, room, after, limit)
}

func (z *lazyStore) ping(ctx context.Context) error {
	if s := z.s.Load(); s != nil {
		return s.Ping(ctx)
	}
	return z.link.check(ctx)
}

// lateConn is a NATS connection that is being dialled: its check is the
// link's until it is up, then whether it is connected.
type lateConn struct {
	link *link

	mu sync.Mutex
	nc *nats.Conn
}

func (c *lateConn) set(nc *nats.Conn) {
	c.mu.Lock()
	c.nc = nc
	c.mu.Unlock()
}

// check is the connection's /readyz check.
func (c *lateConn) check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		return c.link.check(ctx)
	}
	if !c.nc.IsConnected() {
		return fmt.Errorf("reconnecting to %s: %v", c.link.target, c.nc.LastError())
	}
	return nil
}

// dialLinks dials PostgreSQL and Kafka in the background until they
// answer, puts each behind the gateway's lazy store or log as it comes up
// and closes storeUp or logUp. The stack's close stops the dialling and
// closes what it opened.
func (s *gatewayServer) dialLinks(ctx context.Context) {
	linksCtx, stopLinks := context.WithCancel(context.WithoutCancel(ctx))
	var linking sync.WaitGroup
	s.st.defer_(func() {
		stopLinks()
		linking.Wait()
		if db := s.store.s.Load(); db != nil {
			db.Close()
		}
		if l := s.klog.l.Load(); l != nil {
			_ = l.Close()
		}
	})
	linking.Add(2)
	go func() {
		defer linking.Done()
		if db, ok := dial(linksCtx, s.log, s.store.link, func() (*postgres.Store, error) { return s.openStore(linksCtx) }); ok {
			s.store.s.Store(db)
			close(s.storeUp)
		}
	}()
	go func() {
		defer linking.Done()
		if l, ok := dial(linksCtx, s.log, s.klog.link, s.openLog); ok {
			s.klog.l.Store(l)
			close(s.logUp)
		}
	}()
}

// openStore is one attempt to open the history store.
func (s *gatewayServer) openStore(ctx context.Context) (*postgres.Store, error) {
	c := s.g.store
	if *s.g.db.url != "" { // read the files again: a fixed password or CA counts
		var err error
		if c, err = s.g.db.config(); err != nil {
			return nil, err
		}
	}
	return postgres.Open(ctx, c)
}

// openLog is one attempt to open the Kafka log, creating its topic if
// need be.
func (s *gatewayServer) openLog() (*kafka.Log, error) {
	c := s.g.cluster
	if *s.g.kafka.brokers != "" { // read the files again: a fixed password or CA counts
		var err error
		if c, err = s.g.kafka.cluster(); err != nil {
			return nil, err
		}
	}
	if err := kafka.EnsureTopic(c, *s.g.topic, int32(*s.g.partitions)); err != nil {
		return nil, err
	}
	return kafka.NewLog(c, *s.g.topic, *s.g.group)
}

// dialNATS connects to the region's NATS, trying until it answers; nil
// when ctx ended first.
func (b *bridgeRole) dialNATS(ctx context.Context) *nats.Conn {
	nc, ok := dial(ctx, b.log, b.nats.link, func() (*nats.Conn, error) {
		return nats.Connect(b.natsURL, append([]nats.Option{nats.Name("natter-bridge"), nats.MaxReconnects(-1),
			nats.ReconnectWait(250 * time.Millisecond), nats.IgnoreAuthErrorAbort(), natsErrors(b.log), natsReconnectErrors(b.log)}, b.natsOpts...)...)
	})
	if !ok {
		return nil
	}
	b.nats.set(nc)
	return nc
}

// dialKafka creates the topic if need be and opens the producer, trying
// until Kafka answers; nil when ctx ended first.
func (b *bridgeRole) dialKafka(ctx context.Context) *kafka.Producer {
	prod, _ := dial(ctx, b.log, b.kafkaLink, func() (*kafka.Producer, error) {
		c, err := b.kf.cluster() // again: a fixed password file is read
		if err != nil {
			return nil, err
		}
		if err := kafka.EnsureTopic(c, b.topic, int32(b.partitions)); err != nil {
			return nil, err
		}
		p, err := kafka.NewProducer(c, b.topic, "natter-bridge")
		if err == nil {
			b.cluster = c // repair uses what worked
		}
		return p, err
	})
	return prod
}

// watchRedis dials Redis in the background until it answers, and returns
// the function that stops it. Redis does not hold up the durable hop
// (repair covers what federation misses), but a Redis that refuses is
// logged like the other links.
func (b *bridgeRole) watchRedis(ctx context.Context) (stop func()) {
	rl := newLink("redis", redisTarget(b.fed.redisOpts))
	redisCtx, stopRedis := context.WithCancel(ctx)
	redisDone := make(chan struct{})
	go func() {
		defer close(redisDone)
		dial(redisCtx, b.log, rl, func() (struct{}, error) { return struct{}{}, b.fed.ping(redisCtx) })
	}()
	return func() { stopRedis(); <-redisDone }
}
