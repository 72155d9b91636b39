// Connecting a role's links at start: every link (Kafka, PostgreSQL,
// Redis, NATS) is dialled until it works, with backoff, and its state is
// what /readyz reports, so a wrong password or an untrusted certificate
// shows as "kafka: SASL authentication failed …" instead of a process
// that exits, restarts and exits again.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
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
