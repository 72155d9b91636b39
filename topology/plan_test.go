package topology

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// names lists the processes' names in plan order.
func names(procs []*Proc) []string {
	var out []string
	for _, p := range procs {
		out = append(out, p.Name)
	}
	return out
}

func mustPlan(t *testing.T, c Config) []*Proc {
	t.Helper()
	procs, err := Plan(c)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return procs
}

func byName(t *testing.T, procs []*Proc, name string) *Proc {
	t.Helper()
	for _, p := range procs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no process %s in %v", name, names(procs))
	return nil
}

func TestPlanStartsEachRegionsGatewaysThenItsBridgeAndPersister(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 2, Gateways: 2})
	want := []string{
		"region1-gw1", "region1-gw2", "region1-bridge", "region1-persister",
		"region2-gw1", "region2-gw2", "region2-bridge", "region2-persister",
	}
	if got := names(procs); !slices.Equal(got, want) {
		t.Fatalf("plan order %v, want %v", got, want)
	}
	for _, p := range procs {
		if got := p.Args()[0]; got != string(p.Role) {
			t.Errorf("%s runs %q, want its role %q first", p.Name, got, p.Role)
		}
		if p.Flags.Get("addr") != p.Addr || p.ReadyURL() != "http://"+p.Addr+"/readyz" {
			t.Errorf("%s: --addr %q, ready URL %q, address %q", p.Name, p.Flags.Get("addr"), p.ReadyURL(), p.Addr)
		}
	}
	gw := byName(t, procs, "region2-gw2")
	if gw.Role != Gateway || gw.Region != 1 || gw.Index != 1 || gw.Host != "127.0.0.5" {
		t.Errorf("region2-gw2 is %+v, want the second gateway of the second region on 127.0.0.5", gw)
	}
}

// TestPlanWithFixedPortsIsWhatNatterLocalRuns pins every flag of a
// one-region, two-gateway topology on the fixed ports.
func TestPlanWithFixedPortsIsWhatNatterLocalRuns(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 1, Gateways: 2, Port: 9000, Topic: "chat",
		Kafka:    Pairs("--kafka-brokers", "k:9092"),
		Database: Pairs("--database-url", "postgres://db/natter"),
		Redis:    Pairs("--redis-url", "redis://r:6379/0"),
	})
	want := map[string][]string{
		"region1-gw1": {"gateway", "--open=true", "--id=region1-gw1", "--region=region1", "--addr=127.0.0.2:9000",
			"--nats-addr=127.0.0.2:4222", "--nats-cluster-addr=127.0.0.2:6222", "--nats-routes=nats://127.0.0.3:6222",
			"--database-url=postgres://db/natter", "--kafka-brokers=k:9092", "--kafka-topic=chat"},
		"region1-gw2": {"gateway", "--open=true", "--id=region1-gw2", "--region=region1", "--addr=127.0.0.3:9000",
			"--nats-addr=127.0.0.3:4222", "--nats-cluster-addr=127.0.0.3:6222", "--nats-routes=nats://127.0.0.2:6222",
			"--database-url=postgres://db/natter", "--kafka-brokers=k:9092", "--kafka-topic=chat"},
		"region1-bridge": {"bridge", "--region=region1", "--nats-url=nats://127.0.0.2:4222,nats://127.0.0.3:4222", "--addr=127.0.0.100:9101",
			"--redis-url=redis://r:6379/0", "--kafka-brokers=k:9092", "--kafka-topic=chat"},
		"region1-persister": {"persister", "--addr=127.0.0.100:9102", "--database-url=postgres://db/natter", "--kafka-brokers=k:9092", "--kafka-topic=chat"},
	}
	for _, p := range procs {
		if got := p.Args(); !slices.Equal(got, want[p.Name]) {
			t.Errorf("%s runs\n  %q\nwant\n  %q", p.Name, got, want[p.Name])
		}
	}
	if gw := byName(t, procs, "region1-gw1"); gw.URL() != "http://127.0.0.2:9000" {
		t.Errorf("gateway URL %s", gw.URL())
	}
}

