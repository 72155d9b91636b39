// natter local starts the multi-region topology as processes and stops
// all of them on SIGTERM; with --secure on secured services, every link
// of it is secured. natter certs makes the passwords it uses.

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	topo "github.com/natter-chat/natter/topology"
)

func TestLocalClusterRunsAndStopsCleanly(t *testing.T) {
	uniq := fmt.Sprint(time.Now().UnixNano())
	// Two regions of one gateway each: natter local puts them on
	// 127.0.0.2 and 127.0.0.3.
	port := freePortOn(t, "127.0.0.2", "127.0.0.3")
	l := startLocal(t, 2, "--regions", "2", "--gateways", "1", "--port", port,
		"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS"), "--redis-url", service(t, "NATTER_TEST_REDIS_URL"),
		"--database-url", freshDatabase(t), "--kafka-topic", "e2e.local."+uniq)
	a, b := dial(t, l.gateways[0]), dial(t, l.gateways[1])
	a.connect("alice")
	b.connect("bob")
	a.join("local", "")
	b.join("local", "")
	a.sendJSON(map[string]any{"op": "send", "room": "local", "cid": "x", "body": "across regions"})
	if f := b.expect("msg"); f.Body != "across regions" {
		t.Fatalf("bob got %q", f.Body)
	}
	a.close()
	b.close()
	l.stop()
}

