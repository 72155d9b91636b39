// Running a plan: start in order with readiness waits, watch for a
// process that exits, stop everything.

package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Options say how Start runs a plan.
type Options struct {
	// Bin is the natter binary; each process runs Bin <role> <flags>.
	Bin string
	// Env is every process's environment; nil: this process's.
	Env []string
	// Output receives the output of every process that has no Output of
	// its own, line by line, each line prefixed with the process's name;
	// nil: discarded.
	Output io.Writer
	// Logger logs each start (debug); nil: no log.
	Logger *slog.Logger
	// ReadyTimeout is how long each process may take to be ready once
	// Start waits for it (0: 60 s).
	ReadyTimeout time.Duration
	// Grace is how long the processes a failed Start started have to
	// exit after SIGTERM before they are killed (0: 30 s).
	Grace time.Duration
	// OneByOne starts each process only once the one before is ready.
	// Slower, but each gateway then starts into a cluster whose others
	// are up and announcing themselves, and hears of them before it
	// takes clients; a test wants that. Otherwise a region's gateways
	// start at once.
	OneByOne bool
}

// Topology is a running plan.
type Topology struct {
	members []Member
	out     io.Writer // Options.Output, one Write at a time
	o       Options
}

// Member is one process of a running topology: its plan and its
// process.
type Member struct {
	*Proc
	*Process
}

// Start runs procs (a Plan, possibly tuned) with o.Bin: each region's
// gateways, its bridge once they are ready (it dials their NATS at
// once), its persister; then it waits until every process is ready.
// With o.OneByOne it waits for each process before starting the next.
// If anything fails, or ctx ends first, it stops what it started and
// returns why.
func Start(ctx context.Context, procs []*Proc, o Options) (*Topology, error) {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
	if o.Grace == 0 {
		o.Grace = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Topology{o: o}
	if o.Output != nil {
		t.out = &syncWriter{w: o.Output}
	}
	if err := t.start(ctx, procs); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Grace)
		defer cancel()
		return nil, errors.Join(err, t.Stop(sctx))
	}
	return t, nil
}

// Members are the processes in start order.
func (t *Topology) Members() []Member { return slices.Clone(t.members) }

// Gateways are the gateways in start order: region1-gw1, region1-gw2, …
func (t *Topology) Gateways() []Member {
	var out []Member
	for _, m := range t.members {
		if m.Role == Gateway {
			out = append(out, m)
		}
	}
	return out
}

// Wait returns nil when ctx ends, or an error naming the first process
// that exits before.
func (t *Topology) Wait(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := make(chan Member, len(t.members))
	for _, m := range t.members {
		done := m.Done()
		wg.Go(func() {
			select {
			case <-done:
				exited <- m
			case <-ctx.Done():
			}
		})
	}
	select {
	case <-ctx.Done():
		return nil
	case m := <-exited:
		return fmt.Errorf("%s exited: %s", m.Name, exitText(m.Err()))
	}
}

// Stop sends every running process SIGTERM at once, gateways first, and
// waits for each to exit; those still running when ctx ends are killed
// (ErrKilled). It returns every process's stop error, joined.
func (t *Topology) Stop(ctx context.Context) error {
	var order []Member
	for _, m := range slices.Backward(t.members) {
		if m.Role == Gateway {
			order = append(order, m)
		}
	}
	for _, m := range slices.Backward(t.members) {
		if m.Role != Gateway {
			order = append(order, m)
		}
	}
	runs := make([]*run, len(order))
	for i, m := range order {
		runs[i] = m.terminate()
	}
	var errs []error
	for i, m := range order {
		errs = append(errs, m.awaitStop(ctx, runs[i]))
	}
	return errors.Join(errs...)
}

func (t *Topology) start(ctx context.Context, procs []*Proc) error {
	var region []Member // gateways started and not yet waited for
	for _, p := range procs {
		if p.Role == Bridge {
			for _, m := range region {
				if err := t.waitReady(ctx, m); err != nil {
					return err
				}
			}
			region = nil
		}
		m, err := t.launch(p)
		if err != nil {
			return err
		}
		if t.o.OneByOne {
			if err := t.waitReady(ctx, m); err != nil {
				return err
			}
			continue
		}
		if p.Role == Gateway {
			region = append(region, m)
		}
	}
	for _, m := range t.members {
		if err := t.waitReady(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) launch(p *Proc) (Member, error) {
	c := Command{Name: p.Name, Path: t.o.Bin, Args: p.Args(), Env: t.o.Env, Ready: p.ReadyURL(), Output: p.Output}
	if c.Output == nil && t.out != nil {
		c.Output, c.Prefix = t.out, p.Name
	}
	proc, err := c.Start()
	if err != nil {
		return Member{}, err
	}
	m := Member{Proc: p, Process: proc}
	t.members = append(t.members, m)
	t.o.Logger.Debug("started", "process", p.Name, "pid", proc.Cmd().Process.Pid, "addr", p.Addr)
	return m, nil
}

func (t *Topology) waitReady(ctx context.Context, m Member) error {
	d := t.o.ReadyTimeout
	ctx, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("not ready after %v", d))
	defer cancel()
	return m.WaitReady(ctx)
}

// syncWriter makes one Write at a time to w, for the lines of several
// processes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