func TestPlanDefaultsToPort8080(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 2, Gateways: 1})
	for _, name := range []string{"region1-gw1", "region2-gw1"} {
		if p := byName(t, procs, name); !strings.HasSuffix(p.Addr, ":8080") {
			t.Errorf("%s on %s, want port 8080", name, p.Addr)
		}
	}
	if p := byName(t, procs, "region2-bridge"); p.Addr != "127.0.0.101:9101" {
		t.Errorf("second region's bridge on %s, want 127.0.0.101:9101", p.Addr)
	}
}

// TestPlanKeepsEachRegionItsOwnCluster: a region's gateways are routed
// to each other only, named after their region, and its bridge dials
// them all and no other region's.
func TestPlanKeepsEachRegionItsOwnCluster(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 2, Gateways: 3})
	for r := range 2 {
		region := RegionName(r)
		var natsURLs, routeURLs []string
		for g := range 3 {
			gw := byName(t, procs, fmt.Sprintf("%s-gw%d", region, g+1))
			natsURLs = append(natsURLs, "nats://"+gw.Flags.Get("nats-addr"))
			routeURLs = append(routeURLs, "nats://"+gw.Flags.Get("nats-cluster-addr"))
			if gw.Flags.Get("region") != region || gw.Flags.Get("id") != gw.Name {
				t.Errorf("%s: --region %q --id %q", gw.Name, gw.Flags.Get("region"), gw.Flags.Get("id"))
			}
		}
		for g := range 3 {
			gw := byName(t, procs, fmt.Sprintf("%s-gw%d", region, g+1))
			others := slices.Delete(slices.Clone(routeURLs), g, g+1)
			if got := strings.Split(gw.Flags.Get("nats-routes"), ","); !slices.Equal(got, others) {
				t.Errorf("%s routes to %v, want the region's others %v", gw.Name, got, others)
			}
		}
		br := byName(t, procs, region+"-bridge")
		if got := br.Flags.Get("nats-url"); got != strings.Join(natsURLs, ",") {
			t.Errorf("%s dials %s, want %s", br.Name, got, strings.Join(natsURLs, ","))
		}
		if br.Flags.Get("region") != region {
			t.Errorf("%s federates as %q", br.Name, br.Flags.Get("region"))
		}
	}
}

func TestPlanOfOneGatewayPerRegionHasNoRoutes(t *testing.T) {
	for _, p := range mustPlan(t, Config{Regions: 2, Gateways: 1}) {
		if v, ok := p.Flags.Lookup("nats-routes"); ok {
			t.Errorf("%s has --nats-routes %q, with no other gateway in its region", p.Name, v)
		}
	}
}

// TestPlanGivesEachRoleOnlyItsLinks: Kafka for every role, the group not
// to bridges (they have none), PostgreSQL to gateways and persisters,
// Redis to bridges, each side's NATS security to its side.
func TestPlanGivesEachRoleOnlyItsLinks(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 1, Gateways: 1, Topic: "t", Group: "g",
		Kafka:       Pairs("--kafka-brokers", "k:9093", "--kafka-ca-file", "/ca.pem", "--kafka-sasl-mechanism", "SCRAM-SHA-512"),
		Database:    Pairs("--database-url", "postgres://db", "--database-password-file", "/db.pw"),
		Redis:       Pairs("--redis-url", "rediss://r:6380/0", "--redis-ca-file", "/ca.pem"),
		GatewayNATS: Pairs("--nats-cert-file", "/node.pem", "--nats-key-file", "/node-key.pem", "--nats-cluster-password-file", "/route.pw"),
		BridgeNATS:  Pairs("--nats-ca-file", "/nats-ca.pem", "--nats-password-file", "/nats.pw"),
	})
	has := map[Role][]string{
		Gateway:   {"kafka-brokers", "kafka-ca-file", "kafka-sasl-mechanism", "kafka-topic", "kafka-group", "database-url", "database-password-file", "nats-cert-file", "nats-key-file", "nats-cluster-password-file", "open"},
		Bridge:    {"kafka-brokers", "kafka-ca-file", "kafka-sasl-mechanism", "kafka-topic", "redis-url", "redis-ca-file", "nats-ca-file", "nats-password-file", "nats-url", "region"},
		Persister: {"kafka-brokers", "kafka-ca-file", "kafka-sasl-mechanism", "kafka-topic", "kafka-group", "database-url", "database-password-file"},
	}
	hasNot := map[Role][]string{
		Gateway:   {"redis-url", "redis-ca-file", "nats-url"},
		Bridge:    {"kafka-group", "database-url", "database-password-file", "nats-cert-file", "nats-cluster-password-file", "open"},
		Persister: {"redis-url", "nats-ca-file", "nats-password-file", "nats-cert-file", "region", "open"},
	}
	for _, p := range procs {
		for _, name := range has[p.Role] {
			if _, ok := p.Flags.Lookup(name); !ok {
				t.Errorf("%s lacks --%s: %q", p.Name, name, p.Args())
			}
		}
		for _, name := range hasNot[p.Role] {
			if _, ok := p.Flags.Lookup(name); ok {
				t.Errorf("%s has --%s, which is not its link: %q", p.Name, name, p.Args())
			}
		}
	}
	if got := byName(t, procs, "region1-bridge").Flags.Get("nats-ca-file"); got != "/nats-ca.pem" {
		t.Errorf("bridge trusts %s for NATS", got)
	}
}

