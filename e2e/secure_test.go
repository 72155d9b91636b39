// Every internal link secured: Kafka over SASL_SSL with a SCRAM user,
// Redis over TLS with an ACL user, PostgreSQL with sslmode=verify-full,
// NATS client ports with passwords and TLS, routes with mutual TLS and a
// password. And what an attacker on the network gets: nothing, with the
// legitimate traffic going on.

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/tlsconf"
)

// secureLinks are the files a secured topology's processes are given.
type secureLinks struct {
	servicesCA string // the test services' CA (Kafka, Redis, PostgreSQL)
	kafkaUser  string
	kafkaPW    string // file
	redisPW    string // file
	dbPassword string // file

	natsDir                         string // the region's own CA and node certificate
	natsCA, natsCert, natsKey       string
	natsPassword, natsRoutePassword string // files
}

// newSecureLinks makes a CA for the gateways' NATS servers with a node
// certificate valid on every 127.0.0.x the suite uses, and password files
// for the NATS client ports and routes.
func newSecureLinks(t *testing.T) *secureLinks {
	t.Helper()
	tlsDir := service(t, "NATTER_TEST_TLS_DIR")
	s := &secureLinks{
		servicesCA: filepath.Join(tlsDir, "ca.pem"),
		kafkaUser:  service(t, "NATTER_TEST_KAFKA_SASL_USER"),
		kafkaPW:    service(t, "NATTER_TEST_KAFKA_PASSWORD_FILE"),
		redisPW:    service(t, "NATTER_TEST_REDIS_PASSWORD_FILE"),
		dbPassword: service(t, "NATTER_TEST_DATABASE_PASSWORD_FILE"),
		natsDir:    t.TempDir(),
	}
	ca, err := tlsconf.NewCA("region CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(s.natsDir); err != nil {
		t.Fatal(err)
	}
	hosts := []string{"localhost"}
	for i := 1; i <= 30; i++ {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", i))
	}
	s.natsCA = filepath.Join(s.natsDir, "ca.pem")
	if s.natsCert, s.natsKey, err = ca.IssueFiles(s.natsDir, "node", hosts...); err != nil {
		t.Fatal(err)
	}
	s.natsPassword = writeSecret(t, s.natsDir, "nats.password", "client-port-"+fmt.Sprint(time.Now().UnixNano()))
	s.natsRoutePassword = writeSecret(t, s.natsDir, "route.password", "routes-"+fmt.Sprint(time.Now().UnixNano()))
	return s
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *secureLinks) kafkaArgs() []string {
	return []string{"--kafka-ca-file", s.servicesCA, "--kafka-sasl-mechanism", "SCRAM-SHA-512",
		"--kafka-sasl-user", s.kafkaUser, "--kafka-sasl-password-file", s.kafkaPW}
}

func (s *secureLinks) gatewayNATSArgs() []string {
	return []string{"--nats-cert-file", s.natsCert, "--nats-key-file", s.natsKey, "--nats-ca-file", s.natsCA,
		"--nats-password-file", s.natsPassword, "--nats-cluster-password-file", s.natsRoutePassword}
}

// bridgeNATSArgs are a bridge's NATS flags.
func (s *secureLinks) bridgeNATSArgs() []string {
	return []string{"--nats-ca-file", s.natsCA, "--nats-password-file", s.natsPassword}
}

// redisArgs are a bridge's Redis flags besides --redis-url.
func (s *secureLinks) redisArgs() []string {
	return []string{"--redis-ca-file", s.servicesCA, "--redis-password-file", s.redisPW}
}

// freshTLSDatabase creates an empty database owned by the services' TLS
// role and returns the superuser's plaintext URL of it (for the test's
// own checks) and the TLS role's verify-full URL (for natter).
func freshTLSDatabase(t *testing.T) (plain, secured string) {
	t.Helper()
	name := fmt.Sprintf("e2e_tls_%d", time.Now().UnixNano())
	plain = createDatabase(t, name, "natter_tls")
	return plain, strings.Replace(service(t, "NATTER_TEST_DATABASE_TLS_URL"), "/natter?", "/"+name+"?", 1)
}

