// Several gateways in several regions: NATS clusters per region, Redis
// between regions (through cuttable proxies), one Kafka and PostgreSQL.

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natter-chat/natter"
	topo "github.com/natter-chat/natter/topology"
)

// topology is a running startTopology, or a hand-made part of one.
type topology struct {
	db        string
	gateways  [][]*proc // [region][gateway]
	bridges   []*proc
	redis     []*proxy  // each bridge's Redis link
	routes    []proxies // each region's NATS routes, a proxy in front of each gateway's route port
	kafka     *proxy    // the first region's bridge's Kafka link (plaintext topologies)
	persister *proc
	pg        *proxy     // the persister's PostgreSQL link
	regions   []string   // the regions' names
	natsURLs  [][]string // each region's gateways' NATS client URLs
}

// startRegions starts regions × gateways gateways (each region one NATS
// cluster), a bridge per region and one persister, on 127.0.0.x, every
// link plaintext.
func startRegions(t *testing.T, regions, gateways int) *topology {
	t.Helper()
	return startTopology(t, regions, gateways, nil)
}

// startTopology is startRegions with every link secured as sec says
// (nil: plaintext). A secured topology reaches Kafka, Redis and
// PostgreSQL on the services' TLS endpoints with passwords, and its NATS
// client ports and routes use mutual TLS and passwords. The topology
// package plans and runs it, on free ports; the links a test breaks go
// through proxies. It is stopped at cleanup.
func startTopology(t *testing.T, regions, gateways int, sec *secureLinks) *topology {
	t.Helper()
	uniq := fmt.Sprint(time.Now().UnixNano())
	top := &topology{routes: make([]proxies, regions)}
	cfg := topo.Config{Regions: regions, Gateways: gateways, Persisters: 1, Topic: "e2e." + uniq, Group: "e2e-" + uniq,
		Listen: func(p *topo.Proc, _ topo.Port) (string, error) { return freeAddrOn(t, p.Host), nil },
		// The region reaches each route port only through a proxy
		// (advertised, so NATS's gossip does not bypass it).
		RouteAddr: func(p *topo.Proc, cluster string) (string, error) {
			px := startProxy(t, cluster)
			top.routes[p.Region] = append(top.routes[p.Region], px)
			return px.Addr(), nil
		},
		Tune: func(p *topo.Proc) error { top.tune(t, p, sec); return nil },
	}
	if sec == nil {
		top.db = freshDatabase(t)
		cfg.Kafka = topo.Pairs("--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS"))
		cfg.Database = topo.Pairs("--database-url", top.db)
		cfg.Redis = topo.Pairs("--redis-url", service(t, "NATTER_TEST_REDIS_URL"))
	} else {
		var tlsURL string
		top.db, tlsURL = freshTLSDatabase(t)
		cfg.Kafka = topo.Pairs(append([]string{"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS")}, sec.kafkaArgs()...)...)
		cfg.Database = topo.Pairs("--database-url", tlsURL, "--database-password-file", sec.dbPassword)
		cfg.Redis = topo.Pairs(append([]string{"--redis-url", service(t, "NATTER_TEST_REDIS_TLS_URL")}, sec.redisArgs()...)...)
		cfg.GatewayNATS = topo.Pairs(sec.gatewayNATSArgs()...)
		cfg.BridgeNATS = topo.Pairs(sec.bridgeNATSArgs()...)
	}
	procs, err := topo.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("%s (%s) logs:\n%s", p.Name, strings.Join(p.Args(), " "), tail(p.Output.(*syncBuffer).String(), 60))
			}
		}
	})
	run, err := topo.Start(context.Background(), procs, topo.Options{Bin: natterBin, Env: childEnv(), OneByOne: true})
	if err != nil {
		t.Fatalf("start the topology: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := timeout(30 * time.Second)
		defer cancel()
		if err := run.Stop(ctx); err != nil {
			t.Errorf("stop the topology: %v", err)
		}
	})
	top.adopt(t, run)
	return top
}

