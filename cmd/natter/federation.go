// Flags and wiring of region federation (Redis) and repair (Kafka), shared
// by `natter bridge` and the one-process default.

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/bridge"
	"github.com/natter-chat/natter/kafka"
)

type federationFlags struct {
	region, redisURL *string
	repairDelay      *time.Duration
}

func addFederationFlags(f *flags) *federationFlags {
	return &federationFlags{
		region:      f.String("region", "local", "region of this bridge; federation skips its own region's traffic"),
		redisURL:    f.String("redis-url", "", "Redis URL federating the regions (empty: no federation)"),
		repairDelay: f.Duration("repair-delay", 2*time.Second, "how long Redis may take before another region's message is injected from Kafka"),
	}
}

// start connects federation and repair if --redis-url is set and returns
// a function running both until its context ends, and the function the
// bridge calls with each message Kafka acknowledged (nil without
// federation).
func (ff *federationFlags) start(brokers []string, topic string, nc *nats.Conn, reg *prometheus.Registry, log *slog.Logger) (func(context.Context) error, func(natter.Message), error) {
	if *ff.redisURL == "" {
		return func(ctx context.Context) error { <-ctx.Done(); return nil }, nil, nil
	}
	opt, err := redis.ParseURL(*ff.redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("--redis-url: %w", err)
	}
	rdb := redis.NewClient(opt)
	fed, err := bridge.NewFederation(bridge.FederationConfig{Region: *ff.region, NATS: nc, Redis: rdb, Log: log})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	rep, err := bridge.NewRepair(bridge.RepairConfig{Region: *ff.region, Brokers: brokers, Topic: topic,
		Sarama: kafka.NewConfig("natter-repair"), NATS: nc, Federation: fed, Delay: *ff.repairDelay, Log: log})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	reg.MustRegister(fed.Collectors()...)
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) { fed.NATSDisconnected(*ff.repairDelay) })
	return func(ctx context.Context) error {
		defer rdb.Close()
		errs := make(chan error, 2)
		go func() { errs <- fed.Run(ctx) }()
		go func() { errs <- rep.Run(ctx) }()
		return errors.Join(<-errs, <-errs)
	}, fed.Forward, nil
}