// TestSecuredRegionsDeliverOnce: two regions of two gateways with every
// link secured. Two clients on each gateway send 4,000 messages in all;
// every member gets each once, each sender's in order, and PostgreSQL
// (reached over verify-full TLS) holds each once. Meanwhile an attacker
// on the network cannot use a gateway's NATS port, cannot join a
// region's routes with a certificate of its own, and chat goes on.
func TestSecuredRegionsDeliverOnce(t *testing.T) {
	const perGateway, total = 2, 4000
	sec := newSecureLinks(t)
	top := startTopology(t, 2, 2, sec)

	// The links are what they should be: TLS routes formed, readiness
	// says every link is up.
	for _, p := range top.all() {
		checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if m := metrics(t, p); m["natter_nats_routes"] < 1 {
				return fmt.Errorf("gateway %s has no route", p.addr)
			}
			return nil
		})
	}
	for _, b := range top.bridges {
		if code, body := readyz(t, b); code != 200 || body["kafka"] != "ok" || body["redis"] != "ok" || body["nats"] != "ok" {
			t.Fatalf("bridge /readyz: %d %v", code, body)
		}
	}

	var cs []*client
	for i, p := range top.all() {
		for k := 0; k < perGateway; k++ {
			c := dial(t, p)
			c.connect(fmt.Sprintf("u%d-%d", i, k))
			c.join("vault", "")
			cs = append(cs, c)
		}
	}
	top.waitMembers(t, "vault", len(cs))

	// Hostile: while the load runs, try the region from the outside.
	attacks := make(chan error, 1)
	go func() { attacks <- attackNATS(t, top, sec) }()

	sendAllAndReceive(t, cs, "vault", total)
	if err := <-attacks; err != nil {
		t.Error(err)
	}
	checkFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if rows, distinct := pgCount(t, top.db, "vault"); rows != total || distinct != total {
			return fmt.Errorf("postgres has %d rows, %d distinct; want %d", rows, distinct, total)
		}
		return nil
	})
}

// attackNATS tries a region's NATS from the network the way an attacker
// would and returns an error for anything that got in.
func attackNATS(t *testing.T, top *topology, sec *secureLinks) error {
	natsURL := top.natsURLs[0][0]
	try := func(what string, opts ...nats.Option) error {
		nc, err := nats.Connect(natsURL, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
		if err == nil {
			nc.Close()
			return fmt.Errorf("%s: connected to %s", what, natsURL)
		}
		return nil
	}
	pw, err := os.ReadFile(sec.natsPassword)
	if err != nil {
		return err
	}
	other := t.TempDir()
	otherCA, err := tlsconf.NewCA("attacker CA")
	if err != nil {
		return err
	}
	if err := otherCA.WriteCA(other); err != nil {
		return err
	}
	if err := errors.Join(
		// No credentials, trusting the server: refused by authorization.
		try("no credentials", nats.RootCAs(sec.natsCA)),
		// A guessed password.
		try("a wrong password", nats.RootCAs(sec.natsCA), nats.UserInfo("natter", "guess")),
		// The right password, but only if it were sent to an impostor:
		// a client that does not trust the server's CA never sends it.
		try("an untrusted server", nats.RootCAs(filepath.Join(other, "ca.pem")), nats.UserInfo("natter", strings.TrimSpace(string(pw)))),
		// Plaintext, as an old client would.
		try("plaintext"),
	); err != nil {
		return err
	}
	// A rogue NATS server with a certificate of another CA tries to join
	// the first region's routes: the gateways keep only their own routes.
	before := routesOf(t, top.gateways[0])
	cert, key, err := otherCA.IssueFiles(other, "rogue", "127.0.0.1", "127.0.0.40")
	if err != nil {
		return err
	}
	var routes []string
	for _, px := range top.routes[0] {
		routes = append(routes, "nats://"+px.Addr())
	}
	rogue := startProc(t, "127.0.0.40", "/healthz", "gateway", "--open", "--id", "rogue", "--region", top.regions[0],
		"--nats-addr", freeAddrOn(t, "127.0.0.40"), "--nats-cluster-addr", freeAddrOn(t, "127.0.0.40"), "--nats-routes", strings.Join(routes, ","),
		"--nats-cert-file", cert, "--nats-key-file", key, "--nats-ca-file", filepath.Join(other, "ca.pem"),
		"--nats-cluster-password-file", sec.natsRoutePassword,
		"--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x")
	// A member on the rogue server would see the region's traffic if the
	// rogue had joined. It keeps trying while the load runs; give it
	// several rounds (routes retry every second).
	spy := dial(t, rogue)
	spy.connect("spy")
	spy.join("vault", "")
	time.Sleep(4 * time.Second)
	rogue.stop()
	for _, f := range drain(spy) {
		if f.Op == "msg" {
			return fmt.Errorf("a server with another CA's certificate got the region's traffic: %+v", f)
		}
	}
	if after := routesOf(t, top.gateways[0]); after != before {
		return fmt.Errorf("%s's routes went from %v to %v while a rogue server tried to join", top.regions[0], before, after)
	}
	return nil
}

// routesOf sums the route gauges of gws.
func routesOf(t *testing.T, gws []*proc) float64 {
	var n float64
	for _, p := range gws {
		n += metrics(t, p)["natter_nats_routes"]
	}
	return n
}

// readyz returns p's /readyz status and body.
func readyz(t *testing.T, p *proc) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(p.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz of %s: %v", p.addr, err)
	}
	return resp.StatusCode, body
}

