// Package bench is natter's load generator, run as `natter bench`. It
// opens many WebSocket connections to one or more gateways, from many
// loopback source addresses (127.0.0.2, 127.0.0.3, …) so that the
// ephemeral ports of one address pair do not run out, joins them to rooms,
// publishes at a fixed rate for a duration and measures what comes back:
//
//   - connections held, deliveries per second;
//   - end-to-end latency from the scheduled send time, carried in the
//     message body, to the moment the frame holding it is read (p50, p90,
//     p99, p99.9, max). Timing from the schedule rather than from the
//     actual write keeps a slow server from hiding its delay (coordinated
//     omission);
//   - lost and duplicated deliveries: every member of a room must receive
//     every message sent to it exactly once, its sender included;
//   - the generator's own CPU use, and each server's resident memory,
//     goroutines and CPU scraped from its /metrics.
//
// # Scenarios
//
//	idle    connections join rooms and send nothing: memory per connection
//	fanout  one room holding every connection; Publishers of them publish
//	rooms   many rooms of RoomSize members; every member publishes
//	cross   publishers on the first gateway, subscribers on the others
//	soak    rooms (of 2-10 by default) for a long Duration, with churn:
//	        Churn connections a second are closed and reopened, resuming
//	        their room from the newest message they saw; checks that the
//	        servers' footprint stays flat (see Soak)
//
// A room is kept on one gateway, so fanout, rooms and idle spread over
// several gateways without them sharing NATS. cross needs gateways that
// share a region's NATS.
//
// # Soak
//
// The soak scenario samples every server's /metrics (goroutines, live heap
// at the last GC, resident memory, and the sum of its *_errors_total
// counters) and the load generator's own footprint a few hundred times over
// the run. It compares the median of the second half of the samples after
// Warmup with the median of the first half: the run fails when a server's
// goroutines, live heap or RSS grew by more than MaxGrowth (and by more
// than a small absolute noise floor), or when a message was lost or
// duplicated, a send failed or went unacked, an error frame came, a
// connection dropped or could not be reopened, or a server's error counters
// rose. Medians of windows, rather than two samples, keep the garbage
// collector's sawtooth and a busy machine from deciding the outcome. The
// warm-up must outlast the servers' bounded memories (natter remembers
// client ids for 15 minutes, the bridge in two generations): a long soak
// wants a warm-up of twice that. The reopen uses join with since, so the
// soak is for natter, not the comparison server.
//
// # Several processes
//
// One process holds at most ~18,000 connections (a 20,000 open-file hard
// limit). With Procs > 1, Run starts that many worker processes through
// Config.Worker, gives each a slice of the connections, starts them
// together and merges their results, which they report as JSON lines.
//
// # Protocol subset
//
// The generator speaks connect{user}, join{room}, send{room, cid, body},
// and reads msg, ack and error objects, several per frame separated by
// '\n'. It expects "op" to be the first field of every server object, as
// natter and the comparison server (bench/cmpserver) write them.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"time"
)

// Scenarios.
const (
	ScenarioIdle   = "idle"
	ScenarioFanout = "fanout"
	ScenarioRooms  = "rooms"
	ScenarioCross  = "cross"
	ScenarioSoak   = "soak"
)

// MaxConnsPerProc is the most connections one process opens; more need
// several processes.
const MaxConnsPerProc = 18000

// Config describes a run. Zero values take the documented defaults.
type Config struct {
	// URLs are the gateways' WebSocket URLs (ws://host:port/ws).
	URLs []string
	// Scenario is one of the Scenario constants (fanout).
	Scenario string
	// Conns is the number of connections (1000).
	Conns int
	// RoomSize is the members per room: "10", or a uniform range "2-50"
	// (10; fanout puts everyone in one room; "0" in idle joins no room).
	RoomSize string
	// Publishers is the number of publishing members per room (fanout and
	// cross: 10; rooms: 0 = every member).
	Publishers int
	// Rate is the total publishes per second (500; 0 in idle).
	Rate float64
	// Duration is how long to publish, or in idle how long to hold (10s).
	Duration time.Duration
	// BodyBytes is the size of a message body (100).
	BodyBytes int
	// SourceAddrs is how many 127.0.0.x source addresses to dial from,
	// starting at 127.0.0.2 (16; 0 lets the kernel choose). Used only for
	// loopback IPv4 gateways.
	SourceAddrs int
	// DialConcurrency is how many connections are being opened at once (64).
	DialConcurrency int
	// Drain bounds the wait for late deliveries after publishing (10s).
	Drain time.Duration
	// Procs is the number of load-generator processes (0: enough to keep
	// each under MaxConnsPerProc).
	Procs int
	// MetricsURLs are the servers' Prometheus endpoints; empty derives
	// http://host:port/metrics from each URL.
	MetricsURLs []string
	// ServerPID, if set, is a local server process whose RSS is read from
	// /proc when it has no /metrics.
	ServerPID int
	// RunID names the run's rooms and users ("" = random).
	RunID string
	// Progress receives a progress line a second (nil: none).
	Progress io.Writer
	// Worker returns the command of worker process i of n, which must run
	// RunWorker with the same Config; needed when Procs > 1.
	Worker func(i, n int) *exec.Cmd

	// Churn is, in the soak, how many connections a second are closed and
	// reopened (Conns/100, at least 1; negative: none).
	Churn float64
	// Warmup is how long the soak runs before its baseline (Duration/5).
	Warmup time.Duration
	// MaxGrowth is the largest growth after warm-up the soak allows, as a
	// fraction (0.05).
	MaxGrowth float64
}

