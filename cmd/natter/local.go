// natter local: the production topology as plain processes on 127.0.0.x,
// for a laptop or a test machine without Docker.

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	kf := addKafkaFlags(f, "Kafka brokers (host:port,...)")
	db := addDatabaseFlags(f)
	rf := addRedisFlags(f)
	topic := f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	port := f.Int("port", 8080, "HTTP port of every gateway (each on its own 127.0.0.x)")
	secure := f.Bool("secure", false, "secure every NATS link of the topology: TLS on the gateways' NATS client ports and routes (mutual TLS on routes) "+
		"with a throwaway CA and one node certificate for 127.0.0.1…127.0.0.N and localhost, and random passwords on the client ports (nats.password) "+
		"and routes (nats-cluster.password), as `natter certs` makes them in --certs-dir (the CA and passwords are reused, the certificate is issued anew). "+
		"Kafka, Redis and PostgreSQL are secured with their own --kafka-*, --redis-* and --database-* flags, with or without --secure: "+
		"each one given is passed on to the gateways, bridges and persisters that use it, file paths made absolute")
	certsDir := f.String("certs-dir", filepath.Join("natter-data", "local-certs"), "directory of --secure's CA (ca.pem, ca-key.pem), node certificate (node.pem, node-key.pem) and passwords (nats.password, nats-cluster.password)")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if err := required(map[string]string{"--kafka-brokers": *kf.brokers, "--database-url": *db.url, "--redis-url": *rf.url}); err != nil {
		return err
	}
	if *regions < 1 || *gateways < 1 || *regions**gateways > 50 {
		return errors.New("--regions and --gateways must be at least 1, and at most 50 gateways in all")
	}
	// Refuse a bad link configuration before any child starts, as each
	// child would.
	_, kerr := kf.cluster()
	_, derr := db.config()
	_, rerr := rf.options()
	if err := errors.Join(kerr, derr, rerr); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the natter binary: %w", err)
	}
	// The link flags given to `natter local` (on its command line or by
	// environment) go on to the children as flags, file paths made
	// absolute.
	kafkaArgs, err := forwardFlags(f, flagNames(func(f *flags) { addKafkaFlags(f, "") }))
	if err != nil {
		return err
	}
	dbArgs, err := forwardFlags(f, flagNames(func(f *flags) { addDatabaseFlags(f) }))
	if err != nil {
		return err
	}
	redisArgs, err := forwardFlags(f, flagNames(func(f *flags) { addRedisFlags(f) }))
	if err != nil {
		return err
	}
	var gatewayNATS, bridgeNATS []string
	if *secure {
		if gatewayNATS, bridgeNATS, err = m.localSecrets(*certsDir, 1+*regions**gateways); err != nil {
			return err
		}
	}
	common := concat(kafkaArgs, []string{"--kafka-topic", *topic})
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
				"--addr", addr, "--nats-addr", h + ":4222", "--nats-cluster-addr", h + ":6222", "--nats-routes", strings.Join(routes, ",")},
				concat(gatewayNATS, dbArgs, common)...)...); err != nil {
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
		// Ready when its links are up (/readyz), not merely alive: a
		// message sent before a bridge federates would reach the other
		// regions only by luck.
		if err := start(region+"-bridge", "http://"+maddr+"/readyz", append([]string{"bridge", "--region", region,
			"--nats-url", strings.Join(natsURLs, ","), "--addr", maddr}, concat(bridgeNATS, redisArgs, common)...)...); err != nil {
			return err
		}
		paddr := fmt.Sprintf("127.0.0.%d:9102", 100+r)
		if err := start(region+"-persister", "http://"+paddr+"/readyz", append([]string{"persister",
			"--addr", paddr}, concat(dbArgs, common)...)...); err != nil {
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

// localSecrets makes (or reuses) --secure's CA and passwords in dir and
// issues the node certificate, valid on 127.0.0.1…127.0.0.lastIP and
// localhost, with the functions of `natter certs`. It returns the NATS
// flags of the gateways and of the bridges.
func (m *Main) localSecrets(dir string, lastIP int) (gateway, bridge []string, err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, nil, fmt.Errorf("--certs-dir: %w", err)
	}
	hosts := []string{"localhost"}
	for i := 1; i <= lastIP; i++ {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", i))
	}
	certs, err := issueCerts(m.Stderr, dir, hosts, "node")
	if err != nil {
		return nil, nil, fmt.Errorf("--secure: %w", err)
	}
	pws, err := makePasswords(m.Stderr, dir, "nats", "nats-cluster")
	if err != nil {
		return nil, nil, fmt.Errorf("--secure: %w", err)
	}
	node := certs["node"]
	fmt.Fprintf(m.Stdout, "natter local: NATS links secured (TLS, passwords); CA %s, node certificate and passwords beside it\n", node.CA)
	gateway = []string{"--nats-cert-file", node.Cert, "--nats-key-file", node.Key, "--nats-ca-file", node.CA,
		"--nats-password-file", pws["nats"], "--nats-cluster-password-file", pws["nats-cluster"]}
	bridge = []string{"--nats-ca-file", node.CA, "--nats-password-file", pws["nats"]}
	return gateway, bridge, nil
}

// flagNames lists the flags add registers, in the order of --help.
func flagNames(add func(*flags)) []string {
	f := newFlags("", "", io.Discard)
	add(f)
	var names []string
	f.fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
	return names
}

// forwardFlags returns, as arguments for a child, those of names that
// were given to f (on the command line or by environment): a *-file
// flag's path made absolute, and so the files in a PostgreSQL URL.
func forwardFlags(f *flags, names []string) ([]string, error) {
	var args []string
	for _, name := range names {
		if !f.isSet(name) {
			continue
		}
		v := f.fs.Lookup(name).Value.String()
		var err error
		switch {
		case strings.HasSuffix(name, "-file") && v != "":
			v, err = filepath.Abs(v)
		case name == "database-url":
			v, err = absDatabaseURL(v)
		}
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		args = append(args, "--"+name+"="+v)
	}
	return args, nil
}

// absDatabaseURL makes the file paths in a postgres:// URL's query
// (sslrootcert, sslcert, sslkey, passfile) absolute. A keyword/value
// connection string is returned as it is.
func absDatabaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return raw, nil
	}
	q := u.Query()
	changed := false
	for _, k := range []string{"sslrootcert", "sslcert", "sslkey", "passfile"} {
		v := q.Get(k)
		if v == "" || v == "system" || filepath.IsAbs(v) {
			continue
		}
		abs, err := filepath.Abs(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", k, err)
		}
		q.Set(k, abs)
		changed = true
	}
	if !changed {
		return raw, nil
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "%2F", "/") // a path reads better, and means the same
	return u.String(), nil
}

// concat joins argument lists into a new one.
func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
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