// TestSecuredLinkFailuresSayWhatAndRecover starts roles whose links
// cannot work (a wrong Kafka password, a wrong Redis password, a CA that
// did not sign the server's certificate on each of Kafka, PostgreSQL and
// NATS) and checks that each process stays up, says in its log and its
// /readyz which link failed and why, retries without flooding the log,
// and, once the password is fixed, delivers and stores every message
// its gateway took meanwhile, once.
func TestSecuredLinkFailuresSayWhatAndRecover(t *testing.T) {
	sec := newSecureLinks(t)
	plainDB, tlsDB := freshTLSDatabase(t)
	uniq := fmt.Sprint(time.Now().UnixNano())
	kafkaArgs := append([]string{"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"), "--kafka-topic", "e2e." + uniq,
		"--kafka-group", "e2e-" + uniq}, sec.kafkaArgs()...)
	dbArgs := []string{"--database-url", tlsDB, "--database-password-file", sec.dbPassword}
	natsAddr := freeAddr(t)
	gw := startProc(t, "127.0.0.1", "/readyz", append(append([]string{"gateway", "--open", "--id", "sec-gw", "--nats-addr", natsAddr,
		"--nats-cert-file", sec.natsCert, "--nats-key-file", sec.natsKey, "--nats-password-file", sec.natsPassword}, kafkaArgs...), dbArgs...)...)
	startProc(t, "127.0.0.1", "/readyz", append(append([]string{"persister"}, kafkaArgs[:6]...), append(sec.kafkaArgs(), dbArgs...)...)...)

	// A bridge with the wrong Kafka password: up, not ready, and saying why.
	dir := t.TempDir()
	kafkaPW := writeSecret(t, dir, "kafka.password", "not-the-password")
	redisPW := writeSecret(t, dir, "redis.password", "not-the-password-either")
	bridgeArgs := []string{"bridge", "--nats-url", "nats://" + natsAddr, "--nats-ca-file", sec.natsCA, "--nats-password-file", sec.natsPassword,
		"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"), "--kafka-topic", "e2e." + uniq,
		"--kafka-ca-file", sec.servicesCA, "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", sec.kafkaUser, "--kafka-sasl-password-file", kafkaPW,
		"--redis-url", service(t, "NATTER_TEST_REDIS_TLS_URL"), "--redis-ca-file", sec.servicesCA, "--redis-password-file", redisPW}
	br := startProc(t, "127.0.0.1", "/healthz", bridgeArgs...)
	waitReadyz(t, br, map[string]string{"kafka": "SASL authentication failed", "redis": "WRONGPASS", "nats": "ok"})

	// Chat goes on live; sends wait for the durable hop.
	const n = 50
	a, b := dial(t, gw), dial(t, gw)
	a.connect("alice")
	b.connect("bob")
	a.join("fixme", "")
	b.join("fixme", "")
	for k := 0; k < n; k++ {
		a.sendJSON(map[string]any{"op": "send", "room": "fixme", "cid": fmt.Sprintf("c%d", k), "body": fmt.Sprint(k)})
	}
	got := map[string]int{}
	for len(got) < n {
		f := b.expect("msg")
		got[f.ID]++
	}
	// The failures are logged, naming the link and the check, each
	// retry waiting longer than the one before.
	checkFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		logs := br.logs.String()
		if !strings.Contains(logs, `link=kafka`) || !strings.Contains(logs, "SASL authentication failed") || !strings.Contains(logs, "link=redis") ||
			!strings.Contains(logs, "WRONGPASS") || !regexp.MustCompile(`link=kafka .* attempt=3 `).MatchString(logs) {
			return fmt.Errorf("the bridge's log does not yet say twice that Kafka failed SASL and Redis refused the password:\n%s", tail(logs, 10))
		}
		return nil
	})
	for _, link := range []string{"kafka", "redis"} {
		var waits []time.Duration
		for _, m := range regexp.MustCompile(`link down: retrying" link=`+link+` .* retry_in=(\S+)`).FindAllStringSubmatch(br.logs.String(), -1) {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			waits = append(waits, d)
		}
		for i := 1; i < len(waits); i++ {
			if waits[i] <= waits[i-1] && waits[i] < 30*time.Second {
				t.Errorf("%s retries do not back off: %v", link, waits)
			}
		}
	}
	for _, f := range drain(a) {
		if f.Op == "ack" {
			t.Fatalf("a message was acked while no bridge could reach Kafka: %+v", f)
		}
	}

	// Fix both passwords: the bridge reads the files again on its next try.
	copyFile(t, sec.kafkaPW, kafkaPW)
	copyFile(t, sec.redisPW, redisPW)
	waitReadyzWithin(t, br, 45*time.Second, map[string]string{"kafka": "ok", "redis": "ok", "nats": "ok"})
	acks := map[string]bool{}
	for len(acks) < n {
		f := a.expect("ack")
		if acks[f.CID] {
			t.Fatalf("cid %s acked twice", f.CID)
		}
		acks[f.CID] = true
	}
	checkFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if rows, distinct := pgCount(t, plainDB, "fixme"); rows != n || distinct != n {
			return fmt.Errorf("postgres has %d rows, %d distinct; want %d", rows, distinct, n)
		}
		return nil
	})
	for id, k := range got {
		if k != 1 {
			t.Errorf("message %s delivered %d times", id, k)
		}
	}
}