// tune gives p the suite's own settings and output, and puts the links
// the fault tests break behind proxies.
func (top *topology) tune(t *testing.T, p *topo.Proc, sec *secureLinks) {
	p.Output = &syncBuffer{}
	switch p.Role {
	case topo.Gateway:
		p.Flags.Add(topo.Pairs("--presence-interval", "1s", "--rate-per-conn", "0", "--rate-per-user", "0"))
	case topo.Bridge:
		p.Flags.Set("repair-delay", "1s")
		top.redis = append(top.redis, proxyLink(t, &p.Flags, "redis-url"))
		if sec == nil && p.Region == 0 {
			// The first region's bridge reaches Kafka only through a
			// proxy: the broker's second listener advertises the proxy's
			// address.
			top.kafka = startProxyOn(t, service(t, "NATTER_TEST_KAFKA_VIA_PROXY"), service(t, "NATTER_TEST_KAFKA_PROXIED"))
			p.Flags.Set("kafka-brokers", top.kafka.Addr())
		}
	case topo.Persister:
		top.pg = proxyLink(t, &p.Flags, "database-url")
	}
}

// adopt lists run's processes by role and region.
func (top *topology) adopt(t *testing.T, run *topo.Topology) {
	top.gateways, top.natsURLs = make([][]*proc, len(top.routes)), make([][]string, len(top.routes))
	for r := range top.routes {
		top.regions = append(top.regions, topo.RegionName(r))
	}
	for _, m := range run.Members() {
		p := newProc(t, m.Process, m.Addr, m.Output.(*syncBuffer))
		switch m.Role {
		case topo.Gateway:
			top.gateways[m.Region] = append(top.gateways[m.Region], p)
			top.natsURLs[m.Region] = append(top.natsURLs[m.Region], "nats://"+m.Flags.Get("nats-addr"))
		case topo.Bridge:
			top.bridges = append(top.bridges, p)
		case topo.Persister:
			top.persister = p
		}
	}
}

// proxyLink puts a proxy in front of the host:port of the URL in flag
// name, and returns it.
func proxyLink(t *testing.T, fs *topo.Flags, name string) *proxy {
	t.Helper()
	raw := fs.Get(name)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("--%s %q: no host to put a proxy in front of (%v)", name, raw, err)
	}
	px := startProxy(t, u.Host)
	fs.Set(name, strings.Replace(raw, u.Host, px.Addr(), 1))
	return px
}

func (top *topology) all() []*proc {
	var out []*proc
	for _, gws := range top.gateways {
		out = append(out, gws...)
	}
	return out
}

// waitMembers waits until every gateway lists n members in room.
func (top *topology) waitMembers(t *testing.T, room string, n int) {
	t.Helper()
	waitMembersOn(t, top.all(), room, n)
}

// waitMembersOn waits until each of gws lists n members in room.
func waitMembersOn(t *testing.T, gws []*proc, room string, n int) {
	t.Helper()
	for _, p := range gws {
		checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			var pr struct {
				Members []string `json:"members"`
			}
			getJSON(t, p.url("/api/rooms/"+room+"/presence"), &pr)
			if len(pr.Members) != n {
				return fmt.Errorf("gateway %s sees %d members in %s, want %d: %v", p.addr, len(pr.Members), room, n, pr.Members)
			}
			return nil
		})
	}
}