// TestLocalSecureRunsOnSecuredServices: natter local --secure on the
// services' secured endpoints (Kafka over SASL_SSL with SCRAM, Redis over
// TLS with an ACL user, PostgreSQL with verify-full and a password from a
// file) carries messages both ways between regions and into PostgreSQL,
// with the gateways' NATS client ports and routes secured: TLS and a
// password, which nobody without them gets past.
func TestLocalSecureRunsOnSecuredServices(t *testing.T) {
	uniq := fmt.Sprint(time.Now().UnixNano())
	servicesCA := filepath.Join(service(t, "NATTER_TEST_TLS_DIR"), "ca.pem")
	plainDB, tlsDB := freshTLSDatabase(t)
	certs := t.TempDir()
	// Two regions of two gateways: 127.0.0.2 to 127.0.0.5.
	port := freePortOn(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	l := startLocal(t, 4, "--secure", "--certs-dir", certs, "--regions", "2", "--gateways", "2", "--port", port,
		"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"), "--kafka-ca-file", servicesCA,
		"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", service(t, "NATTER_TEST_KAFKA_SASL_USER"),
		"--kafka-sasl-password-file", service(t, "NATTER_TEST_KAFKA_PASSWORD_FILE"),
		"--redis-url", service(t, "NATTER_TEST_REDIS_TLS_URL"), "--redis-ca-file", servicesCA,
		"--redis-password-file", service(t, "NATTER_TEST_REDIS_PASSWORD_FILE"),
		"--database-url", tlsDB, "--database-password-file", service(t, "NATTER_TEST_DATABASE_PASSWORD_FILE"),
		"--kafka-topic", "e2e.local.secure."+uniq)
	natsCA := filepath.Join(certs, "ca.pem")
	if said := strings.Join(l.said, "\n"); !strings.Contains(said, natsCA) {
		t.Errorf("natter local --secure did not say where its CA is (%s); it said:\n%s", natsCA, said)
	}
	for _, name := range []string{"ca.pem", "ca-key.pem", "node.pem", "node-key.pem", "nats.password", "nats-cluster.password"} {
		if _, err := os.Stat(filepath.Join(certs, name)); err != nil {
			t.Errorf("--certs-dir: %v", err)
		}
	}
	// Each region's two gateways are routed to each other, over mutual
	// TLS with the route password.
	for _, gw := range l.gateways {
		checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if n := metrics(t, gw)["natter_nats_routes"]; n < 1 {
				return fmt.Errorf("gateway %s has %v routes", gw.addr, n)
			}
			return nil
		})
	}

	// region1-gw1 and region2-gw2: messages both ways, and into
	// PostgreSQL through the persisters' TLS link.
	a, b := dial(t, l.gateways[0]), dial(t, l.gateways[3])
	a.connect("alice")
	b.connect("bob")
	a.join("secured", "")
	b.join("secured", "")
	for _, x := range []struct {
		from, to  *client
		cid, body string
	}{{a, b, "a1", "from region1"}, {b, a, "b1", "from region2"}} {
		x.from.sendJSON(map[string]any{"op": "send", "room": "secured", "cid": x.cid, "body": x.body})
		if ack := x.from.expect("ack"); ack.CID != x.cid {
			t.Fatalf("ack %+v, want cid %s", ack, x.cid)
		}
		t.Logf("%q is durable; waiting for it in the other region", x.body)
		expectBodies(x.to, x.body)
	}
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if rows, distinct := pgCount(t, plainDB, "secured"); rows != 2 || distinct != 2 {
			return fmt.Errorf("PostgreSQL holds %d rows (%d distinct) of the room, want 2", rows, distinct)
		}
		return nil
	})

	// The NATS client port (the bridges' way in) is closed to anyone
	// without the CA and the password; with both, it opens, so the
	// refusals are for the right reasons.
	natsURL := "nats://127.0.0.2:4222"
	try := func(opts ...nats.Option) error {
		nc, err := nats.Connect(natsURL, append([]nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	if err := try(); err == nil {
		t.Errorf("a plain NATS client without credentials connected to %s", natsURL)
	}
	err := try(nats.RootCAs(natsCA))
	if !errors.Is(err, nats.ErrAuthorization) && (err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization")) {
		t.Errorf("a NATS client over TLS without the password: err = %v, want an authorization error", err)
	}
	pw, rerr := os.ReadFile(filepath.Join(certs, "nats.password"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err := try(nats.RootCAs(natsCA), nats.UserInfo("natter", strings.TrimSpace(string(pw)))); err != nil {
		t.Errorf("a NATS client with the CA and the password: %v", err)
	}
	a.close()
	b.close()
	l.stop()
}

// TestCertsMakesPasswordsOnceAndKeepsThem: natter certs --passwords
// writes each password file once (mode 0600) and keeps it after; names
// must be plain file names.
func TestCertsMakesPasswordsOnceAndKeepsThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	certs := func(args ...string) (string, error) {
		out, err := exec.Command(natterBin, append([]string{"certs", "--dir", dir}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := certs("--names", "", "--passwords", "nats,kafka"); err != nil {
		t.Fatalf("natter certs: %v\n%s", err, out)
	}
	first := map[string]string{}
	for _, name := range []string{"nats", "kafka"} {
		p := filepath.Join(dir, name+".password")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if pw := strings.TrimSpace(string(b)); len(pw) < 20 {
			t.Errorf("%s holds %q, want a long random password", p, pw)
		}
		first[name] = string(b)
	}
	if first["nats"] == first["kafka"] {
		t.Error("two passwords are the same")
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
		t.Error("--names \"\" made a CA")
	}
	// Again, with a certificate: the passwords are kept, a new one made.
	out, err := certs("--names", "node", "--hosts", "127.0.0.1", "--passwords", "nats,redis")
	if err != nil {
		t.Fatalf("natter certs: %v\n%s", err, out)
	}
	if !strings.Contains(out, "kept password "+filepath.Join(dir, "nats.password")) || !strings.Contains(out, "made password "+filepath.Join(dir, "redis.password")) {
		t.Errorf("natter certs said:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "nats.password")); string(b) != first["nats"] {
		t.Error("an existing password was replaced")
	}
	for _, name := range []string{"ca.pem", "node.pem", "node-key.pem", "redis.password"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range [][]string{
		{"--names", "", "--passwords", ""},
		{"--names", "", "--passwords", "../escape"},
		{"--names", "", "--passwords", ".."},
	} {
		if out, err := certs(bad...); err == nil {
			t.Errorf("natter certs %v succeeded:\n%s", bad, out)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.password")); err == nil {
		t.Error("a password was written outside --dir")
	}
}

// localRun is a running `natter local`.
type localRun struct {
	t        *testing.T
	hp       *topo.Process
	logs     *syncBuffer
	stopped  bool
	said     []string // its standard output up to the list of gateways
	urls     []string
	gateways []*proc // in the order listed: region1-gw1, region1-gw2, …
}

// startLocal runs `natter local args...` and waits until it lists its n
// gateways. It is stopped at cleanup if still running.
func startLocal(t *testing.T, n int, args ...string) *localRun {
	t.Helper()
	stdout := &syncBuffer{}
	l := &localRun{t: t, logs: &syncBuffer{}}
	// Its own process group, so that a kill ends its children too.
	hp, err := topo.Command{Name: "natter local", Path: natterBin, Args: append([]string{"local"}, args...),
		Output: l.logs, Stdout: stdout, Group: true}.Start()
	if err != nil {
		t.Fatal(err)
	}
	l.hp = hp
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("natter local logs:\n%s", tail(l.logs.String(), 80))
		}
		if l.stopped {
			return
		}
		// A test that failed midway: stop it as Ctrl-C would, so its
		// children do not hold their ports for the next test.
		ctx, cancel := timeout(60 * time.Second)
		defer cancel()
		_ = hp.Stop(ctx)
	})
	checkFor(t, 5*time.Minute, 50*time.Millisecond, func() error {
		l.said, l.urls = nil, nil
		for line := range strings.Lines(stdout.String()) {
			if len(l.urls) == n {
				break
			}
			line = strings.TrimSuffix(line, "\n")
			l.said = append(l.said, line)
			if i := strings.Index(line, "http://"); i >= 0 {
				l.urls = append(l.urls, line[i:])
			}
		}
		select {
		case <-hp.Done():
			if len(l.urls) != n {
				t.Fatalf("natter local exited (%v) after printing %d gateway URLs, want %d; it said:\n%s", hp.Err(), len(l.urls), n, strings.Join(l.said, "\n"))
			}
		default:
		}
		if len(l.urls) != n {
			return fmt.Errorf("natter local printed %d gateway URLs, want %d; it said:\n%s", len(l.urls), n, strings.Join(l.said, "\n"))
		}
		return nil
	})
	for _, u := range l.urls {
		l.gateways = append(l.gateways, &proc{t: t, addr: strings.TrimPrefix(u, "http://"), done: make(chan struct{})})
	}
	return l
}

// stop sends SIGTERM and checks that natter local exits cleanly and
// takes its gateways with it.
func (l *localRun) stop() {
	t := l.t
	t.Helper()
	l.stopped = true
	ctx, cancel := timeout(60 * time.Second)
	defer cancel()
	if err := l.hp.Stop(ctx); errors.Is(err, topo.ErrKilled) {
		t.Fatal("natter local did not stop within 60s")
	} else if err != nil {
		t.Errorf("natter local: %v", err)
	}
	for _, u := range l.urls {
		if resp, err := http.Get(u + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after natter local stopped", u)
		}
	}
}

// expectBodies waits until msgs with each of bodies arrived, in any
// order, skipping other frames.
func expectBodies(c *client, bodies ...string) {
	c.t.Helper()
	want := map[string]bool{}
	for _, b := range bodies {
		want[b] = true
	}
	for len(want) > 0 {
		delete(want, c.expect("msg").Body)
	}
}