// TestUntrustedServersAreRefusedByName gives each link a CA that did not
// sign its server's certificate: the gateway (Kafka, PostgreSQL) and the
// bridge (NATS, Redis) stay up and their /readyz name the link and the
// check.
func TestUntrustedServersAreRefusedByName(t *testing.T) {
	sec := newSecureLinks(t)
	other := t.TempDir()
	ca, err := tlsconf.NewCA("wrong CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(other); err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(other, "ca.pem")
	_, tlsDB := freshTLSDatabase(t)
	natsAddr := freeAddr(t)
	gw := startProc(t, "127.0.0.1", "/healthz", "gateway", "--open", "--id", "untrusting", "--nats-addr", natsAddr,
		"--nats-cert-file", sec.natsCert, "--nats-key-file", sec.natsKey, "--nats-password-file", sec.natsPassword,
		"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"), "--kafka-ca-file", wrongCA, "--kafka-sasl-mechanism", "PLAIN",
		"--kafka-sasl-user", sec.kafkaUser, "--kafka-sasl-password-file", sec.kafkaPW,
		"--database-url", strings.Replace(tlsDB, sec.servicesCA, wrongCA, 1), "--database-password-file", sec.dbPassword)
	waitReadyz(t, gw, map[string]string{"kafka": "TLS: the broker's certificate is not signed by a trusted CA", "postgres": "unknown authority", "nats": "ok"})
	br := startProc(t, "127.0.0.1", "/healthz", append([]string{"bridge", "--nats-url", "nats://" + natsAddr, "--nats-ca-file", wrongCA,
		"--nats-password-file", sec.natsPassword, "--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"),
		"--redis-url", service(t, "NATTER_TEST_REDIS_TLS_URL"), "--redis-ca-file", wrongCA, "--redis-password-file", sec.redisPW}, sec.kafkaArgs()...)...)
	waitReadyz(t, br, map[string]string{"nats": "certificate signed by unknown authority", "kafka": "ok", "redis": "certificate signed by unknown authority"})
	// The gateway still serves live chat while its stores are unreachable.
	a, b := dial(t, gw), dial(t, gw)
	a.connect("alice")
	b.connect("bob")
	a.join("live", "")
	b.join("live", "")
	a.sendJSON(map[string]any{"op": "send", "room": "live", "cid": "c1", "body": "still here"})
	if f := b.expect("msg"); f.Body != "still here" {
		t.Fatalf("got %+v", f)
	}
}