// fill checks c and sets the documented defaults of its zero values. The
// error names the first problem found.
func (c *Config) fill() error {
	if err := c.fillScenario(); err != nil {
		return err
	}
	if err := c.fillLoad(); err != nil {
		return err
	}
	if c.Scenario == ScenarioSoak {
		if err := c.fillSoak(); err != nil {
			return err
		}
	}
	if c.Procs <= 0 {
		c.Procs = (c.Conns + MaxConnsPerProc - 1) / MaxConnsPerProc
	}
	if c.Procs > 1 && c.Worker == nil {
		return fmt.Errorf("%d connections need %d processes, and no way to start them was given", c.Conns, c.Procs)
	}
	if len(c.MetricsURLs) == 0 {
		c.MetricsURLs = metricsURLs(c.URLs)
	}
	if c.RunID == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.RunID = hex.EncodeToString(b[:])
	}
	return nil
}

// fillScenario checks the gateway URLs and the scenario, and that only
// the soak has soak settings.
func (c *Config) fillScenario() error {
	if len(c.URLs) == 0 {
		c.URLs = []string{"ws://127.0.0.1:8080/ws"}
	}
	for _, u := range c.URLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
			return fmt.Errorf("url %q: want ws://host:port/ws", u)
		}
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioFanout
	}
	switch c.Scenario {
	case ScenarioIdle:
		c.Rate = 0
	case ScenarioFanout, ScenarioRooms, ScenarioSoak:
	case ScenarioCross:
		if len(c.URLs) < 2 {
			return errors.New("scenario cross needs at least two gateway URLs: publishers use the first, subscribers the others")
		}
	default:
		return fmt.Errorf("scenario %q: use idle, fanout, rooms, cross or soak", c.Scenario)
	}
	if c.Scenario != ScenarioSoak && (c.Churn != 0 || c.Warmup != 0 || c.MaxGrowth != 0) {
		return errors.New("churn, warmup and max growth are for the soak scenario")
	}
	return nil
}

// fillLoad checks the shape of the load: connections, rooms, publishers,
// rate, duration, bodies and how the connections are dialled.
func (c *Config) fillLoad() error {
	if c.Conns <= 0 {
		c.Conns = 1000
	}
	if c.RoomSize == "" {
		c.RoomSize = "10"
		switch c.Scenario {
		case ScenarioCross:
			c.RoomSize = fmt.Sprint(c.Conns)
		case ScenarioSoak:
			c.RoomSize = "2-10"
		}
	}
	if rs, err := parseRoomSizes(c.RoomSize); err != nil {
		return err
	} else if rs.hi == 0 && c.Scenario != ScenarioIdle {
		return errors.New("room size 0 (no rooms) is for the idle scenario only")
	}
	if c.Publishers < 0 {
		return errors.New("publishers must be 0 or more")
	}
	if c.Publishers == 0 && (c.Scenario == ScenarioFanout || c.Scenario == ScenarioCross) {
		c.Publishers = 10
	}
	if c.Rate < 0 {
		return errors.New("rate must be 0 or more")
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.BodyBytes <= 0 {
		c.BodyBytes = 100
	}
	if c.BodyBytes < 48 {
		return errors.New("body bytes must be at least 48 (the body carries the publisher, sequence and send time)")
	}
	if c.SourceAddrs < 0 || c.SourceAddrs > 250 {
		return errors.New("source addrs must be 0-250")
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = 64
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	return nil
}

// fillSoak checks the soak's rate, churn, warm-up and allowed growth.
func (c *Config) fillSoak() error {
	if c.Rate == 0 {
		return errors.New("the soak needs a publish rate")
	}
	if c.Churn == 0 {
		c.Churn = max(1, float64(c.Conns)/100)
	}
	c.Churn = max(c.Churn, 0)
	if c.Warmup == 0 {
		c.Warmup = c.Duration / 5
	}
	if c.Warmup < 0 || c.Warmup > c.Duration*4/5 {
		return errors.New("warmup must leave at least a fifth of the duration")
	}
	if c.MaxGrowth == 0 {
		c.MaxGrowth = 0.05
	}
	if c.MaxGrowth < 0 {
		return errors.New("max growth must be positive")
	}
	return nil
}

// metricsURLs derives each gateway's Prometheus endpoint,
// http(s)://host:port/metrics, from its WebSocket URL.
func metricsURLs(urls []string) []string {
	var out []string
	for _, u := range urls {
		pu, _ := url.Parse(u)
		scheme := "http"
		if pu.Scheme == "wss" {
			scheme = "https"
		}
		out = append(out, scheme+"://"+pu.Host+"/metrics")
	}
	return out
}

// Run runs the benchmark described by cfg and returns its report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	p, err := newPlan(&cfg)
	if err != nil {
		return nil, err
	}
	parts := make([]part, cfg.Procs)
	for i := range parts {
		if cfg.Procs == 1 {
			parts[i] = newLocalPart(&cfg, p, 0, 1)
		} else {
			parts[i] = &remotePart{cmd: cfg.Worker(i, cfg.Procs)}
		}
	}
	return coordinate(ctx, &cfg, p, parts)
}