// TestCrossGatewayAndRegionDelivery: 4 gateways in 2 regions, two clients
// on each; 20,000 messages from all of them reach every member exactly
// once, each sender's in order, and PostgreSQL holds each once.
func TestCrossGatewayAndRegionDelivery(t *testing.T) {
	const perGateway, total = 2, 20000
	top := startRegions(t, 2, 2)
	var cs []*client
	for i, p := range top.all() {
		for k := 0; k < perGateway; k++ {
			c := dial(t, p)
			c.connect(fmt.Sprintf("u%d-%d", i, k))
			c.join("world", "")
			cs = append(cs, c)
		}
	}
	top.waitMembers(t, "world", len(cs))
	sendAllAndReceive(t, cs, "world", total)
	checkFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if rows, distinct := pgCount(t, top.db, "world"); rows != total || distinct != total {
			return fmt.Errorf("postgres has %d rows, %d distinct; want %d", rows, distinct, total)
		}
		return nil
	})
	// The metrics tell the same story.
	for _, p := range top.all() {
		m := metrics(t, p)
		if m["natter_nats_routes"] < 1 || m["natter_fanout_latency_seconds_count"] < total || m["natter_messages_in_total"] < 1 {
			t.Errorf("gateway %s metrics: routes %v, fan-outs %v, messages in %v", p.addr, m["natter_nats_routes"], m["natter_fanout_latency_seconds_count"], m["natter_messages_in_total"])
		}
	}
	// Each bridge brought the other region's half into its region exactly
	// once, through Redis or through repair.
	for _, b := range top.bridges {
		m := metrics(t, b)
		in := m["natter_federation_received_total"] + m["natter_federation_repaired_total"]
		if in != total/2 || m["natter_federation_lag_seconds_count"] != m["natter_federation_received_total"] || m["natter_kafka_produced_total"] < total/2 {
			t.Errorf("bridge %s metrics: received %v + repaired %v, want %d; lag samples %v; produced %v", b.addr,
				m["natter_federation_received_total"], m["natter_federation_repaired_total"], total/2, m["natter_federation_lag_seconds_count"], m["natter_kafka_produced_total"])
		}
	}
}

// sendAllAndReceive has every client send its share of total messages to
// room at once, and checks each client gets all total once, every
// sender's in order, and an ack for each of its own.
func sendAllAndReceive(t *testing.T, cs []*client, room string, total int) {
	t.Helper()
	each := total / len(cs)
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Go(func() { errs[i] = sendAndReceive(c, room, i, each, total) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
}

// metrics scrapes p's /metrics into name → value (unlabelled samples).
func metrics(t *testing.T, p *proc) map[string]float64 {
	t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		var name string
		var v float64
		if _, err := fmt.Sscanf(line, "%s %g", &name, &v); err == nil {
			out[name] = v
		}
	}
	return out
}

// TestRegionCutConverges: both bridges lose Redis for 30 s while both
// regions keep sending. Local delivery goes on; afterwards every member of
// both regions has every acked message exactly once (repaired from Kafka)
// and so has PostgreSQL.
func TestRegionCutConverges(t *testing.T) {
	top := startRegions(t, 2, 1)
	a, b := dial(t, top.gateways[0][0]), dial(t, top.gateways[1][0])
	a.connect("alice")
	b.connect("bob")
	a.join("cut", "")
	b.join("cut", "")
	top.waitMembers(t, "cut", 2)

	type tally struct {
		mu    sync.Mutex
		got   map[string]int
		acked map[string]bool
	}
	watch := func(c *client, tl *tally, stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		for {
			select {
			case f := <-c.frames:
				tl.mu.Lock()
				switch f.Op {
				case "msg":
					tl.got[f.ID]++
				case "ack":
					tl.acked[f.ID] = true
				}
				tl.mu.Unlock()
			case <-stop:
				return
			}
		}
	}
	ta := &tally{got: map[string]int{}, acked: map[string]bool{}}
	tb := &tally{got: map[string]int{}, acked: map[string]bool{}}
	stop := make(chan struct{})
	da, db := make(chan struct{}), make(chan struct{})
	go watch(a, ta, stop, da)
	go watch(b, tb, stop, db)

	sent := 0
	send := func(k int, phase string) {
		sent++
		a.sendJSON(map[string]any{"op": "send", "room": "cut", "cid": fmt.Sprintf("a-%s-%d", phase, k), "body": "from a"})
		b.sendJSON(map[string]any{"op": "send", "room": "cut", "cid": fmt.Sprintf("b-%s-%d", phase, k), "body": "from b"})
	}
	for k := 0; k < 50; k++ {
		send(k, "before")
	}
	for _, px := range top.redis {
		px.Cut()
	}
	cutEnd := time.Now().Add(30 * time.Second)
	for k := 0; time.Now().Before(cutEnd); k++ {
		send(k, "during")
		time.Sleep(100 * time.Millisecond) // a steady chat load, not a sync point
	}
	// Local delivery kept working during the cut.
	ta.mu.Lock()
	localA := 0
	for id := range ta.acked {
		if ta.got[id] == 1 {
			localA++
		}
	}
	ta.mu.Unlock()
	if localA < 150 {
		t.Errorf("alice saw only %d of her own region's messages during the cut", localA)
	}
	for _, px := range top.redis {
		px.Restore()
	}
	for k := 0; k < 50; k++ {
		send(k, "after")
	}
	checkFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		ta.mu.Lock()
		tb.mu.Lock()
		defer ta.mu.Unlock()
		defer tb.mu.Unlock()
		all := map[string]bool{}
		for id := range ta.acked {
			all[id] = true
		}
		for id := range tb.acked {
			all[id] = true
		}
		if len(all) < 2*sent {
			return fmt.Errorf("%d of %d messages acked so far", len(all), 2*sent)
		}
		for name, tl := range map[string]*tally{"alice": ta, "bob": tb} {
			missing := 0
			for id := range all {
				if tl.got[id] == 0 {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Errorf("%s is missing %d of %d acked messages", name, missing, len(all))
			}
		}
		if rows, distinct := pgCount(t, top.db, "cut"); rows != len(all) || distinct != len(all) {
			return fmt.Errorf("postgres %d rows, %d distinct, want %d", rows, distinct, len(all))
		}
		return nil
	})
	close(stop)
	<-da
	<-db
	for name, tl := range map[string]*tally{"alice": ta, "bob": tb} {
		for id, n := range tl.got {
			if n != 1 {
				t.Errorf("%s got %s %d times", name, id, n)
			}
		}
	}
}