// waitReadyz waits until p's /readyz answers 503 with each check's text
// containing want[check] ("ok" means exactly ok).
func waitReadyz(t *testing.T, p *proc, want map[string]string) {
	t.Helper()
	waitReadyzWithin(t, p, 30*time.Second, want)
}

func waitReadyzWithin(t *testing.T, p *proc, timeout time.Duration, want map[string]string) {
	t.Helper()
	allOK := true
	for _, w := range want {
		allOK = allOK && w == "ok"
	}
	checkFor(t, timeout, 200*time.Millisecond, func() error {
		code, body := readyz(t, p)
		if allOK != (code == http.StatusOK) {
			return fmt.Errorf("/readyz %d %v", code, body)
		}
		for check, w := range want {
			if got := body[check]; (w == "ok" && got != "ok") || !strings.Contains(got, w) {
				return fmt.Errorf("/readyz %s = %q, want %q (all: %v)", check, got, w, body)
			}
		}
		return nil
	})
}

// drain returns the frames c has received so far without waiting.
func drain(c *client) []frame {
	var out []frame
	for {
		select {
		case f := <-c.frames:
			out = append(out, f)
		default:
			return out
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSecuredLeafNodes: an edge gateway attached to a hub gateway as a
// leaf node over mutual TLS with a password. Members on both exchange
// messages, acked through the hub's bridge; an edge with a certificate
// of another CA, and one with the wrong leaf password, never attach.
func TestSecuredLeafNodes(t *testing.T) {
	sec := newSecureLinks(t)
	leafPW := writeSecret(t, sec.natsDir, "leaf.password", "leaf-"+fmt.Sprint(time.Now().UnixNano()))
	uniq := fmt.Sprint(time.Now().UnixNano())
	db := freshDatabase(t)
	common := []string{"--open", "--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS"), "--kafka-topic", "e2e." + uniq,
		"--kafka-group", "e2e-" + uniq, "--database-url", db}
	tlsArgs := []string{"--nats-cert-file", sec.natsCert, "--nats-key-file", sec.natsKey, "--nats-ca-file", sec.natsCA}
	hubNATS, hubLeaf := freeAddrOn(t, "127.0.0.2"), freeAddrOn(t, "127.0.0.2")
	hub := startProc(t, "127.0.0.2", "/readyz", append(append([]string{"gateway", "--id", "hub", "--nats-addr", hubNATS,
		"--nats-leaf-addr", hubLeaf, "--nats-password-file", sec.natsPassword, "--nats-leaf-password-file", leafPW}, tlsArgs...), common...)...)
	edge := startProc(t, "127.0.0.3", "/readyz", append(append([]string{"gateway", "--id", "edge", "--nats-addr", freeAddrOn(t, "127.0.0.3"),
		"--nats-leaf-remotes", "nats-leaf://" + hubLeaf, "--nats-leaf-password-file", leafPW}, tlsArgs...), common...)...)
	startProc(t, "127.0.0.1", "/readyz", "bridge", "--nats-url", "nats://"+hubNATS, "--nats-ca-file", sec.natsCA,
		"--nats-password-file", sec.natsPassword, "--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS"), "--kafka-topic", "e2e."+uniq)
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n := metrics(t, hub)["natter_nats_leafnodes"]; n != 1 {
			return fmt.Errorf("hub has %v leaf nodes, want 1", n)
		}
		return nil
	})

	a, b := dial(t, hub), dial(t, edge)
	a.connect("alice")
	b.connect("bob")
	a.join("edge", "")
	b.join("edge", "")
	waitMembersOn(t, []*proc{hub, edge}, "edge", 2)
	b.sendJSON(map[string]any{"op": "send", "room": "edge", "cid": "from-edge", "body": "hello hub"})
	if f := a.expect("msg"); f.Body != "hello hub" {
		t.Fatalf("hub member got %+v", f)
	}
	if f := b.expect("ack"); f.CID != "from-edge" {
		t.Fatalf("edge sender got %+v", f)
	}
	a.sendJSON(map[string]any{"op": "send", "room": "edge", "cid": "from-hub", "body": "hello edge"})
	if f := b.expect("msg"); f.Body != "hello edge" {
		t.Fatalf("edge member got %+v", f)
	}

	// Impostors: another CA's certificate; the right CA but a wrong password.
	other := t.TempDir()
	ca, err := tlsconf.NewCA("attacker CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(other); err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(other, "rogue", "127.0.0.1", "127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	wrongPW := writeSecret(t, other, "leaf.password", "guess")
	for _, args := range [][]string{
		{"--nats-cert-file", cert, "--nats-key-file", key, "--nats-ca-file", filepath.Join(other, "ca.pem"), "--nats-leaf-password-file", leafPW},
		append(append([]string{}, tlsArgs...), "--nats-leaf-password-file", wrongPW),
	} {
		rogue := startProc(t, "127.0.0.4", "/healthz", append(append([]string{"gateway", "--id", "rogue", "--nats-addr", freeAddrOn(t, "127.0.0.4"),
			"--nats-leaf-remotes", "nats-leaf://" + hubLeaf}, args...), common...)...)
		// A member on the rogue edge would see the room if it attached;
		// the hub keeps sending while it tries (leaf nodes retry every
		// second).
		spy := dial(t, rogue)
		spy.connect("spy")
		spy.join("edge", "")
		for k := 0; k < 15; k++ {
			a.sendJSON(map[string]any{"op": "send", "room": "edge", "cid": fmt.Sprintf("probe-%s-%d", args[1], k), "body": "probe"})
			time.Sleep(200 * time.Millisecond)
		}
		rogue.stop()
		for _, f := range drain(spy) {
			if f.Op == "msg" {
				t.Fatalf("a rogue edge (%v) got the hub's traffic: %+v", args[1], f)
			}
		}
		if n := metrics(t, hub)["natter_nats_leafnodes"]; n != 1 {
			t.Fatalf("hub has %v leaf nodes after a rogue edge tried, want 1", n)
		}
	}
	a.sendJSON(map[string]any{"op": "send", "room": "edge", "cid": "after", "body": "still here"})
	for f := b.expect("msg"); f.Body != "still here"; f = b.expect("msg") {
		if f.Body != "probe" {
			t.Fatalf("edge member got %+v", f)
		}
	}
}
