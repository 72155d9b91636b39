// natter local: the production topology as plain processes on 127.0.0.x,
// for a laptop or a test machine without Docker.

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natter-chat/natter"
)

// child is one natter process started by `natter local`.
type child struct {
	name  string
	cmd   *exec.Cmd
	ready string // URL answering 200 when ready
	done  chan struct{}
}

func (m *Main) runLocal(ctx context.Context, args []string) error {
	f := newFlags("natter local", "natter local: run regions × gateways, a bridge and a persister per region as processes on 127.0.0.x", m.Stderr)
	regions := f.Int("regions", 2, "number of regions")
	gateways := f.Int("gateways", 2, "gateways per region")
	brokers := f.String("kafka-brokers", "", "Kafka brokers (host:port,...)")
	dbURL := f.String("database-url", "", "PostgreSQL URL", "DATABASE_URL")
	redisURL := f.String("redis-url", "", "Redis URL federating the regions")
	topic := f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	port := f.Int("port", 8080, "HTTP port of every gateway (each on its own 127.0.0.x)")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if err := required(map[string]string{"--kafka-brokers": *brokers, "--database-url": *dbURL, "--redis-url": *redisURL}); err != nil {
		return err
	}
	if *regions < 1 || *gateways < 1 || *regions**gateways > 50 {
		return errors.New("--regions and --gateways must be at least 1, and at most 50 gateways in all")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the natter binary: %w", err)
	}
	common := []string{"--kafka-brokers", *brokers, "--kafka-topic", *topic}
	var children []*child
	var outMu sync.Mutex
	start := func(name, ready string, args ...string) error {
		c := &child{name: name, ready: ready, done: make(chan struct{})}
		c.cmd = exec.Command(self, args...)
		// Children must not read the parent's NATTER_ settings meant for
		// `natter local` itself.
		c.cmd.Env = filterEnv(os.Environ())
		out, _ := c.cmd.StdoutPipe()
		c.cmd.Stderr = c.cmd.Stdout
		if err := c.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		go prefixLines(m.Stderr, &outMu, name, out)
		go func() { _ = c.cmd.Wait(); close(c.done) }()
		children = append(children, c)
		return nil
	}
	stopAll := func() {
		// Gateways first, so their drain still has bridges.
		for i := len(children) - 1; i >= 0; i-- {
			_ = children[i].cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			select {
			case <-c.done:
			case <-time.After(30 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
	}
	defer stopAll()
	var urls []string
	ip := 2
	for r := 0; r < *regions; r++ {
		region := fmt.Sprintf("region%d", r+1)
		var hosts, routes, natsURLs []string
		for g := 0; g < *gateways; g++ {
			h := fmt.Sprintf("127.0.0.%d", ip)
			ip++
			hosts = append(hosts, h)
			routes = append(routes, "nats://"+h+":6222")
			natsURLs = append(natsURLs, "nats://"+h+":4222")
		}
		for g, h := range hosts {
			id := fmt.Sprintf("%s-gw%d", region, g+1)
			addr := fmt.Sprintf("%s:%d", h, *port)
			if err := start(id, "http://"+addr+"/readyz", append([]string{"gateway", "--open", "--id", id, "--region", region,
				"--addr", addr, "--nats-addr", h + ":4222", "--nats-cluster-addr", h + ":6222", "--nats-routes", strings.Join(routes, ","),
				"--database-url", *dbURL}, common...)...); err != nil {
				return err
			}
			urls = append(urls, fmt.Sprintf("%-14s %-8s http://%s", id, region, addr))
		}
		// The bridge connects to the gateways' NATS servers at once.
		for _, c := range children[len(children)-len(hosts):] {
			if err := waitReady(ctx, c); err != nil {
				return err
			}
		}
		maddr := fmt.Sprintf("127.0.0.%d:9101", 100+r)
		if err := start(region+"-bridge", "http://"+maddr+"/healthz", append([]string{"bridge", "--region", region,
			"--nats-url", strings.Join(natsURLs, ","), "--redis-url", *redisURL, "--addr", maddr}, common...)...); err != nil {
			return err
		}
		paddr := fmt.Sprintf("127.0.0.%d:9102", 100+r)
		if err := start(region+"-persister", "http://"+paddr+"/healthz", append([]string{"persister",
			"--database-url", *dbURL, "--addr", paddr}, common...)...); err != nil {
			return err
		}
	}
	for _, c := range children {
		if err := waitReady(ctx, c); err != nil {
			return err
		}
	}
	fmt.Fprintf(m.Stdout, "natter local: %d regions × %d gateways ready (Ctrl-C stops everything)\n", *regions, *gateways)
	for _, u := range urls {
		fmt.Fprintln(m.Stdout, "  "+u)
	}
	if m.Ready != nil {
		m.Ready(strings.Fields(urls[0])[2])
	}
	exited := make(chan *child, len(children))
	for _, c := range children {
		go func() { <-c.done; exited <- c }()
	}
	select {
	case <-ctx.Done():
		return nil
	case c := <-exited:
		return fmt.Errorf("%s exited; stopping the others", c.name)
	}
}

func waitReady(ctx context.Context, c *child) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(c.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited during start", c.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 60s", c.name)
		}
	}
}

// prefixLines copies r to w line by line, each prefixed with name; mu
// keeps lines of several children whole.
func prefixLines(w io.Writer, mu *sync.Mutex, name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mu.Lock()
		fmt.Fprintf(w, "%-16s | %s\n", name, sc.Text())
		mu.Unlock()
	}
}

func filterEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "NATTER_") && !strings.HasPrefix(e, "DATABASE_URL=") {
			out = append(out, e)
		}
	}
	return out
}
