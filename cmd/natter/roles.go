// The roles and the all-in-one composition.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/bridge"
	"github.com/natter-chat/natter/embedded"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/postgres"
	"github.com/natter-chat/natter/web"
)

// newRegistry returns a registry with the Go runtime and process metrics.
// Besides the defaults it exports go_gc_heap_live_bytes, the heap the last
// GC found live: unlike the in-use heap it has no garbage sawtooth, so a
// leak shows in it at once (natter bench --scenario soak compares it).
func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(runtimeCollectors()...)
	return r
}

func runtimeCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
}

// natsCollectors report the embedded NATS server's connections to the
// rest of the region.
func natsCollectors(ns *embedded.NATS) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "natter_nats_routes", Help: "Route connections of the embedded NATS server to the region's other gateways."},
			func() float64 { return float64(ns.Routes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "natter_nats_leafnodes", Help: "Leaf-node connections of the embedded NATS server."},
			func() float64 { return float64(ns.LeafNodes()) }),
	}
}

func natsLinks(ns *embedded.NATS) func() ([]gateway.Link, error) {
	return func() ([]gateway.Link, error) {
		ls, err := ns.Links()
		if err != nil {
			return nil, err
		}
		out := make([]gateway.Link, len(ls))
		for i, l := range ls {
			out[i] = gateway.Link{ID: l.ID, Remote: l.Remote}
		}
		return out, nil
	}
}

// stack is what one process runs: started pieces and their closers, closed
// in reverse order.
type stack struct {
	log     *slog.Logger
	closers []func()
}

func (s *stack) defer_(f func()) { s.closers = append(s.closers, f) }

