// One process: started from a Command, ready when its URL answers 200,
// stopped with SIGTERM and killed if it does not exit in time, started
// again with the same command.

package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrKilled is what Stop returns (wrapped) for a process that had not
// exited when its context ended, and was killed.
var ErrKilled = errors.New("not stopped by SIGTERM in time; killed")

// readyPoll is how often WaitReady asks; readyAsk how long one asking may
// take.
const (
	readyPoll = 50 * time.Millisecond
	readyAsk  = 5 * time.Second
)

// Command is a process to run.
type Command struct {
	Name string   // names it in errors
	Path string   // the binary
	Args []string // its arguments, without the binary
	Env  []string // its environment; nil: this process's
	// Ready is a URL that answers 200 once the process is ready; empty:
	// ready once started.
	Ready string
	// Output receives its standard output and error; nil: discarded.
	Output io.Writer
	// Prefix, if set, goes before each line written to Output, as
	// "prefix | line", each line written whole in one Write.
	Prefix string
	// Stdout, if set, receives its standard output instead of Output,
	// as it is.
	Stdout io.Writer
	// Group runs it in a process group of its own, which Kill ends
	// whole: for a process that starts processes of its own.
	Group bool
}

// Process is a started Command.
type Process struct {
	c Command

	mu  sync.Mutex
	cur *run // the latest start
}

// run is one start of a process.
type run struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited and its output is written
	err  error         // what Wait returned; read only after done
}

// Start starts the command. It does not wait for readiness: see
// WaitReady.
func (c Command) Start() (*Process, error) {
	p := &Process{c: c}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed when the process (of its latest start) has exited.
func (p *Process) Done() <-chan struct{} { return p.current().done }

// Err is how the process exited (nil: status 0), once Done is closed;
// nil while it runs.
func (p *Process) Err() error {
	r := p.current()
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Cmd is the command of the latest start, for its Process (to pause it
// with SIGSTOP, say) and arguments. Do not Wait on it: Process does.
func (p *Process) Cmd() *exec.Cmd { return p.current().cmd }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.current().cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.c.Name, err)
	}
	return nil
}

// Kill kills the process (its group, with Command.Group) and waits until
// it is gone.
func (p *Process) Kill() {
	r := p.current()
	p.kill(r)
	<-r.done
}

// WaitReady waits until the Ready URL answers 200. It fails when the
// process exits first, or when ctx ends, with context.Cause(ctx) and
// what the URL last said.
func (p *Process) WaitReady(ctx context.Context) error {
	r := p.current()
	if p.c.Ready == "" {
		return nil
	}
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		last := p.askReady(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("%s exited during start: %s", p.c.Name, exitText(r.err))
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", p.c.Name, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit. When ctx ends
// first it kills the process and returns ErrKilled. A process that had
// exited already is stopped: nil. An exit with another status than 0 is
// an error.
func (p *Process) Stop(ctx context.Context) error {
	return p.awaitStop(ctx, p.terminate())
}

// Restart starts the command again once the process has exited, and
// waits until it is ready.
func (p *Process) Restart(ctx context.Context) error {
	select {
	case <-p.current().done:
	default:
		return fmt.Errorf("restart %s: still running", p.c.Name)
	}
	if err := p.start(); err != nil {
		return err
	}
	return p.WaitReady(ctx)
}

func (p *Process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

func (p *Process) start() error {
	c := p.c
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	var lines *lineWriter
	if c.Output != nil {
		out := c.Output
		if c.Prefix != "" {
			lines = &lineWriter{w: c.Output, prefix: fmt.Sprintf("%-16s | ", c.Prefix)}
			out = lines
		}
		// One writer for both: exec then copies them through one pipe,
		// in the order the process wrote them.
		cmd.Stdout, cmd.Stderr = out, out
	}
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	if c.Group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	go func() {
		// Wait returns once the output is copied, so nothing of it is
		// lost after done.
		r.err = cmd.Wait()
		if lines != nil {
			lines.flush()
		}
		close(r.done)
	}()
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()
	return nil
}

// terminate sends SIGTERM to a running process and returns its run; nil
// if it had exited.
func (p *Process) terminate() *run {
	r := p.current()
	select {
	case <-r.done:
		return nil
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM) // it may have exited meanwhile: Wait tells
	return r
}

// awaitStop waits for r, sent SIGTERM, to exit, and kills it when ctx
// ends first.
func (p *Process) awaitStop(ctx context.Context, r *run) error {
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("%s after SIGTERM: %w", p.c.Name, r.err)
		}
		return nil
	case <-ctx.Done():
		p.kill(r)
		<-r.done
		return fmt.Errorf("%s: %w", p.c.Name, ErrKilled)
	}
}

func (p *Process) kill(r *run) {
	if p.c.Group {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		return
	}
	_ = r.cmd.Process.Kill()
}

// askReady asks the Ready URL once: nil on 200.
func (p *Process) askReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyAsk)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.c.Ready, nil)
	if err != nil {
		return fmt.Errorf("ready URL of %s: %w", p.c.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", p.c.Ready, resp.Status)
	}
	return nil
}

// exitText says how a process exited.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lineWriter writes whole lines to w, each after prefix and in one
// Write, so that several processes' lines on one writer stay whole. A
// line longer than maxLine is cut, not held back.
type lineWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

const maxLine = 1 << 20

func (lw *lineWriter) Write(b []byte) (int, error) {
	lw.buf = append(lw.buf, b...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 && len(lw.buf) < maxLine {
			break
		}
		if i < 0 { // cut it: the rest is the next line
			lw.emit(lw.buf[:maxLine])
			lw.buf = lw.buf[maxLine:]
			continue
		}
		lw.emit(lw.buf[:i])
		lw.buf = lw.buf[i+1:]
	}
	return len(b), nil
}

// flush writes what is left of a last line without a newline.
func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		lw.emit(lw.buf)
		lw.buf = nil
	}
}

func (lw *lineWriter) emit(line []byte) {
	out := make([]byte, 0, len(lw.prefix)+len(line)+1)
	out = append(append(append(out, lw.prefix...), line...), '\n')
	_, _ = lw.w.Write(out) // an output that fails must not stop the process
}
