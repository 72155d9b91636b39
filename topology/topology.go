// Package topology runs natter's production topology as plain processes
// on one machine: regions × gateways, a bridge per region and
// persisters, each on its own 127.0.0.x. `natter local` runs it for
// people; the end-to-end suite runs it to test the real thing.
//
// It works in two steps. Plan computes, without starting anything, what
// each process is given: its role, name, host and HTTP address, and its
// flags — the NATS cluster of each region (every gateway routed to the
// others of its region), each bridge's NATS URLs, the secure-link flags
// of each role, the Kafka, PostgreSQL and Redis links of the roles that
// use them:
//
//	procs, err := topology.Plan(topology.Config{
//		Regions: 2, Gateways: 2,
//		Kafka:    topology.Pairs("--kafka-brokers", "127.0.0.1:9092"),
//		Database: topology.Pairs("--database-url", "postgres://…"),
//		Redis:    topology.Pairs("--redis-url", "redis://127.0.0.1:6379/0"),
//	})
//
// Config.Tune changes a process's flags by name, keyed by its role,
// region and index (a link through a proxy, a shorter interval), and
// Config.Listen chooses the addresses (free ports instead of the fixed
// ones). Start then runs a plan with a natter binary: each region's
// gateways first, its bridge once they are ready (it dials their NATS at
// once), then waits until every process's /readyz answers 200. Each
// process's output goes, line by line and prefixed with its name, to one
// writer, or to a writer of its own. Stop sends every process SIGTERM
// and kills those that have not exited when its context ends.
//
// Command runs a single process the same way (readiness, stop, restart),
// for callers that start one role by hand.
package topology

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Role is what a process runs: the natter subcommand.
type Role string

// The roles of a topology.
const (
	Gateway   Role = "gateway"
	Bridge    Role = "bridge"
	Persister Role = "persister"
)

// Port names one of a process's listening ports.
type Port string

// The ports Config.Listen is asked for.
const (
	HTTP    Port = "http"    // every role's --addr: /readyz, /metrics; a gateway's WebSocket
	NATS    Port = "nats"    // a gateway's --nats-addr, the client port its region's bridge dials
	Cluster Port = "cluster" // a gateway's --nats-cluster-addr, the route port of its region's cluster
)

// MaxGateways is the most gateways a topology has: they are on
// 127.0.0.2 to 127.0.0.51, below the bridges' and persisters' 127.0.0.100
// and up.
const MaxGateways = 50

// The fixed ports used when Config.Listen is nil.
const (
	defaultHTTPPort    = 8080
	natsPort           = 4222
	clusterPort        = 6222
	bridgePort         = 9101
	persisterPort      = 9102
	firstGatewayHost   = 2
	firstRegionalHost  = 100
	defaultReadyPath   = "/readyz"
	regionNameTemplate = "region%d"
)

// Config describes a topology. The zero value of each optional field is
// documented with it.
type Config struct {
	Regions  int // at least 1
	Gateways int // per region, at least 1; MaxGateways in all
	// Persisters is how many persisters run, one in each of the first
	// Persisters regions; 0 means one per region.
	Persisters int

	// Port is every gateway's HTTP port, each gateway on its own host,
	// when Listen is nil (0: 8080). Without Listen, a gateway's NATS
	// client port is 4222 and its route port 6222; a region's bridge
	// and persister listen on 127.0.0.(100+region) ports 9101 and 9102.
	Port int
	// Listen, if set, returns the address (host:port) p listens on for
	// port, for instance a free port of p.Host. p has its role, region,
	// index, name and host set.
	Listen func(p *Proc, port Port) (string, error)
	// RouteAddr, if set, returns the address the region's other
	// gateways dial to reach gateway p's route port (clusterAddr), and
	// which p then advertises: a proxy in front of it, say. Nil: the
	// route port itself.
	RouteAddr func(p *Proc, clusterAddr string) (string, error)

	// Kafka are the Kafka link flags of every role (--kafka-brokers,
	// TLS, SASL).
	Kafka Flags
	// Topic is every role's --kafka-topic; empty: natter's default.
	Topic string
	// Group is the persisters' consumer group, given to gateways too
	// (a resume reads the group's committed offsets); empty: natter's
	// default.
	Group string
	// Database are the PostgreSQL link flags of gateways and persisters
	// (--database-url, --database-password-file).
	Database Flags
	// Redis are the bridges' Redis link flags (--redis-url, TLS,
	// password); none: no federation.
	Redis Flags
	// GatewayNATS are the gateways' NATS security flags (certificate,
	// key, CA, client and route passwords); BridgeNATS the bridges'
	// (CA, client password). None: plaintext NATS on 127.0.0.x.
	GatewayNATS, BridgeNATS Flags

	// Tune, if set, is called with each process once the plan is
	// complete, in plan order; it may change the process's flags by
	// name or set its Output. Its error ends Plan.
	Tune func(p *Proc) error
}