// TestGatewayLossLosesNothing: kill -9 one gateway of a region; its client
// reconnects to the other gateway with since and misses nothing, and
// presence drops it within three presence intervals.
func TestGatewayLossLosesNothing(t *testing.T) {
	top := startRegions(t, 1, 2)
	g0, g1 := top.gateways[0][0], top.gateways[0][1]
	victim, sender, observer := dial(t, g0), dial(t, g1), dial(t, g1)
	victim.connect("victim")
	sender.connect("sender")
	observer.connect("observer")
	victim.join("loss", "")
	sender.join("loss", "")
	observer.join("loss", "")
	top.waitMembers(t, "loss", 3)
	var ids []string
	for k := 0; k < 20; k++ {
		sender.sendJSON(map[string]any{"op": "send", "room": "loss", "cid": fmt.Sprint("pre", k), "body": "x"})
	}
	var last string
	for k := 0; k < 20; k++ {
		f := victim.expect("msg")
		last = f.ID
	}
	g0.kill()
	for k := 0; k < 300; k++ {
		sender.sendJSON(map[string]any{"op": "send", "room": "loss", "cid": fmt.Sprint("post", k), "body": "y"})
	}
	for len(ids) < 320 {
		ids = append(ids, sender.expect("ack").ID)
	}
	// Presence on the surviving gateway drops the victim.
	checkFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		var pr struct {
			Members []string `json:"members"`
		}
		getJSON(t, g1.url("/api/rooms/loss/presence"), &pr)
		for _, m := range pr.Members {
			if m == "victim" {
				return fmt.Errorf("victim still present: %v", pr.Members)
			}
		}
		return nil
	})
	again := dial(t, g1)
	again.connect("victim")
	j := again.join("loss", last)
	if j.Resumed != 300 {
		t.Fatalf("resumed %d, want the 300 sent after the last seen", j.Resumed)
	}
	seen := map[string]bool{}
	prev := last
	for len(seen) < 300 {
		f := again.next(10 * time.Second)
		if f.Op != "msg" {
			continue
		}
		if seen[f.ID] || f.ID <= prev {
			t.Fatalf("message %s repeated or out of order after %s", f.ID, prev)
		}
		seen[f.ID], prev = true, f.ID
	}
}

