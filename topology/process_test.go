package topology

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the processes these tests start: with
// TOPOLOGY_HELPER set it is a stand-in for a natter role that serves
// /readyz on its --addr, writes a line to each output and, on SIGTERM,
// exits as the mode says.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TOPOLOGY_HELPER"); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	addr := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--addr="); ok {
			addr = v
		}
	}
	fmt.Println("out: " + strings.Join(args, " "))
	fmt.Fprint(os.Stderr, "err: started")
	if mode == "fail" {
		return 2
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { _ = http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	for range term {
		if mode != "stubborn" {
			break
		}
	}
	if mode == "unclean" {
		return 3
	}
	return 0
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// output is a writer tests read while processes write.
type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func helperCommand(t *testing.T, mode string, out *output) Command {
	t.Helper()
	addr := freeAddr(t, "127.0.0.1")
	return Command{Name: "helper", Path: os.Args[0], Args: []string{"--addr=" + addr}, Env: append(os.Environ(), "TOPOLOGY_HELPER="+mode),
		Ready: "http://" + addr + "/readyz", Output: out, Prefix: "helper"}
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestProcessIsReadyStopsAndRestarts(t *testing.T) {
	out := &output{}
	p, err := helperCommand(t, "clean", out).Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.WaitReady(within(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(within(t, time.Second)); err == nil {
		t.Error("Restart of a running process succeeded")
	}
	if err := p.Stop(within(t, 20*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Both outputs, prefixed, whole; the last line without a newline too.
	for _, want := range []string{"helper           | out: --addr=", "helper           | err: started\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := p.Restart(within(t, 20*time.Second)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := p.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("restarted process not running: %v", err)
	}
	p.Kill()
	if p.Err() == nil {
		t.Error("a killed process exited cleanly")
	}
	if err := p.Stop(within(t, time.Second)); err != nil {
		t.Errorf("Stop of an exited process: %v", err)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := helperCommand(t, "stubborn", &output{}).Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.WaitReady(within(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(within(t, 300*time.Millisecond)); !errors.Is(err, ErrKilled) {
		t.Fatalf("Stop: %v, want ErrKilled", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Stop returned with the process still running")
	}
}

func TestStopReportsAnUncleanExit(t *testing.T) {
	p, err := helperCommand(t, "unclean", &output{}).Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.WaitReady(within(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(within(t, 20*time.Second)); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Stop: %v, want exit status 3", err)
	}
}

func TestWaitReadyFailsWhenTheProcessExits(t *testing.T) {
	p, err := helperCommand(t, "fail", &output{}).Start()
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(within(t, 20*time.Second))
	if err == nil || !strings.Contains(err.Error(), "helper exited during start: exit status 2") {
		t.Errorf("WaitReady: %v", err)
	}
}

func TestWaitReadyEndsWithItsContext(t *testing.T) {
	c := helperCommand(t, "clean", &output{})
	c.Ready = "http://" + freeAddr(t, "127.0.0.1") + "/readyz" // nobody answers
	p, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, errors.New("not ready in time"))
	defer cancel()
	if err := p.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "helper: not ready in time (last: ") {
		t.Errorf("WaitReady: %v", err)
	}
}

// TestTopologyStartsWaitsAndStops runs a plan of stand-ins on free
// ports: every process ready, each one's lines prefixed with its name on
// the shared output, Wait reporting the one that dies, Stop ending the
// rest.
func TestTopologyStartsWaitsAndStops(t *testing.T) {
	procs, err := Plan(Config{Regions: 2, Gateways: 1, Persisters: 1,
		Listen: func(p *Proc, port Port) (string, error) { return freeAddr(t, p.Host), nil }})
	if err != nil {
		t.Fatal(err)
	}
	out := &output{}
	top, err := Start(within(t, 60*time.Second), procs, Options{Bin: os.Args[0], Env: append(os.Environ(), "TOPOLOGY_HELPER=clean"), Output: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = top.Stop(within(t, 5*time.Second)) })
	if got := len(top.Members()); got != 5 {
		t.Fatalf("%d members, want 5", got)
	}
	for _, m := range top.Members() {
		line := fmt.Sprintf("%-16s | out: %s", m.Name, strings.Join(m.Args(), " "))
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
	gws := top.Gateways()
	if len(gws) != 2 || gws[1].Name != "region2-gw1" {
		t.Fatalf("gateways %v", gws)
	}
	waited := make(chan error, 1)
	go func() { waited <- top.Wait(context.Background()) }()
	gws[1].Kill()
	if err := <-waited; err == nil || !strings.Contains(err.Error(), "region2-gw1 exited: signal: killed") {
		t.Errorf("Wait: %v", err)
	}
	if err := top.Stop(within(t, 20*time.Second)); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, m := range top.Members() {
		select {
		case <-m.Done():
		default:
			t.Errorf("%s still running after Stop", m.Name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := top.Wait(ctx); err != nil {
		t.Errorf("Wait with an ended context: %v", err)
	}
}

// TestStartStopsWhatItStartedWhenAProcessFails: a gateway that never
// gets ready fails Start, which names it and leaves nothing running.
func TestStartStopsWhatItStartedWhenAProcessFails(t *testing.T) {
	procs, err := Plan(Config{Regions: 1, Gateways: 2,
		Listen: func(p *Proc, port Port) (string, error) { return freeAddr(t, p.Host), nil }})
	if err != nil {
		t.Fatal(err)
	}
	// The second gateway is asked for readiness where it does not
	// listen.
	procs[1].Addr = freeAddr(t, "127.0.0.1")
	_, err = Start(within(t, 60*time.Second), procs, Options{Bin: os.Args[0], Env: append(os.Environ(), "TOPOLOGY_HELPER=clean"),
		ReadyTimeout: 500 * time.Millisecond, Grace: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "region1-gw2: not ready after 500ms") {
		t.Fatalf("Start: %v", err)
	}
	if resp, err := http.Get(procs[0].ReadyURL()); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after the failed Start", procs[0].Name)
	}
}

// TestOneByOneWaitsBeforeStartingTheNext: with the first gateway never
// ready, a region's second gateway starts beside it by default, and not
// at all one by one.
func TestOneByOneWaitsBeforeStartingTheNext(t *testing.T) {
	for _, oneByOne := range []bool{false, true} {
		procs, err := Plan(Config{Regions: 1, Gateways: 2,
			Listen: func(p *Proc, port Port) (string, error) { return freeAddr(t, p.Host), nil }})
		if err != nil {
			t.Fatal(err)
		}
		procs[0].Addr = freeAddr(t, "127.0.0.1") // asked where it does not listen
		out := &output{}
		_, err = Start(within(t, 60*time.Second), procs, Options{Bin: os.Args[0], Env: append(os.Environ(), "TOPOLOGY_HELPER=clean"),
			Output: out, ReadyTimeout: time.Second, Grace: 5 * time.Second, OneByOne: oneByOne})
		if err == nil || !strings.Contains(err.Error(), "region1-gw1: not ready") {
			t.Fatalf("OneByOne %v: Start: %v", oneByOne, err)
		}
		// The stand-in writes its first line at once; Stop waited for
		// it to exit, so its output is all there.
		if started := strings.Contains(out.String(), "region1-gw2      | out:"); started == oneByOne {
			t.Errorf("OneByOne %v: second gateway started: %v; output:\n%s", oneByOne, started, out.String())
		}
	}
}
