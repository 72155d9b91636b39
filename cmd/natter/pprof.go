// Opt-in profiling: NATTER_PPROF_ADDR=127.0.0.1:6060 serves net/http/pprof
// there, for any natter command (docs/performance.md shows how to use it).
// It is an environment variable only, not a flag, because it belongs to no
// role: it is a debugging aid for whatever process it is set on.

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves the profiler on addr until ctx ends.
func (m *Main) servePprof(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("NATTER_PPROF_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	fmt.Fprintf(m.Stderr, "natter: profiling on http://%s/debug/pprof/\n", ln.Addr())
	return nil
}
