// natter bench: the load generator (package bench) on the command line.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/bench"
)

// runBench runs `natter bench`; with --worker it is one worker process of
// a run that another `natter bench` coordinates.
func (m *Main) runBench(ctx context.Context, args []string) error {
	f := newFlags("natter bench", "natter bench: load-test gateways (or bench/cmpserver) and report throughput, latency, loss and memory", m.Stderr)
	urls := f.String("url", "ws://127.0.0.1:8080/ws", "gateway WebSocket URLs, comma-separated (cross: publishers use the first)")
	scenario := f.String("scenario", "fanout", "idle, fanout, rooms, cross or soak")
	conns := f.Int("conns", 1000, "connections")
	roomSize := f.String("room-size", "", "members per room: a number, or a range like 2-50 (default 10; fanout: all connections in one room; cross: all in one room; soak: 2-10)")
	publishers := f.Int("publishers", 0, "publishing members per room (default fanout/cross 10, rooms every member)")
	rate := f.String("rate", "500", "publishes per second, in total")
	duration := f.Duration("duration", 10*time.Second, "how long to publish, or to hold in idle")
	bodyBytes := f.Int("body-bytes", 100, "message body size in bytes")
	sources := f.Int("source-addrs", 16, "loopback source addresses to dial from (127.0.0.2 …); 0 lets the kernel choose")
	dialConc := f.Int("dial-concurrency", 64, "connections being opened at once, per process")
	drain := f.Duration("drain", 10*time.Second, "longest wait for late deliveries after publishing")
	procs := f.Int("procs", 0, "load-generator processes (default: one per 18,000 connections)")
	metricsURLs := f.String("metrics-url", "", "servers' /metrics URLs, comma-separated (default: derived from --url)")
	serverPID := f.Int("server-pid", 0, "read the server's RSS and CPU from /proc/PID instead of /metrics")
	asJSON := f.Bool("json", false, "print the report as JSON")
	runID := f.String("run-id", "", "names the run's rooms and users (default random)")
	churn := f.Float64("churn", 0, "soak: connections closed and reopened per second, each resuming its room (default conns/100, at least 1; negative: none)")
	warmup := f.Duration("warmup", 0, "soak: time before the baseline is taken (default a fifth of --duration)")
	maxGrowth := f.Float64("max-growth", 0, "soak: largest growth after warm-up of goroutines, live heap and RSS, as a fraction (default 0.05)")
	worker := f.String("worker", "", "internal: run as worker i/n of a coordinating natter bench")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	r, err := strconv.ParseFloat(*rate, 64)
	if err != nil {
		return fmt.Errorf("--rate %q: not a number", *rate)
	}
	cfg := bench.Config{
		URLs: splitList(*urls), Scenario: *scenario, Conns: *conns, RoomSize: *roomSize, Publishers: *publishers,
		Rate: r, Duration: *duration, BodyBytes: *bodyBytes, SourceAddrs: *sources, DialConcurrency: *dialConc,
		Drain: *drain, Procs: *procs, MetricsURLs: splitList(*metricsURLs), ServerPID: *serverPID, RunID: *runID,
		Progress: m.Stderr, Churn: *churn, Warmup: *warmup, MaxGrowth: *maxGrowth,
	}
	if *worker != "" {
		i, n, ok := parseWorker(*worker)
		if !ok {
			return fmt.Errorf("--worker %q: want i/n", *worker)
		}
		return bench.RunWorker(ctx, cfg, i, n, os.Stdin, m.Stdout)
	}
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	}
	cfg.Worker = func(i, n int) *exec.Cmd {
		self, err := os.Executable()
		if err != nil {
			self = os.Args[0]
		}
		wargs := append([]string{"bench"}, args...)
		wargs = append(wargs, "--run-id", cfg.RunID, "--procs", strconv.Itoa(n), "--worker", fmt.Sprintf("%d/%d", i, n))
		cmd := exec.CommandContext(ctx, self, wargs...)
		cmd.Stderr = m.Stderr
		// A worker must not profile on the coordinator's address.
		cmd.Env = withoutEnv(os.Environ(), "NATTER_PPROF_ADDR")
		return cmd
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := rep.WriteJSON(m.Stdout); err != nil {
			return err
		}
	} else {
		rep.WriteText(m.Stdout)
	}
	if rep.Soak != nil && len(rep.Soak.Failures) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(rep.Soak.Failures, "; "))
	}
	return nil
}

func parseWorker(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, found && err1 == nil && err2 == nil && n > 0 && i >= 0 && i < n
}