func TestPlanRunsAsManyPersistersAsAsked(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 3, Gateways: 1, Persisters: 1})
	var ps []string
	for _, p := range procs {
		if p.Role == Persister {
			ps = append(ps, p.Name)
		}
	}
	if !slices.Equal(ps, []string{"region1-persister"}) {
		t.Errorf("persisters %v, want region1-persister alone", ps)
	}
	if last := procs[len(procs)-1].Name; last != "region3-bridge" {
		t.Errorf("last process %s, want region3-bridge", last)
	}
}

// TestPlanAsksListenAndRouteAddrForEveryAddress: with Listen and
// RouteAddr (free ports, a proxy in front of each route port), every
// address comes from them, and each gateway advertises the route
// address the others dial.
func TestPlanAsksListenAndRouteAddrForEveryAddress(t *testing.T) {
	next := 20000
	var asked []string
	listen := func(p *Proc, port Port) (string, error) {
		next++
		asked = append(asked, fmt.Sprintf("%s/%s@%s", p.Name, port, p.Host))
		return fmt.Sprintf("%s:%d", p.Host, next), nil
	}
	proxies := map[string]string{}
	routeAddr := func(p *Proc, cluster string) (string, error) {
		proxies[cluster] = fmt.Sprintf("127.0.0.1:%d", 30000+len(proxies))
		return proxies[cluster], nil
	}
	procs := mustPlan(t, Config{Regions: 1, Gateways: 2, Listen: listen, RouteAddr: routeAddr})
	wantAsked := []string{
		"region1-gw1/http@127.0.0.2", "region1-gw1/nats@127.0.0.2", "region1-gw1/cluster@127.0.0.2",
		"region1-gw2/http@127.0.0.3", "region1-gw2/nats@127.0.0.3", "region1-gw2/cluster@127.0.0.3",
		"region1-bridge/http@127.0.0.100", "region1-persister/http@127.0.0.100",
	}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("Listen asked for\n  %v\nwant\n  %v", asked, wantAsked)
	}
	gw1, gw2 := byName(t, procs, "region1-gw1"), byName(t, procs, "region1-gw2")
	if gw1.Addr != "127.0.0.2:20001" || gw1.Flags.Get("nats-addr") != "127.0.0.2:20002" || gw1.Flags.Get("nats-cluster-addr") != "127.0.0.2:20003" {
		t.Errorf("gw1 flags %q", gw1.Args())
	}
	for _, x := range []struct{ gw, other *Proc }{{gw1, gw2}, {gw2, gw1}} {
		own, other := proxies[x.gw.Flags.Get("nats-cluster-addr")], proxies[x.other.Flags.Get("nats-cluster-addr")]
		if got := x.gw.Flags.Get("nats-cluster-advertise"); got != own {
			t.Errorf("%s advertises %q, want its proxy %s", x.gw.Name, got, own)
		}
		if got := x.gw.Flags.Get("nats-routes"); got != "nats://"+other {
			t.Errorf("%s routes to %q, want the other's proxy nats://%s", x.gw.Name, got, other)
		}
	}
}

