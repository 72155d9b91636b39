// Parts of a run: the local worker, or a worker process driven over its
// standard input and output. A worker process prints JSON lines
// ({"ev":"connected"|"progress"|"result"|"error", …}) and reads one line
// "start <unix ns>" telling it when to begin publishing.

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// part is one slice of the connections, local or in another process.
type part interface {
	// connect opens the slice's connections and returns how many failed.
	connect(ctx context.Context) (snapshot, error)
	// start begins publishing (or holding) at t0.
	start(t0 time.Time) error
	// snapshot returns the latest running totals.
	snapshot() snapshot
	// result waits for the end of the run, closes the connections and
	// returns the slice's totals.
	result(ctx context.Context) (partResult, error)
}

type localPart struct{ w *worker }

func newLocalPart(cfg *Config, p *plan, i, n int) *localPart {
	return &localPart{w: newWorker(cfg, p, i, n)}
}

func (l *localPart) connect(ctx context.Context) (snapshot, error) {
	l.w.connect(ctx)
	return l.w.snapshot(), ctx.Err()
}

func (l *localPart) start(t0 time.Time) error { l.w.publish(t0); return nil }

func (l *localPart) snapshot() snapshot { return l.w.snapshot() }

func (l *localPart) result(ctx context.Context) (partResult, error) {
	return l.w.end(ctx), ctx.Err()
}

// event is a line of a worker process's output.
type event struct {
	Ev     string      `json:"ev"`
	Snap   *snapshot   `json:"snap,omitempty"`
	Result *partResult `json:"result,omitempty"`
	Err    string      `json:"err,omitempty"`
}

type remotePart struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser

	connected chan snapshot
	done      chan partResult
	failed    chan error

	mu   sync.Mutex
	last snapshot
}

func (r *remotePart) connect(ctx context.Context) (snapshot, error) {
	r.connected, r.done, r.failed = make(chan snapshot, 1), make(chan partResult, 1), make(chan error, 1)
	var err error
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		return snapshot{}, err
	}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		return snapshot{}, err
	}
	if err := r.cmd.Start(); err != nil {
		return snapshot{}, fmt.Errorf("start worker: %w", err)
	}
	go r.read(out)
	select {
	case s := <-r.connected:
		return s, nil
	case err := <-r.failed:
		return snapshot{}, err
	case <-ctx.Done():
		r.kill()
		return snapshot{}, ctx.Err()
	}
}

func (r *remotePart) read(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // not ours
		}
		switch {
		case e.Ev == "connected" && e.Snap != nil:
			r.setLast(*e.Snap)
			r.connected <- *e.Snap
		case e.Ev == "progress" && e.Snap != nil:
			r.setLast(*e.Snap)
		case e.Ev == "result" && e.Result != nil:
			r.done <- *e.Result
			return
		case e.Ev == "error":
			r.failed <- errors.New("worker: " + e.Err)
			return
		}
	}
	err := r.cmd.Wait()
	r.failed <- fmt.Errorf("worker exited early: %v", err)
}

func (r *remotePart) setLast(s snapshot) {
	r.mu.Lock()
	r.last = s
	r.mu.Unlock()
}

func (r *remotePart) start(t0 time.Time) error {
	_, err := fmt.Fprintf(r.stdin, "start %d\n", t0.UnixNano())
	return err
}

func (r *remotePart) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *remotePart) result(ctx context.Context) (partResult, error) {
	defer r.kill()
	select {
	case res := <-r.done:
		return res, nil
	case err := <-r.failed:
		return partResult{}, err
	case <-ctx.Done():
		return partResult{}, ctx.Err()
	}
}

// kill ends the worker: a clean exit after its result, else a kill.
func (r *remotePart) kill() {
	_ = r.stdin.Close()
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-exited
	}
}

// RunWorker runs worker i of n of the run cfg describes, talking to the
// process that started it over in and out (see the file comment).
func RunWorker(ctx context.Context, cfg Config, i, n int, in io.Reader, out io.Writer) error {
	enc := json.NewEncoder(out)
	var emu sync.Mutex
	emit := func(e event) { emu.Lock(); _ = enc.Encode(e); emu.Unlock() }
	fail := func(err error) error { emit(event{Ev: "error", Err: err.Error()}); return err }
	cfg.Procs, cfg.Worker, cfg.Progress = n, func(int, int) *exec.Cmd { return nil }, nil
	if err := cfg.fill(); err != nil {
		return fail(err)
	}
	if i < 0 || i >= n {
		return fail(fmt.Errorf("worker %d of %d", i, n))
	}
	p, err := newPlan(&cfg)
	if err != nil {
		return fail(err)
	}
	w := newWorker(&cfg, p, i, n)
	w.connect(ctx)
	s := w.snapshot()
	emit(event{Ev: "connected", Snap: &s})
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil {
		w.close()
		return fail(fmt.Errorf("waiting for start: %w", err))
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(line), "start "), 10, 64)
	if err != nil {
		w.close()
		return fail(fmt.Errorf("bad start line %q", line))
	}
	w.publish(time.Unix(0, ns))
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s := w.snapshot()
				emit(event{Ev: "progress", Snap: &s})
			}
		}
	}()
	res := w.end(ctx)
	close(stop)
	emit(event{Ev: "result", Result: &res})
	return nil
}
