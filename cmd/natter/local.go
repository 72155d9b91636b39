// natter local: the production topology as plain processes on 127.0.0.x,
// for a laptop or a test machine without Docker. The topology package
// plans and runs it; this file turns natter local's flags into its
// Config.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/topology"
)

// localGrace is how long the processes have to exit after SIGTERM when
// natter local stops, before they are killed.
const localGrace = 30 * time.Second

// localFlags are natter local's flags.
type localFlags struct {
	f                       *flags
	regions, gateways, port *int
	kafka                   *kafkaFlags
	db                      *databaseFlags
	redis                   *redisFlags
	topic                   *string
	secure                  *bool
	certsDir                *string
}

func (m *Main) runLocal(ctx context.Context, args []string) error {
	lf, err := m.parseLocalFlags(args)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the natter binary: %w", err)
	}
	cfg, err := m.localConfig(lf)
	if err != nil {
		return err
	}
	procs, err := topology.Plan(cfg)
	if err != nil {
		return err
	}
	// Children must not read the parent's NATTER_ settings meant for
	// `natter local` itself: what they need is in their flags.
	top, err := topology.Start(ctx, procs, topology.Options{Bin: self, Env: filterEnv(os.Environ()), Output: m.Stderr})
	if err != nil {
		return err
	}
	defer m.stopLocal(ctx, top)
	fmt.Fprintf(m.Stdout, "natter local: %d regions × %d gateways ready (Ctrl-C stops everything)\n", cfg.Regions, cfg.Gateways)
	gws := top.Gateways()
	for _, gw := range gws {
		fmt.Fprintf(m.Stdout, "  %-14s %-8s %s\n", gw.Name, topology.RegionName(gw.Region), gw.URL())
	}
	if m.Ready != nil {
		m.Ready(gws[0].URL())
	}
	if err := top.Wait(ctx); err != nil {
		return fmt.Errorf("%w; stopping the others", err)
	}
	return nil
}

// parseLocalFlags reads natter local's flags and refuses, before any
// child starts, what each child would refuse.
func (m *Main) parseLocalFlags(args []string) (*localFlags, error) {
	f := newFlags("natter local", "natter local: run regions × gateways, a bridge and a persister per region as processes on 127.0.0.x", m.Stderr)
	lf := &localFlags{
		f:        f,
		regions:  f.Int("regions", 2, "number of regions"),
		gateways: f.Int("gateways", 2, "gateways per region"),
		kafka:    addKafkaFlags(f, "Kafka brokers (host:port,...)"),
		db:       addDatabaseFlags(f),
		redis:    addRedisFlags(f),
		topic:    f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log"),
		port:     f.Int("port", 8080, "HTTP port of every gateway (each on its own 127.0.0.x)"),
		secure: f.Bool("secure", false, "secure every NATS link of the topology: TLS on the gateways' NATS client ports and routes (mutual TLS on routes) "+
			"with a throwaway CA and one node certificate for 127.0.0.1…127.0.0.N and localhost, and random passwords on the client ports (nats.password) "+
			"and routes (nats-cluster.password), as `natter certs` makes them in --certs-dir (the CA and passwords are reused, the certificate is issued anew). "+
			"Kafka, Redis and PostgreSQL are secured with their own --kafka-*, --redis-* and --database-* flags, with or without --secure: "+
			"each one given is passed on to the gateways, bridges and persisters that use it, file paths made absolute"),
		certsDir: f.String("certs-dir", filepath.Join("natter-data", "local-certs"), "directory of --secure's CA (ca.pem, ca-key.pem), node certificate (node.pem, node-key.pem) and passwords (nats.password, nats-cluster.password)"),
	}
	if err := f.parse(args, m.Getenv); err != nil {
		return nil, err
	}
	if err := required(map[string]string{"--kafka-brokers": *lf.kafka.brokers, "--database-url": *lf.db.url, "--redis-url": *lf.redis.url}); err != nil {
		return nil, err
	}
	if *lf.regions < 1 || *lf.gateways < 1 || *lf.regions**lf.gateways > topology.MaxGateways {
		return nil, fmt.Errorf("--regions and --gateways must be at least 1, and at most %d gateways in all", topology.MaxGateways)
	}
	_, kerr := lf.kafka.cluster()
	_, derr := lf.db.config()
	_, rerr := lf.redis.options()
	if err := errors.Join(kerr, derr, rerr); err != nil {
		return nil, err
	}
	return lf, nil
}

// localConfig is the topology natter local's flags describe. The link
// flags given to `natter local` (on its command line or by environment)
// go on to the children as flags, file paths made absolute.
func (m *Main) localConfig(lf *localFlags) (topology.Config, error) {
	cfg := topology.Config{Regions: *lf.regions, Gateways: *lf.gateways, Port: *lf.port, Topic: *lf.topic}
	var err error
	if cfg.Kafka, err = forwardFlags(lf.f, flagNames(func(f *flags) { addKafkaFlags(f, "") })); err != nil {
		return cfg, err
	}
	if cfg.Database, err = forwardFlags(lf.f, flagNames(func(f *flags) { addDatabaseFlags(f) })); err != nil {
		return cfg, err
	}
	if cfg.Redis, err = forwardFlags(lf.f, flagNames(func(f *flags) { addRedisFlags(f) })); err != nil {
		return cfg, err
	}
	if *lf.secure {
		if cfg.GatewayNATS, cfg.BridgeNATS, err = m.localSecrets(*lf.certsDir, cfg.GatewayHosts()); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// stopLocal stops the topology and says what did not stop cleanly.
func (m *Main) stopLocal(ctx context.Context, top *topology.Topology) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), localGrace)
	defer cancel()
	if err := top.Stop(ctx); err != nil {
		fmt.Fprintf(m.Stderr, "natter local: %v\n", err)
	}
}

// localSecrets makes (or reuses) --secure's CA and passwords in dir and
// issues the node certificate, valid on 127.0.0.1, the gateways' hosts
// and localhost, with the functions of `natter certs`. It returns the
// NATS flags of the gateways and of the bridges.
func (m *Main) localSecrets(dir string, gatewayHosts []string) (gateway, bridge topology.Flags, err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, nil, fmt.Errorf("--certs-dir: %w", err)
	}
	hosts := append([]string{"localhost", "127.0.0.1"}, gatewayHosts...)
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
	gateway = topology.Pairs("--nats-cert-file", node.Cert, "--nats-key-file", node.Key, "--nats-ca-file", node.CA,
		"--nats-password-file", pws["nats"], "--nats-cluster-password-file", pws["nats-cluster"])
	bridge = topology.Pairs("--nats-ca-file", node.CA, "--nats-password-file", pws["nats"])
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

// forwardFlags returns, as flags for a child, those of names that were
// given to f (on the command line or by environment): a *-file flag's
// path made absolute, and so the files in a PostgreSQL URL.
func forwardFlags(f *flags, names []string) (topology.Flags, error) {
	var out topology.Flags
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
		out.Set(name, v)
	}
	return out, nil
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

// filterEnv returns env less natter's settings (NATTER_*, DATABASE_URL).
func filterEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "NATTER_") && !strings.HasPrefix(e, "DATABASE_URL=") {
			out = append(out, e)
		}
	}
	return out
}
