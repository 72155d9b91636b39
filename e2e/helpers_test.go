// Helpers of the end-to-end suite: build the natter binary once, start it
// as real processes against real PostgreSQL and a real or embedded Kafka,
// and talk to it over WebSocket and HTTP like a client would.

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	topo "github.com/natter-chat/natter/topology"
)

var natterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "natter-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natterBin = filepath.Join(dir, "natter")
	build := exec.Command("go", "build", "-race", "-o", natterBin, "../cmd/natter")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build natter:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkFor calls f until it returns nil or timeout passes, then fails the
// test with f's last error.
func checkFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// service returns the value of a service environment variable set by
// scripts/services; the suite needs the services and fails without them.
func service(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: run the suite with ./scripts/test, which starts PostgreSQL, Redis and Kafka", env)
	}
	return v
}

// freshDatabase creates an empty database on the test PostgreSQL and
// returns its URL.
func freshDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, fmt.Sprintf("e2e_%d", time.Now().UnixNano()), "")
}

// createDatabase creates database name, owned by owner (empty: the
// superuser of NATTER_TEST_DATABASE_URL), dropped at cleanup, and returns
// the superuser's URL of it.
func createDatabase(t testing.TB, name, owner string) string {
	t.Helper()
	base := service(t, "NATTER_TEST_DATABASE_URL")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", base, err)
	}
	defer conn.Close(ctx)
	create := "CREATE DATABASE " + name
	if owner != "" {
		create += " OWNER " + owner
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	return strings.Replace(base, "/natter?", "/"+name+"?", 1)
}

// broker is a Kafka the suite runs against.
type broker struct {
	name string
	args func(t testing.TB) []string // extra natter flags
}

// brokers are the two Kafkas every core test runs against: real Apache
// Kafka, and the embedded broker of the one-process default.
func brokers() []broker {
	return []broker{
		{"embedded", func(testing.TB) []string { return nil }},
		{"kafka", func(t testing.TB) []string {
			return []string{"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS")}
		}},
	}
}

// proc is a running natter process: started by the topology package
// (startProc, startTopology), or by a test around its own exec.Cmd (then
// hp is nil and the test closes done once cmd exited).
type proc struct {
	t    testing.TB
	hp   *topo.Process
	cmd  *exec.Cmd // the running command: hp's latest start
	addr string
	logs *syncBuffer
	done chan struct{} // closed once cmd exited
}

// newProc wraps hp, whose output goes to logs.
func newProc(t testing.TB, hp *topo.Process, addr string, logs *syncBuffer) *proc {
	p := &proc{t: t, hp: hp, addr: addr, logs: logs}
	p.follow()
	return p
}

// follow points cmd and done at hp's latest start.
func (p *proc) follow() {
	p.cmd = p.hp.Cmd()
	done, exited := make(chan struct{}), p.hp.Done()
	go func() { <-exited; close(done) }()
	p.done = done
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string { return freeAddrOn(t, "127.0.0.1") }

func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePortOn returns a port that is free on every host at once, for
// commands that take one port and listen on it at several addresses.
// It checks each host itself: a port free on one loopback address may be
// held on another, by a listener or a client socket in TIME_WAIT.
func freePortOn(t testing.TB, hosts ...string) string {
	t.Helper()
	for range 100 {
		port := strings.Split(freeAddrOn(t, hosts[0]), ":")[1]
		free := true
		for _, h := range hosts[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				free = false
				break
			}
			_ = ln.Close()
		}
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return ""
}

// startNatter runs `natter args...` listening on a free loopback port and
// waits until /readyz answers 200. The process is stopped at cleanup.
func startNatter(t testing.TB, args ...string) *proc {
	t.Helper()
	return startProc(t, "127.0.0.1", "/readyz", args...)
}

// startProc runs `natter args... --addr host:port` on a free port of host
// and waits until ready answers 200.
func startProc(t testing.TB, host, ready string, args ...string) *proc {
	t.Helper()
	return startBin(t, natterBin, host, ready, args...)
}

// startBin is startProc with another natter binary.
func startBin(t testing.TB, bin, host, ready string, args ...string) *proc {
	t.Helper()
	addr, logs := freeAddrOn(t, host), &syncBuffer{}
	hp, err := topo.Command{Name: "natter", Path: bin, Args: append(slices.Clip(args), "--addr", addr),
		Env: childEnv(), Ready: "http://" + addr + ready, Output: logs}.Start()
	if err != nil {
		t.Fatal(err)
	}
	p := newProc(t, hp, addr, logs)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("natter %v logs:\n%s", args, tail(logs.String(), 60))
		}
	})
	p.waitReady()
	return p
}