// Proc is one process of a topology: what it runs and where.
type Proc struct {
	Role   Role
	Region int    // its region, from 0
	Index  int    // among its region's processes of its role, from 0
	Name   string // region1-gw1, region1-bridge, region1-persister: the gateway's --id, the prefix of its output
	Host   string // the 127.0.0.x it listens on
	Addr   string // its HTTP address (host:port), its --addr
	Flags  Flags  // its flags, --addr included
	// Output, if set, receives the process's output as it is;
	// otherwise Start's Options.Output does, each line prefixed with
	// Name.
	Output io.Writer
}

// RegionName is the name of region r (from 0): region1, region2, …
func RegionName(r int) string { return fmt.Sprintf(regionNameTemplate, r+1) }

// Args are the process's arguments: its role, then its flags.
func (p *Proc) Args() []string { return append([]string{string(p.Role)}, p.Flags.Args()...) }

// ReadyURL answers 200 once the process is ready: its links are up.
func (p *Proc) ReadyURL() string { return "http://" + p.Addr + defaultReadyPath }

// URL is the gateway's base URL (http://host:port).
func (p *Proc) URL() string { return "http://" + p.Addr }

// GatewayHosts are the hosts of the gateways in plan order: 127.0.0.2,
// 127.0.0.3, … , region by region. A certificate for the gateways' NATS
// servers must be valid on them.
func (c Config) GatewayHosts() []string {
	hosts := make([]string, 0, max(c.Regions*c.Gateways, 0))
	for i := range max(c.Regions*c.Gateways, 0) {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", firstGatewayHost+i))
	}
	return hosts
}

// Plan computes every process of the topology c describes, in start
// order: region by region, its gateways, its bridge, its persister.
func Plan(c Config) ([]*Proc, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	hosts := c.GatewayHosts()
	var procs []*Proc
	for r := range c.Regions {
		gws, err := c.planGateways(r, hosts[r*c.Gateways:(r+1)*c.Gateways])
		if err != nil {
			return nil, err
		}
		procs = append(procs, gws...)
		br, err := c.planBridge(r, gws)
		if err != nil {
			return nil, err
		}
		procs = append(procs, br)
		if r < c.persisters() {
			ps, err := c.planPersister(r)
			if err != nil {
				return nil, err
			}
			procs = append(procs, ps)
		}
	}
	if c.Tune != nil {
		for _, p := range procs {
			if err := c.Tune(p); err != nil {
				return nil, fmt.Errorf("tune %s: %w", p.Name, err)
			}
		}
	}
	return procs, nil
}