func TestPlanWithoutRouteAddrAdvertisesNothing(t *testing.T) {
	for _, p := range mustPlan(t, Config{Regions: 1, Gateways: 2}) {
		if _, ok := p.Flags.Lookup("nats-cluster-advertise"); ok {
			t.Errorf("%s advertises a route address: %q", p.Name, p.Args())
		}
	}
}

// TestTuneChangesFlagsByNameInPlace: a hook keyed by role and index
// replaces a flag where it is and adds others at the end.
func TestTuneChangesFlagsByNameInPlace(t *testing.T) {
	procs := mustPlan(t, Config{Regions: 2, Gateways: 1, Kafka: Pairs("--kafka-brokers", "k:9092"),
		Redis: Pairs("--redis-url", "redis://r:6379/0"),
		Tune: func(p *Proc) error {
			switch {
			case p.Role == Bridge && p.Region == 0:
				p.Flags.Set("kafka-brokers", "proxy:1")
				p.Flags.Set("repair-delay", "1s")
			case p.Role == Gateway:
				p.Flags.Set("--presence-interval", "1s")
			}
			return nil
		},
	})
	b1, b2 := byName(t, procs, "region1-bridge"), byName(t, procs, "region2-bridge")
	if got := b1.Args(); !slices.Equal(got, []string{"bridge", "--region=region1", "--nats-url=nats://127.0.0.2:4222", "--addr=127.0.0.100:9101",
		"--redis-url=redis://r:6379/0", "--kafka-brokers=proxy:1", "--repair-delay=1s"}) {
		t.Errorf("tuned bridge runs %q", got)
	}
	if b2.Flags.Get("kafka-brokers") != "k:9092" {
		t.Errorf("the other region's bridge was tuned too: %q", b2.Args())
	}
	for _, name := range []string{"region1-gw1", "region2-gw1"} {
		if got := byName(t, procs, name).Flags.Get("presence-interval"); got != "1s" {
			t.Errorf("%s --presence-interval %q", name, got)
		}
	}
}

func TestTuneErrorEndsPlanNamingTheProcess(t *testing.T) {
	boom := errors.New("boom")
	_, err := Plan(Config{Regions: 1, Gateways: 1, Tune: func(p *Proc) error {
		if p.Role == Persister {
			return boom
		}
		return nil
	}})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "region1-persister") {
		t.Errorf("Plan: %v, want boom naming region1-persister", err)
	}
}

func TestPlanRefusesTopologiesItCannotPlace(t *testing.T) {
	for _, c := range []Config{
		{Regions: 0, Gateways: 1},
		{Regions: 1, Gateways: 0},
		{Regions: 2, Gateways: 26},
		{Regions: 2, Gateways: 1, Persisters: 3},
		{Regions: 1, Gateways: 1, Persisters: -1},
		{Regions: 1, Gateways: 1, Port: 70000},
	} {
		if procs, err := Plan(c); err == nil {
			t.Errorf("Plan(%d regions × %d gateways, %d persisters, port %d) = %v, want an error", c.Regions, c.Gateways, c.Persisters, c.Port, names(procs))
		}
	}
	if _, err := Plan(Config{Regions: 5, Gateways: 10}); err != nil {
		t.Errorf("Plan of %d gateways: %v", MaxGateways, err)
	}
}

func TestPlanReportsAListenError(t *testing.T) {
	_, err := Plan(Config{Regions: 1, Gateways: 1, Listen: func(p *Proc, port Port) (string, error) {
		if port == Cluster {
			return "", errors.New("no free port")
		}
		return p.Host + ":1", nil
	}})
	if err == nil || !strings.Contains(err.Error(), "cluster port of region1-gw1: no free port") {
		t.Errorf("Plan: %v", err)
	}
}

func TestGatewayHostsAreThoseOfThePlan(t *testing.T) {
	c := Config{Regions: 2, Gateways: 2}
	hosts := c.GatewayHosts()
	if !slices.Equal(hosts, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}) {
		t.Errorf("GatewayHosts %v", hosts)
	}
	var planned []string
	for _, p := range mustPlan(t, c) {
		if p.Role == Gateway {
			planned = append(planned, p.Host)
		}
	}
	if !slices.Equal(planned, hosts) {
		t.Errorf("plan puts gateways on %v, GatewayHosts says %v", planned, hosts)
	}
}
