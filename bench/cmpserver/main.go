// Command cmpserver is the comparison server of natter's benchmarks: a
// minimal but well-made gorilla/websocket broadcast server (see server.go)
// that `natter bench` drives exactly as it drives natter.
//
//	go build -o /tmp/cmpserver ./bench/cmpserver
//	/tmp/cmpserver --addr 127.0.0.1:18200
//	natter bench --url ws://127.0.0.1:18200/ws --scenario fanout
//
// It serves /ws and /metrics (Go and process collectors, for the
// benchmark's RSS and goroutine figures) and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18200", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmpserver:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "cmpserver listening on", ln.Addr())
	if err := serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "cmpserver:", err)
		os.Exit(1)
	}
}

// serve runs the server on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener) error {
	s := newServer()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