func (c Config) check() error {
	var errs []error
	if c.Regions < 1 || c.Gateways < 1 {
		errs = append(errs, fmt.Errorf("%d regions of %d gateways: need at least one of each", c.Regions, c.Gateways))
	} else if c.Regions*c.Gateways > MaxGateways {
		errs = append(errs, fmt.Errorf("%d regions of %d gateways: at most %d gateways in all", c.Regions, c.Gateways, MaxGateways))
	}
	if c.Persisters < 0 || c.Persisters > c.Regions {
		errs = append(errs, fmt.Errorf("%d persisters: from 0 (one per region) to one per region, %d", c.Persisters, c.Regions))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: not a TCP port", c.Port))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	return nil
}

func (c Config) persisters() int {
	if c.Persisters == 0 {
		return c.Regions
	}
	return c.Persisters
}

// planGateways plans region r's gateways on hosts: one NATS cluster,
// named after the region, each gateway routed to every other.
func (c Config) planGateways(r int, hosts []string) ([]*Proc, error) {
	region := RegionName(r)
	gws := make([]*Proc, len(hosts))
	natsAddrs, clusterAddrs, routeAddrs := make([]string, len(hosts)), make([]string, len(hosts)), make([]string, len(hosts))
	for g, host := range hosts {
		p := &Proc{Role: Gateway, Region: r, Index: g, Name: fmt.Sprintf("%s-gw%d", region, g+1), Host: host}
		var err error
		if p.Addr, err = c.listen(p, HTTP); err != nil {
			return nil, err
		}
		if natsAddrs[g], err = c.listen(p, NATS); err != nil {
			return nil, err
		}
		if clusterAddrs[g], err = c.listen(p, Cluster); err != nil {
			return nil, err
		}
		routeAddrs[g] = clusterAddrs[g]
		if c.RouteAddr != nil {
			if routeAddrs[g], err = c.RouteAddr(p, clusterAddrs[g]); err != nil {
				return nil, fmt.Errorf("route address of %s: %w", p.Name, err)
			}
		}
		gws[g] = p
	}
	for g, p := range gws {
		p.Flags = Pairs("--open", "true", "--id", p.Name, "--region", region, "--addr", p.Addr,
			"--nats-addr", natsAddrs[g], "--nats-cluster-addr", clusterAddrs[g])
		if routeAddrs[g] != clusterAddrs[g] {
			p.Flags.Set("nats-cluster-advertise", routeAddrs[g])
		}
		var routes []string
		for i, a := range routeAddrs {
			if i != g {
				routes = append(routes, "nats://"+a)
			}
		}
		if len(routes) > 0 {
			p.Flags.Set("nats-routes", strings.Join(routes, ","))
		}
		p.Flags.Add(c.GatewayNATS)
		p.Flags.Add(c.Database)
		c.addKafka(&p.Flags, true)
	}
	return gws, nil
}

// planBridge plans region r's bridge, dialling every gateway of the
// region on its NATS client port.
func (c Config) planBridge(r int, gws []*Proc) (*Proc, error) {
	p := &Proc{Role: Bridge, Region: r, Name: RegionName(r) + "-bridge", Host: regionalHost(r)}
	var err error
	if p.Addr, err = c.listen(p, HTTP); err != nil {
		return nil, err
	}
	var urls []string
	for _, gw := range gws {
		urls = append(urls, "nats://"+gw.Flags.Get("nats-addr"))
	}
	p.Flags = Pairs("--region", RegionName(r), "--nats-url", strings.Join(urls, ","), "--addr", p.Addr)
	p.Flags.Add(c.BridgeNATS)
	p.Flags.Add(c.Redis)
	c.addKafka(&p.Flags, false)
	return p, nil
}

func (c Config) planPersister(r int) (*Proc, error) {
	p := &Proc{Role: Persister, Region: r, Name: RegionName(r) + "-persister", Host: regionalHost(r)}
	var err error
	if p.Addr, err = c.listen(p, HTTP); err != nil {
		return nil, err
	}
	p.Flags = Pairs("--addr", p.Addr)
	p.Flags.Add(c.Database)
	c.addKafka(&p.Flags, true)
	return p, nil
}

// addKafka adds the Kafka link, the topic and, if withGroup (a bridge
// has no consumer group), the group.
func (c Config) addKafka(fs *Flags, withGroup bool) {
	fs.Add(c.Kafka)
	if c.Topic != "" {
		fs.Set("kafka-topic", c.Topic)
	}
	if withGroup && c.Group != "" {
		fs.Set("kafka-group", c.Group)
	}
}

func (c Config) listen(p *Proc, port Port) (string, error) {
	if c.Listen != nil {
		addr, err := c.Listen(p, port)
		if err != nil {
			return "", fmt.Errorf("%s port of %s: %w", port, p.Name, err)
		}
		return addr, nil
	}
	n := 0
	switch {
	case p.Role == Gateway && port == HTTP:
		n = c.Port
		if n == 0 {
			n = defaultHTTPPort
		}
	case p.Role == Gateway && port == NATS:
		n = natsPort
	case p.Role == Gateway && port == Cluster:
		n = clusterPort
	case p.Role == Bridge && port == HTTP:
		n = bridgePort
	case p.Role == Persister && port == HTTP:
		n = persisterPort
	default:
		return "", fmt.Errorf("%s port of %s: a %s has none", port, p.Name, p.Role)
	}
	return net.JoinHostPort(p.Host, strconv.Itoa(n)), nil
}

// regionalHost is the host of region r's bridge and persister.
func regionalHost(r int) string { return fmt.Sprintf("127.0.0.%d", firstRegionalHost+r) }