func (s *stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// gatewayFlags are shared by `natter` and `natter gateway`.
type gatewayFlags struct {
	addr, id, region, topic, group, logLevel *string
	partitions                               *int
	open                                     *bool
	presenceInterval                         *time.Duration
	sec                                      *securityFlags
	kafka                                    *kafkaFlags
	db                                       *databaseFlags

	// Set by resolveLinks.
	cluster kafka.Cluster
	store   postgres.Config
}

func addCommon(f *flags, g *gatewayFlags) {
	g.region = f.String("region", "local", "region name stamped on messages accepted here")
	g.db = addDatabaseFlags(f)
	g.topic = f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	g.group = f.String("kafka-group", natter.DefaultPersisterGroup, "Kafka consumer group of the persister")
	g.partitions = f.Int("kafka-partitions", 4, "partitions of the topic when natter creates it")
	g.logLevel = f.String("log-level", "info", "debug, info, warn or error")
	g.sec = addSecurityFlags(f)
}

// resolveLinks checks the Kafka and PostgreSQL flags and reads their
// secret files.
func (g *gatewayFlags) resolveLinks() error {
	var kerr, derr error
	g.cluster, kerr = g.kafka.cluster()
	g.store, derr = g.db.config()
	return errors.Join(kerr, derr)
}

// runAll runs every role in one process.
func (m *Main) runAll(ctx context.Context, args []string) error {
	f := newFlags("natter", "natter: the whole chat system in one process (web UI on --addr)\n\n"+commandList+"\n\nnatter COMMAND --help lists a command's flags.", m.Stderr)
	var g gatewayFlags
	g.addr = f.String("addr", ":8080", "HTTP and WebSocket listen address")
	g.kafka = addKafkaFlags(f, "Kafka brokers (host:port,...); empty runs the embedded broker")
	g.open = f.Bool("open", true, "open mode: anyone may connect under any user name")
	g.id = f.String("id", "local-1", "gateway id")
	addCommon(f, &g)
	dataDir := f.String("data-dir", "natter-data", "directory of the embedded broker's log and the private PostgreSQL")
	kafkaPort := f.Int("embedded-kafka-port", 0, "port of the embedded Kafka-protocol broker (0 = any free port)")
	pgPort := f.Int("embedded-postgres-port", 0, "port of the private PostgreSQL (0 = any free port)")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	log, err := m.logger(*g.logLevel)
	if err != nil {
		return err
	}
	if err := g.sec.resolve(f, g.open, log); err != nil {
		return err
	}
	if err := g.resolveLinks(); err != nil {
		return err
	}
	st := &stack{log: log}
	defer st.close()
	if g.store.URL == "" {
		pg, err := embedded.StartPostgres(ctx, embedded.PostgresConfig{Dir: filepath.Join(*dataDir, "postgres"), Port: *pgPort}, log)
		if err != nil {
			return err
		}
		st.defer_(func() { _ = pg.Close() })
		g.store.URL = pg.URL()
	}
	if len(g.cluster.Brokers) == 0 {
		k, err := embedded.StartKafka(embedded.KafkaConfig{Port: *kafkaPort, DataDir: filepath.Join(*dataDir, "kafka"),
			Topics: []string{*g.topic}, Partitions: *g.partitions}, log)
		if err != nil {
			return err
		}
		st.defer_(func() { _ = k.Close() })
		g.cluster = kafka.Cluster{Brokers: k.Brokers()}
	}
	ns, err := embedded.StartNATS(embedded.NATSConfig{ServerName: "natter", DontListen: true}, log)
	if err != nil {
		return err
	}
	st.defer_(func() { _ = ns.Close() })
	gs, err := m.newGatewayServer(ctx, st, log, g, ns)
	if err != nil {
		return err
	}
	if err := gs.startBackend(ctx); err != nil {
		return err
	}
	return gs.run(ctx)
}

// runGateway runs a gateway and its embedded NATS server.
func (m *Main) runGateway(ctx context.Context, args []string) error {
	f := newFlags("natter gateway", "natter gateway: WebSocket/HTTP edge with an embedded NATS server", m.Stderr)
	var g gatewayFlags
	g.addr = f.String("addr", ":8080", "HTTP and WebSocket listen address")
	g.id = f.String("id", "", "gateway id, unique in the region (default: random)")
	g.kafka = addKafkaFlags(f, "Kafka brokers (host:port,...), read on resume")
	g.open = f.Bool("open", false, "open mode: anyone may connect under any user name")
	addCommon(f, &g)
	natsAddrs := addNATSAddrFlags(f)
	g.presenceInterval = f.Duration("presence-interval", 5*time.Second, "how often the gateway announces its room members; silent for 3 intervals = gone")
	natsSec := addNATSServerFlags(f)
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if err := required(map[string]string{"--kafka-brokers": *g.kafka.brokers, "--database-url": *g.db.url}); err != nil {
		return err
	}
	log, err := m.logger(*g.logLevel)
	if err != nil {
		return err
	}
	if err := g.sec.resolve(f, g.open, log); err != nil {
		return err
	}
	if err := g.resolveLinks(); err != nil {
		return err
	}
	st := &stack{log: log}
	defer st.close()
	ncfg, err := natsAddrs.config(orDefault(*g.id, "natter-gateway"), *g.region)
	if err != nil {
		return err
	}
	warnings, err := natsSec.apply(&ncfg)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	ns, err := embedded.StartNATS(ncfg, log)
	if err != nil {
		return err
	}
	st.defer_(func() { _ = ns.Close() })
	log.Info("embedded NATS listening", "url", ns.ClientURL())
	gs, err := m.newGatewayServer(ctx, st, log, g, ns)
	if err != nil {
		return err
	}
	gs.exportNATS(ns)
	return gs.run(ctx)
}

// natsAddrFlags place a gateway's embedded NATS server in its region: the
// client port bridges connect to, the route listener and routes of the
// region's NATS cluster, and the leaf-node links.
type natsAddrFlags struct {
	addr, clusterAddr, clusterAdvertise, routes, leafRemotes, leafAddr *string
}

func addNATSAddrFlags(f *flags) *natsAddrFlags {
	return &natsAddrFlags{
		addr:             f.String("nats-addr", "127.0.0.1:4222", "client listen address of the embedded NATS server (bridges connect here)"),
		clusterAddr:      f.String("nats-cluster-addr", "", "route listen address: join the region's NATS cluster (cluster name = --region)"),
		clusterAdvertise: f.String("nats-cluster-advertise", "", "route address (host:port) the region's other gateways reach this one at, when not --nats-cluster-addr (NAT, proxy)"),
		routes:           f.String("nats-routes", "", "route URLs of the region's other gateways (nats://host:port,...)"),
		leafRemotes:      f.String("nats-leaf-remotes", "", "connect the embedded NATS as a leaf node to these hub URLs (nats-leaf://host:port,...)"),
		leafAddr:         f.String("nats-leaf-addr", "", "leaf-node listen address: be the hub leaf nodes connect to"),
	}
}

// config is the configuration of the embedded NATS server named name:
// with a route listener it joins the cluster named after region. The
// error names the flag at fault.
func (n *natsAddrFlags) config(name, region string) (embedded.NATSConfig, error) {
	host, port, err := splitHostPort(*n.addr)
	if err != nil {
		return embedded.NATSConfig{}, fmt.Errorf("--nats-addr: %w", err)
	}
	cfg := embedded.NATSConfig{ServerName: name, Host: host, Port: port,
		Routes: splitList(*n.routes), LeafRemotes: splitList(*n.leafRemotes)}
	if *n.clusterAddr != "" {
		cfg.ClusterName = region
		if cfg.ClusterHost, cfg.ClusterPort, err = splitHostPort(*n.clusterAddr); err != nil {
			return embedded.NATSConfig{}, fmt.Errorf("--nats-cluster-addr: %w", err)
		}
		if *n.clusterAdvertise != "" {
			if _, _, err := splitHostPort(*n.clusterAdvertise); err != nil {
				return embedded.NATSConfig{}, fmt.Errorf("--nats-cluster-advertise: %w", err)
			}
			cfg.ClusterAdvertise = *n.clusterAdvertise
		}
	} else if len(cfg.Routes) > 0 {
		return embedded.NATSConfig{}, errors.New("--nats-routes needs --nats-cluster-addr")
	} else if *n.clusterAdvertise != "" {
		return embedded.NATSConfig{}, errors.New("--nats-cluster-advertise needs --nats-cluster-addr")
	}
	if *n.leafAddr != "" {
		if cfg.LeafHost, cfg.LeafPort, err = splitHostPort(*n.leafAddr); err != nil {
			return embedded.NATSConfig{}, fmt.Errorf("--nats-leaf-addr: %w", err)
		}
	}
	return cfg, nil
}

// gatewayServer is a gateway composed with its links, for runAll and
// runGateway. PostgreSQL and Kafka are dialled in the background until
// they answer: live chat works meanwhile, /readyz says what is missing
// and why. runAll adds the bridge and persister with startBackend, which
// start once both are up; runGateway adds its NATS server's metrics and
// links with exportNATS; run then serves until ctx ends.
//
// What it starts is stopped by the stack's close, after run has shut the
// gateway down, so the gateway's drain still has a bridge.
type gatewayServer struct {
	st    *stack
	log   *slog.Logger
	g     gatewayFlags
	ns    *embedded.NATS
	ready func(addr string)

	store     *lazyStore
	klog      *kafkaLog
	storeUp   chan struct{} // closed once store is up
	logUp     chan struct{} // closed once klog is up
	conn      *nats.Conn    // the gateway's own
	roomConns []*nats.Conn  // its rooms' (gateway.Config.RoomConns)
	reg       *prometheus.Registry
	links     func() ([]gateway.Link, error) // set by exportNATS
	// errs receives the backend roles' ends; the first stops the gateway.
	errs chan error
}

// newGatewayServer composes a gateway configured by g on the NATS server
// ns: it starts dialling PostgreSQL and Kafka and connects to ns.
func (m *Main) newGatewayServer(ctx context.Context, st *stack, log *slog.Logger, g gatewayFlags, ns *embedded.NATS) (*gatewayServer, error) {
	s := &gatewayServer{st: st, log: log, g: g, ns: ns, ready: m.Ready,
		store:   &lazyStore{link: newLink("postgres", g.store.Target())},
		klog:    &kafkaLog{link: newLink("kafka", g.cluster.String())},
		storeUp: make(chan struct{}), logUp: make(chan struct{}),
		errs: make(chan error, 3)}
	s.dialLinks(ctx)
	conn, err := s.connect("gateway")
	if err != nil {
		return nil, err
	}
	s.conn = conn
	for i := range roomConns {
		rc, err := s.connect(fmt.Sprintf("gateway-rooms-%d", i+1))
		if err != nil {
			return nil, err
		}
		s.roomConns = append(s.roomConns, rc)
	}
	s.reg = newRegistry()
	return s, nil
}

// roomConns is how many in-process NATS connections carry a gateway's
// rooms beside its own: a NATS write that blocks holds up a quarter of
// the rooms, not all of them.
const roomConns = 4

// connect opens an in-process connection named name to the NATS server,
// closed with the stack.
func (s *gatewayServer) connect(name string) (*nats.Conn, error) {
	nc, err := s.ns.Connect(name, natsErrors(s.log))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	s.st.defer_(nc.Close)
	return nc, nil
}

// exportNATS adds what a gateway with its own NATS server shows beyond
// the one-process default: the server's metrics and its links to the
// region's other servers.
func (s *gatewayServer) exportNATS(ns *embedded.NATS) {
	s.reg.MustRegister(natsCollectors(ns)...)
	s.links = natsLinks(ns)
}

// startBackend runs the one-process default's bridge and persister
// beside the gateway, on a NATS connection of their own, once PostgreSQL
// and Kafka are up. Their ends go to errs (see run); the stack's close
// stops them.
func (s *gatewayServer) startBackend(ctx context.Context) error {
	bconn, err := s.connect("bridge")
	if err != nil {
		return err
	}
	backendCtx, stopBackend := context.WithCancel(context.WithoutCancel(ctx))
	var backend sync.WaitGroup
	s.st.defer_(func() { stopBackend(); backend.Wait() })
	backend.Add(1)
	go func() {
		defer backend.Done()
		select {
		case <-backendCtx.Done():
			return
		case <-s.storeUp:
		}
		select {
		case <-backendCtx.Done():
			return
		case <-s.logUp:
		}
		if err := s.runBackend(backendCtx, &backend, bconn); err != nil {
			s.errs <- err
		}
	}()
	return nil
}

// runBackend starts the bridge on bconn and the persister on backend,
// which report their ends on errs; it returns only an error of starting
// them (nil when started).
func (s *gatewayServer) runBackend(ctx context.Context, backend *sync.WaitGroup, bconn *nats.Conn) error {
	g := s.g
	prod, err := kafka.NewProducer(g.cluster, *g.topic, "natter-bridge")
	if err != nil {
		return err
	}
	b := bridge.New(bridge.Config{NATS: bconn, Producer: prod, Log: s.log})
	p, err := persister.New(persister.Config{Brokers: g.cluster.Brokers, Topic: *g.topic, Group: *g.group, Store: s.store.s.Load(),
		Sarama: g.cluster.Config("natter-persister"), Log: s.log})
	if err != nil {
		_ = prod.Close()
		return err
	}
	s.reg.MustRegister(b.Collectors()...)
	s.reg.MustRegister(p.Collectors()...)
	backend.Add(2)
	go func() {
		defer backend.Done()
		err := b.Run(ctx)
		_ = prod.Close()
		s.errs <- err
	}()
	go func() { defer backend.Done(); s.errs <- p.Run(ctx) }()
	return nil
}

// run serves the gateway until ctx ends, or until a backend role ends,
// which stops the gateway too.
func (s *gatewayServer) run(ctx context.Context) error {
	g := s.g
	gw, err := gateway.New(gateway.Config{
		ID: *g.id, Region: *g.region, NATS: s.conn, RoomConns: s.roomConns, History: s.store, DurableLog: s.klog,
		Open: *g.open, Limits: g.sec.limits, Security: g.sec.security, Registry: s.reg, Web: web.Handler(), Log: s.log,
		PresenceInterval: derefDuration(g.presenceInterval), Links: s.links, LinkTimeout: embedded.LinkTimeout,
		Checks: map[string]func(context.Context) error{"postgres": s.store.ping, "kafka": s.klog.ping},
	})
	if err != nil {
		return err
	}
	ln, err := s.listen()
	if err != nil {
		return err
	}
	gwCtx, stopGateway := context.WithCancel(ctx)
	defer stopGateway()
	gwErr := make(chan error, 1)
	go func() { gwErr <- gw.Run(gwCtx, ln) }()
	select {
	case err = <-gwErr:
	case err = <-s.errs:
		// A backend role failed: stop the gateway too.
		s.log.Error("backend stopped", "err", err)
		stopGateway()
		<-gwErr
	}
	return err
}

// listen opens the gateway's listener, under TLS when configured, logs
// where natter is up and calls ready.
func (s *gatewayServer) listen() (net.Listener, error) {
	g := s.g
	ln, err := net.Listen("tcp", *g.addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w (is another natter running? pick another with --addr)", *g.addr, err)
	}
	ln = g.sec.listen(ln)
	if *g.open {
		s.log.Warn("OPEN MODE: anyone can connect under any user name; do not expose this gateway to the internet")
	}
	s.log.Info("natter is up", "url", g.sec.scheme()+"://"+displayAddr(ln.Addr()))
	if s.ready != nil {
		s.ready(ln.Addr().String())
	}
	return ln, nil
}

// runBridge runs a bridge connected to a gateway's NATS.
func (m *Main) runBridge(ctx context.Context, args []string) error {
	f := newFlags("natter bridge", "natter bridge: moves a region's messages from NATS to Kafka", m.Stderr)
	natsURL := f.String("nats-url", "nats://127.0.0.1:4222", "NATS URL of the region (a gateway's embedded server)")
	nf := addNATSClientFlags(f)
	kf := addKafkaFlags(f, "Kafka brokers (host:port,...)")
	topic := f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	partitions := f.Int("kafka-partitions", 4, "partitions of the topic when natter creates it")
	addr := f.String("addr", "", "listen address for /healthz, /readyz and /metrics (empty: none)")
	logLevel := f.String("log-level", "info", "debug, info, warn or error")
	maxInflight := f.Int("max-inflight", bridge.DefaultMaxInflight, "messages handed to Kafka and not yet acknowledged; more are refused at once (gateways retry), which bounds memory while Kafka is down")
	fed := addFederationFlags(f)
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if err := required(map[string]string{"--kafka-brokers": *kf.brokers}); err != nil {
		return err
	}
	if *maxInflight < 1 {
		return errors.New("--max-inflight must be positive")
	}
	log, err := m.logger(*logLevel)
	if err != nil {
		return err
	}
	cluster, kerr := kf.cluster()
	natsOpts, nerr := nf.options()
	if err := errors.Join(kerr, nerr, fed.resolve()); err != nil {
		return err
	}
	defer fed.close()
	b := &bridgeRole{log: log, reg: newRegistry(), fed: fed, kf: kf, natsURL: *natsURL, natsOpts: natsOpts,
		topic: *topic, partitions: *partitions, maxInflight: *maxInflight, cluster: cluster,
		nats: &lateConn{link: newLink("nats", *natsURL)}, kafkaLink: newLink("kafka", cluster.String())}
	stop, err := m.serveMetrics(*addr, b.reg, log, b.checks())
	if err != nil {
		return err
	}
	defer stop()
	return b.run(ctx)
}

// bridgeRole is `natter bridge` once its flags are read.
type bridgeRole struct {
	log         *slog.Logger
	reg         *prometheus.Registry
	fed         *federationFlags
	kf          *kafkaFlags
	natsURL     string
	natsOpts    []nats.Option
	topic       string
	partitions  int
	maxInflight int
	// cluster is Kafka as the flags say, then as the producer's dial
	// last read them: repair uses what worked.
	cluster kafka.Cluster

	nats      *lateConn
	kafkaLink *link
}

// checks are the bridge's /readyz checks: NATS, Kafka, and Redis when
// federating.
func (b *bridgeRole) checks() map[string]func(context.Context) error {
	checks := map[string]func(context.Context) error{
		"nats":  b.nats.check,
		"kafka": b.kafkaLink.check,
	}
	if b.fed.redisOpts != nil {
		checks["redis"] = b.fed.ping
	}
	return checks
}

// run dials NATS and Kafka until both answer, then runs the bridge until
// ctx ends. It returns nil when ctx ended while dialling.
func (b *bridgeRole) run(ctx context.Context) error {
	var nc *nats.Conn
	var prod *kafka.Producer
	var up sync.WaitGroup
	up.Add(2)
	go func() { defer up.Done(); nc = b.dialNATS(ctx) }()
	go func() { defer up.Done(); prod = b.dialKafka(ctx) }()
	if b.fed.redisOpts != nil {
		stopRedis := b.watchRedis(ctx)
		defer stopRedis()
	}
	up.Wait()
	if nc != nil {
		defer nc.Close()
	}
	if prod != nil {
		defer prod.Close()
	}
	if nc == nil || prod == nil {
		return nil // stopped while connecting
	}
	return b.serve(ctx, nc, prod)
}

// serve runs the bridge from nc to prod, with federation and repair when
// Redis is configured, until ctx ends or one of them fails.
func (b *bridgeRole) serve(ctx context.Context, nc *nats.Conn, prod *kafka.Producer) error {
	runFed, forward, err := b.fed.start(b.cluster, b.topic, nc, b.reg, b.log)
	if err != nil {
		return err
	}
	br := bridge.New(bridge.Config{NATS: nc, Producer: prod, Durable: forward, Log: b.log, MaxInflight: b.maxInflight})
	b.reg.MustRegister(br.Collectors()...)
	fedCtx, stopFed := context.WithCancel(ctx)
	fedDone := make(chan error, 1)
	go func() { fedDone <- runFed(fedCtx) }()
	err = br.Run(ctx)
	stopFed()
	if ferr := <-fedDone; err == nil {
		err = ferr
	}
	return err
}

// runPersister runs a persister.
func (m *Main) runPersister(ctx context.Context, args []string) error {
	f := newFlags("natter persister", "natter persister: writes the Kafka log into PostgreSQL", m.Stderr)
	kf := addKafkaFlags(f, "Kafka brokers (host:port,...)")
	topic := f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	group := f.String("kafka-group", natter.DefaultPersisterGroup, "Kafka consumer group")
	partitions := f.Int("kafka-partitions", 4, "partitions of the topic when natter creates it")
	db := addDatabaseFlags(f)
	batch := f.Int("batch-size", 2000, "most rows written per transaction")
	addr := f.String("addr", "", "listen address for /healthz and /metrics (empty: none)")
	logLevel := f.String("log-level", "info", "debug, info, warn or error")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if err := required(map[string]string{"--kafka-brokers": *kf.brokers, "--database-url": *db.url}); err != nil {
		return err
	}
	log, err := m.logger(*logLevel)
	if err != nil {
		return err
	}
	cluster, kerr := kf.cluster()
	dbc, derr := db.config()
	if err := errors.Join(kerr, derr); err != nil {
		return err
	}
	reg := newRegistry()
	kl, pl := newLink("kafka", cluster.String()), newLink("postgres", dbc.Target())
	stop, err := m.serveMetrics(*addr, reg, log, map[string]func(context.Context) error{"kafka": kl.check, "postgres": pl.check})
	if err != nil {
		return err
	}
	defer stop()
	var store *postgres.Store
	var p *persister.Persister
	var up sync.WaitGroup
	up.Add(2)
	go func() {
		defer up.Done()
		store, _ = dial(ctx, log, pl, func() (*postgres.Store, error) {
			c, err := db.config() // again: a fixed password file is read
			if err != nil {
				return nil, err
			}
			return postgres.Open(ctx, c)
		})
	}()
	go func() {
		defer up.Done()
		// The consumer group joins only once it runs; here the link is
		// checked by creating the topic, which needs the same rights.
		cluster, _ = dial(ctx, log, kl, func() (kafka.Cluster, error) {
			c, err := kf.cluster()
			if err != nil {
				return c, err
			}
			return c, kafka.EnsureTopic(c, *topic, int32(*partitions))
		})
	}()
	up.Wait()
	if store == nil || len(cluster.Brokers) == 0 {
		if store != nil {
			store.Close()
		}
		return nil // stopped while connecting
	}
	defer store.Close()
	p, err = persister.New(persister.Config{Brokers: cluster.Brokers, Topic: *topic, Group: *group, Store: store,
		Sarama: cluster.Config("natter-persister"), BatchSize: *batch, Log: log})
	if err != nil {
		return err
	}
	reg.MustRegister(p.Collectors()...)
	return p.Run(ctx)
}

// serveMetrics serves /healthz, /readyz and /metrics on addr unless it
// is empty. /readyz runs checks, each within a second, and answers 200
// when all pass, else 503; both list each check's outcome, as a
// gateway's /readyz does.
func (m *Main) serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger, checks map[string]func(context.Context) error) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, res := gateway.RunChecks(r.Context(), checks)
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// natsReconnectErrors logs why reconnecting to NATS fails: at once when
// the reason changes, then at most every 30 s, so a server that keeps
// refusing (a changed password) does not flood the log.
func natsReconnectErrors(log *slog.Logger) nats.Option {
	var mu sync.Mutex
	var last string
	var at time.Time
	return nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil || (err.Error() == last && time.Since(at) < lastRetry) {
			return
		}
		last, at = err.Error(), time.Now()
		log.Error("nats: reconnecting", "err", err)
	})
}

// natsErrors logs asynchronous NATS errors, above all a subscription
// that fell behind and lost messages (a slow consumer).
func natsErrors(log *slog.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		log.Error("nats", "subject", subject, "err", err)
	})
}

func required(vals map[string]string) error {
	var errs []error
	for name, v := range vals {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required (or its NATTER_ environment variable)", name))
		}
	}
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil {
		return "", 0, fmt.Errorf("port %q is not a number", p)
	}
	return host, port, nil
}

func derefDuration(d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return *d
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// displayAddr turns ":8080" style addresses into something a browser opens.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