// childEnv is the environment of the natter processes the suite starts.
func childEnv() []string { return append(os.Environ(), "NATTER_LOG_LEVEL=info") }

// restart starts the stopped or killed process again with the same
// arguments and waits until it is ready.
func (p *proc) restart() {
	p.t.Helper()
	<-p.done
	ctx, cancel := timeout(60 * time.Second)
	defer cancel()
	err := p.hp.Restart(ctx)
	p.follow()
	if err != nil {
		p.t.Fatalf("restart: %v\n%s", err, tail(p.logs.String(), 40))
	}
}

func (p *proc) waitReady() {
	p.t.Helper()
	ctx, cancel := timeout(60 * time.Second)
	defer cancel()
	if err := p.hp.WaitReady(ctx); err != nil {
		p.t.Fatalf("%v\n%s", err, tail(p.logs.String(), 40))
	}
}

// timeout is a context that ends after d, saying so.
func timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(context.Background(), d, fmt.Errorf("not within %v", d))
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// stop sends SIGTERM and waits for a clean exit, killing the process
// after 30 s.
func (p *proc) stop() {
	if p.hp == nil { // a test's own command
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				p.t.Errorf("natter exited with status %d after SIGTERM, want 0", code)
			}
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.t.Errorf("natter did not stop within 30s of SIGTERM")
		}
		return
	}
	ctx, cancel := timeout(30 * time.Second)
	defer cancel()
	if err := p.hp.Stop(ctx); err != nil {
		p.t.Errorf("stop: %v", err)
	}
	<-p.done
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.hp != nil {
		p.hp.Kill()
	} else {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// frame is any server frame.
type frame struct {
	Op       string   `json:"op"`
	Room     string   `json:"room"`
	ID       string   `json:"id"`
	User     string   `json:"user"`
	Body     string   `json:"body"`
	TS       int64    `json:"ts"`
	CID      string   `json:"cid"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Ref      string   `json:"ref"`
	Members  []string `json:"members"`
	Joined   []string `json:"joined"`
	Left     []string `json:"left"`
	Resumed  int      `json:"resumed"`
	More     bool     `json:"more"`
	Messages []frame  `json:"messages"`
	Session  string   `json:"session"`
}

// client is a WebSocket client of the natter protocol.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan frame
	wmu    sync.Mutex
	closed chan struct{}
	err    error
}

func dial(t testing.TB, p *proc) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, ws: ws, frames: make(chan frame, 1<<16), closed: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { c.close() })
	return c
}

func (c *client) readLoop() {
	defer close(c.closed)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			var f frame
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				c.err = fmt.Errorf("bad server frame %q: %v", line, err)
				return
			}
			c.frames <- f
		}
	}
}

func (c *client) close() { _ = c.ws.Close() }

func (c *client) sendJSON(v any) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) sendRaw(mt int, data []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(mt, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing after timeout.
func (c *client) next(timeout time.Duration) frame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %v (conn err: %v)", timeout, c.err)
	}
	return frame{}
}

// expect skips frames until one with op arrives and returns it.
func (c *client) expect(op string) frame {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		f := c.next(time.Until(deadline))
		if f.Op == op {
			return f
		}
		if f.Op == "error" && op != "error" {
			c.t.Fatalf("waiting for %s got error %s: %s", op, f.Code, f.Message)
		}
	}
	c.t.Fatalf("no %s frame", op)
	return frame{}
}

func (c *client) connect(user string) {
	c.t.Helper()
	c.sendJSON(map[string]any{"op": "connect", "user": user})
	c.expect("connected")
}

func (c *client) join(room, since string) frame {
	c.t.Helper()
	m := map[string]any{"op": "join", "room": room}
	if since != "" {
		m["since"] = since
	}
	c.sendJSON(m)
	return c.expect("joined")
}

// pgCount returns the number of rows and distinct ids in messages.
func pgCount(t testing.TB, url, room string) (rows, distinct int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM messages WHERE room = $1`, room).Scan(&rows, &distinct); err != nil {
		// The table exists once natter migrated; before, count nothing.
		return 0, 0
	}
	return rows, distinct
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
