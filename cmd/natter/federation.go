// Flags and wiring of region federation (Redis) and repair (Kafka), shared
// by `natter bridge` and the one-process default.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/federation"
	"github.com/natter-chat/natter/kafka"
)

type federationFlags struct {
	region      *string
	redis       *redisFlags
	repairDelay *time.Duration

	// Set by resolve: nil without federation.
	redisOpts *redis.Options
	rdb       *redis.Client
}

func addFederationFlags(f *flags) *federationFlags {
	return &federationFlags{
		region:      f.String("region", "local", "region of this bridge; federation skips its own region's traffic"),
		redis:       addRedisFlags(f),
		repairDelay: f.Duration("repair-delay", 2*time.Second, "how long Redis may take before another region's message is injected from Kafka"),
	}
}

// ping is the bridge's /readyz check of its Redis link.
func (ff *federationFlags) ping(ctx context.Context) error {
	if err := ff.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%s: %w", redisTarget(ff.redisOpts), err)
	}
	return nil
}

// resolve checks the Redis flags and reads the password file.
func (ff *federationFlags) resolve() error {
	opts, err := ff.redis.options()
	ff.redisOpts = opts
	if err == nil && opts != nil {
		ff.rdb = redis.NewClient(opts) // dials on first use
	}
	return err
}

// close closes the Redis client, if any.
func (ff *federationFlags) close() {
	if ff.rdb != nil {
		_ = ff.rdb.Close()
	}
}

// start connects federation and repair if --redis-url is set and returns
// a function running both until its context ends, and the function the
// bridge calls with each message Kafka acknowledged (nil without
// federation).
func (ff *federationFlags) start(cluster kafka.Cluster, topic string, nc *nats.Conn, reg *prometheus.Registry, log *slog.Logger) (func(context.Context) error, func(natter.Message), error) {
	if ff.redisOpts == nil {
		return func(ctx context.Context) error { <-ctx.Done(); return nil }, nil, nil
	}
	log.Info("federating through Redis", "redis", redisTarget(ff.redisOpts))
	rdb := ff.rdb
	fed, err := federation.New(federation.Config{Region: *ff.region, NATS: nc, Redis: rdb, Log: log})
	if err != nil {
		return nil, nil, err
	}
	rep, err := federation.NewRepair(federation.RepairConfig{Region: *ff.region, Brokers: cluster.Brokers, Topic: topic,
		Sarama: cluster.Config("natter-repair"), NATS: nc, Federation: fed, Delay: *ff.repairDelay, Log: log})
	if err != nil {
		return nil, nil, err
	}
	reg.MustRegister(fed.Collectors()...)
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) { fed.NATSDisconnected(*ff.repairDelay) })
	return func(ctx context.Context) error {
		// One failing stops the other: a bridge federates with repair or
		// not at all.
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return fed.Run(ctx) })
		g.Go(func() error { return rep.Run(ctx) })
		return g.Wait()
	}, fed.Forward, nil
}