// TestRetryOnAnotherGatewayKeepsTheFirstID: a client whose first gateway
// acked a message resends it (retry) through another gateway of the
// region: it gets the first id back, nobody sees it twice, one row.
func TestRetryOnAnotherGatewayKeepsTheFirstID(t *testing.T) {
	top := startRegions(t, 1, 2)
	g0, g1 := top.gateways[0][0], top.gateways[0][1]
	watcher := dial(t, g1)
	watcher.connect("watcher")
	watcher.join("again", "")
	first := dial(t, g0)
	first.connect("sender")
	first.join("again", "")
	top.waitMembers(t, "again", 2)
	first.sendJSON(map[string]any{"op": "send", "room": "again", "cid": "k1", "body": "once"})
	id1 := first.expect("ack").ID
	second := dial(t, g1)
	second.connect("sender")
	second.join("again", "")
	second.sendJSON(map[string]any{"op": "send", "room": "again", "cid": "k1", "body": "once", "retry": true})
	if id2 := second.expect("ack").ID; id2 != id1 {
		t.Fatalf("retry acked as %s, want the first id %s", id2, id1)
	}
	watcher.sendJSON(map[string]any{"op": "ping"})
	n := 0
	for f := watcher.next(10 * time.Second); f.Op != "pong"; f = watcher.next(10 * time.Second) {
		if f.Op == "msg" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("watcher saw the message %d times", n)
	}
	checkFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if rows, _ := pgCount(t, top.db, "again"); rows != 1 {
			return fmt.Errorf("%d rows, want 1", rows)
		}
		return nil
	})
}

// TestResumeGetsMessagesNotYetDurable: a member resumes a room on a
// gateway that has never followed it, just after another gateway's member
// sent a message the region's bridge has not made durable (the bridge is
// stopped). The message missed the new member live and is not in the log,
// yet the resume brings it, and it arrives once, with the id it is acked
// under.
func TestResumeGetsMessagesNotYetDurable(t *testing.T) {
	top := startRegions(t, 1, 2)
	g0, g1 := top.gateways[0][0], top.gateways[0][1]
	bob := dial(t, g1)
	bob.connect("bob")
	bob.join("fresh", "")
	since := natter.MinIDAt(time.Now().Add(-time.Second)).String()
	bridge := top.bridges[0].cmd.Process
	if err := bridge.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = bridge.Signal(syscall.SIGCONT)
		}
	}()
	bob.sendJSON(map[string]any{"op": "send", "room": "fresh", "cid": "c1", "body": "early"})
	live := bob.expect("msg") // out live, not durable

	alice := dial(t, g0)
	alice.connect("alice")
	if j := alice.join("fresh", since); j.Resumed != 1 {
		t.Fatalf("resume brought %d messages, want bob's one", j.Resumed)
	}
	if m := alice.expect("msg"); m.ID != live.ID || m.Body != "early" {
		t.Fatalf("alice got %+v, want bob's %s", m, live.ID)
	}
	if err := bridge.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if ack := bob.expect("ack"); ack.ID != live.ID {
		t.Fatalf("acked as %s, delivered as %s", ack.ID, live.ID)
	}
	alice.sendJSON(map[string]any{"op": "ping"})
	for f := alice.next(10 * time.Second); f.Op != "pong"; f = alice.next(10 * time.Second) {
		if f.Op == "msg" {
			t.Fatalf("alice got a message again: %+v", f)
		}
	}
}
