// Command natter runs the natter chat system: all of it in one process
// (no arguments), or one role of a production topology.
//
//	natter              gateway + embedded NATS + bridge + persister +
//	                    embedded Kafka-protocol broker + private PostgreSQL
//	natter gateway      a gateway with its embedded NATS server
//	natter bridge       NATS → Kafka
//	natter persister    Kafka → PostgreSQL
//	natter local        regions × gateways as processes on 127.0.0.x
//	natter replay       Kafka → PostgreSQL again, or print a room's log
//	natter bench        load generator: throughput, latency, loss, memory
//	natter healthcheck  GET a health URL, exit 0 on 200 (for containers)
//	natter certs        a throwaway CA, certificates and passwords for secured links
//
// Run any of them with --help for its flags and environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "natter:", err)
		os.Exit(1)
	}
}

// Main is the program: arguments and environment in, roles composed and
// run until ctx ends. Tests run it in-process.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, if set, is called with the gateway's address once it serves.
	Ready func(addr string)
}

// Run dispatches to the subcommand in args.
func (m *Main) Run(ctx context.Context, args []string) error {
	cmd := ""
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	// Profiling is for the long-running commands; a short-lived helper
	// (healthcheck, certs, help) run beside a profiled process would
	// only collide with it on the address.
	if addr := m.Getenv("NATTER_PPROF_ADDR"); addr != "" && !shortLived[cmd] {
		if err := m.servePprof(ctx, addr); err != nil {
			return err
		}
	}
	switch cmd {
	case "":
		return m.runAll(ctx, args)
	case "gateway":
		return m.runGateway(ctx, args)
	case "bridge":
		return m.runBridge(ctx, args)
	case "persister":
		return m.runPersister(ctx, args)
	case "bench":
		return m.runBench(ctx, args)
	case "local":
		return m.runLocal(ctx, args)
	case "replay":
		return m.runReplay(ctx, args)
	case "healthcheck":
		return m.runHealthcheck(ctx, args)
	case "certs":
		return m.runCerts(ctx, args)
	case "help":
		fmt.Fprintf(m.Stdout, "usage: natter [COMMAND] [--help]\n\n%s\n", commandList)
		return nil
	default:
		return fmt.Errorf("unknown command %q; try natter --help", cmd)
	}
}

// shortLived commands never serve NATTER_PPROF_ADDR.
var shortLived = map[string]bool{"healthcheck": true, "certs": true, "help": true}

// withoutEnv returns env less the variable name.
func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// commandList is what `natter help` and `natter --help` say of the
// commands.
const commandList = `Commands:
  (none)       gateway, embedded NATS, bridge, persister, embedded Kafka-protocol broker
               and a private PostgreSQL: all in one process
  gateway      a WebSocket/HTTP gateway with its embedded NATS server
  bridge       moves a region's messages from NATS to Kafka; federates regions through Redis
  persister    writes the Kafka log into PostgreSQL
  local        regions × gateways, bridges and persisters as processes on 127.0.0.x
  replay       writes the Kafka log into PostgreSQL again, or prints a room's log
  bench        load generator: throughput, latency, loss, memory
  healthcheck  GET a health URL, exit 0 on 200 (for containers)
  certs        a throwaway CA, certificates and passwords for secured links
  help         this list

Environment besides the flags' NATTER_ variables:
  NATTER_PPROF_ADDR   serve net/http/pprof on this address (long-running commands only)
  NATTER_PG_BIN       directory of the PostgreSQL server binaries for the private database`

func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}
