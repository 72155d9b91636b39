// Tests for TLS and passwords on the in-process NATS server's client
// port, routes and leaf nodes: the right peers get in, the others are
// refused and leave the legitimate links alone, and no secret is logged.

package embedded

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter/tlsconf"
)

// testPKI is a throwaway CA with its certificate in dir/ca.pem.
type testPKI struct {
	ca     *tlsconf.CA
	dir    string
	caFile string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	ca, err := tlsconf.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, dir: dir, caFile: filepath.Join(dir, "ca.pem")}
}

// files issues a certificate for name, valid for the loopback address.
func (p *testPKI) files(t *testing.T, name string) tlsconf.Files {
	t.Helper()
	cert, key, err := p.ca.IssueFiles(p.dir, name, "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return tlsconf.Files{CA: p.caFile, Cert: cert, Key: key}
}

// server is the listening (and, for routes and leaf nodes, dialling)
// configuration of a node named name; verify asks for mutual TLS.
func (p *testPKI) server(t *testing.T, name string, verify bool) *tls.Config {
	t.Helper()
	c, err := p.files(t, name).Server(verify)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logCapture keeps every line a server logs, down to nats-server's
// protocol trace, so a test can look for secrets and wait for refusals.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCapture) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// count returns how many lines hold s.
func (c *logCapture) count(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// first returns the first line that holds s, or "".
func (c *logCapture) first(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// last returns the last line that holds s, or "".
func (c *logCapture) last(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.lines) - 1; i >= 0; i-- {
		if strings.Contains(c.lines[i], s) {
			return c.lines[i]
		}
	}
	return ""
}

// logs is every server's capture of one test, for the secret check.
type logs struct {
	mu   sync.Mutex
	caps []*logCapture
}

// logger logs through t (debug and up) and captures everything, trace
// included.
func (ls *logs) logger(t *testing.T) (*slog.Logger, *logCapture) {
	c := &logCapture{}
	ls.mu.Lock()
	ls.caps = append(ls.caps, c)
	ls.mu.Unlock()
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewTextHandler(c, &slog.HandlerOptions{Level: levelTrace}),
	)), c
}

// start starts a server that logs into ls.
func (ls *logs) start(t *testing.T, cfg NATSConfig) (*NATS, *logCapture) {
	t.Helper()
	log, c := ls.logger(t)
	n, err := StartNATS(cfg, log)
	if err != nil {
		t.Fatalf("StartNATS %s: %v", cfg.ServerName, err)
	}
	t.Cleanup(func() { mustNotErr(t, "close nats", n.Close()) })
	return n, c
}

// checkNoSecret fails the test if any server logged one of secrets.
// Registered first, it runs after the servers have closed.
func (ls *logs) checkNoSecret(t *testing.T, secrets ...func() string) {
	t.Cleanup(func() {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		for _, sf := range secrets {
			s := sf()
			if s == "" {
				continue
			}
			for _, c := range ls.caps {
				if l := c.first(s); l != "" {
					t.Errorf("a secret is in the log: %s", l)
				}
			}
		}
	})
}

func constant(s string) func() string { return func() string { return s } }

// roundTrip checks that a message published on pub reaches a subscriber
// on sub (the same connection or not, the same server or not).
func roundTrip(t *testing.T, pub, sub *nats.Conn, subject string, subjectInterest ...*NATS) {
	t.Helper()
	s, err := sub.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Unsubscribe() }()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Across servers, interest arrives asynchronously.
	for _, n := range subjectInterest {
		checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if !n.srv.GlobalAccount().SubscriptionInterest(subject) {
				return fmt.Errorf("%s has no interest in %s yet", n.srv.Name(), subject)
			}
			return nil
		})
	}
	if err := pub.Publish(subject, []byte("hello "+subject)); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("message on %s did not arrive: %v", subject, err)
	}
	if string(m.Data) != "hello "+subject {
		t.Fatalf("got %q on %s", m.Data, subject)
	}
}

// acrossServers checks that a message published on from reaches a
// subscriber on to, through in-process connections.
func acrossServers(t *testing.T, from, to *NATS, subject string) {
	t.Helper()
	pub, err := from.Connect("pub-" + subject)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := to.Connect("sub-" + subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	roundTrip(t, pub, sub, subject, from)
}

func TestNATSClientPortRequiresPasswordAndTLS(t *testing.T) {
	const user, password = "bridge", "client-secret-d2f9"
	pki := newTestPKI(t, "natter-test-ca")
	var ls logs
	var n *NATS
	ls.checkNoSecret(t, constant(password), func() string {
		if n == nil {
			return ""
		}
		return n.inProcessPassword
	})
	n, _ = ls.start(t, NATSConfig{ServerName: "secure",
		ClientAuth: &UserPassword{User: user, Password: password},
		ClientTLS:  pki.server(t, "secure", false),
	})
	url := n.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q, want nats://127.0.0.1:port", url)
	}

	good, err := nats.Connect(url, nats.Name("good"), nats.UserInfo(user, password), nats.RootCAs(pki.caFile))
	if err != nil {
		t.Fatalf("legitimate client: %v", err)
	}
	defer good.Close()
	if !good.TLSRequired() {
		t.Error("the legitimate client's connection is not TLS")
	}
	roundTrip(t, good, good, "room.tcp")

	inProc, err := n.Connect("in-process")
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	defer inProc.Close()
	roundTrip(t, inProc, good, "room.from-in-process")
	roundTrip(t, good, inProc, "room.to-in-process")

	for _, tc := range []struct {
		name string
		opts []nats.Option
		want func(error) bool
	}{
		{"no credentials", []nats.Option{nats.RootCAs(pki.caFile)}, isAuthErr},
		{"wrong password", []nats.Option{nats.UserInfo(user, "guess"), nats.RootCAs(pki.caFile)}, isAuthErr},
		{"in-process user over TCP", []nats.Option{nats.UserInfo(inProcessUser, "guess"), nats.RootCAs(pki.caFile)}, isAuthErr},
		{"CA not trusted", []nats.Option{nats.UserInfo(user, password)}, isUnknownCAErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(url, append([]nats.Option{nats.Name(tc.name), nats.NoReconnect()}, tc.opts...)...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !tc.want(err) {
				t.Errorf("refused with %v", err)
			}
			roundTrip(t, good, good, "room.still")
		})
	}

	t.Run("plain client", func(t *testing.T) {
		refusedPlain(t, url, user, password)
		roundTrip(t, good, good, "room.still")
	})
}

// With mutual TLS on the client port, a client must present a certificate
// from the CA; in-process connections still need none.
func TestNATSClientPortWithMutualTLS(t *testing.T) {
	const user, password = "bridge", "client-secret-7a31"
	pki := newTestPKI(t, "natter-test-ca")
	other := newTestPKI(t, "other-ca")
	var ls logs
	ls.checkNoSecret(t, constant(password))
	n, logN := ls.start(t, NATSConfig{ServerName: "mutual",
		ClientAuth: &UserPassword{User: user, Password: password},
		ClientTLS:  pki.server(t, "mutual", true),
	})
	mine, theirs := pki.files(t, "bridge"), other.files(t, "bridge")

	good, err := nats.Connect(n.ClientURL(), nats.UserInfo(user, password), nats.RootCAs(pki.caFile), nats.ClientCert(mine.Cert, mine.Key))
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	defer good.Close()
	inProc, err := n.Connect("in-process")
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	defer inProc.Close()
	roundTrip(t, inProc, good, "room.mutual")

	for name, opts := range map[string][]nats.Option{
		"no client certificate":       {nats.UserInfo(user, password), nats.RootCAs(pki.caFile)},
		"certificate from another CA": {nats.UserInfo(user, password), nats.RootCAs(pki.caFile), nats.ClientCert(theirs.Cert, theirs.Key)},
	} {
		t.Run(name, func(t *testing.T) {
			before := logN.count(clientHandshakeError)
			nc, err := nats.Connect(n.ClientURL(), append([]nats.Option{nats.NoReconnect()}, opts...)...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			// Under TLS 1.3 the client's handshake is over before the
			// server checks its certificate: the client learns of the
			// refusal as an alert ("certificate required": Go's client
			// sends no certificate that the server's CAs did not issue)
			// or as a closed connection, both TLS errors to nats.go.
			if !strings.Contains(err.Error(), "tls") {
				t.Errorf("refused with %v, want a TLS error", err)
			}
			checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if c := logN.count(clientHandshakeError); c <= before {
					return errors.New("the server logged no TLS handshake error")
				}
				return nil
			})
			roundTrip(t, good, inProc, "room.still")
		})
	}
}

// clientHandshakeError is what nats-server logs when a client's TLS
// handshake fails.
const clientHandshakeError = "TLS handshake error"

func isAuthErr(err error) bool { return errors.Is(err, nats.ErrAuthorization) }

func isUnknownCAErr(err error) bool {
	return strings.Contains(err.Error(), "certificate signed by unknown authority")
}

// refusedPlain speaks the NATS protocol without TLS, with the right
// password: the server, which requires TLS, must never answer its PING.
func refusedPlain(t *testing.T, url, user, password string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "nats://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, `"tls_required":true`) {
		t.Errorf("INFO does not require TLS: %s", info)
	}
	if _, err := fmt.Fprintf(conn, "CONNECT {\"user\":%q,\"pass\":%q,\"verbose\":false}\r\nPING\r\n", user, password); err != nil {
		return // refused already
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return // closed by the server: refused
		}
		if strings.HasPrefix(line, "PONG") {
			t.Fatal("a plain-text client got a PONG")
		}
	}
}

// leafAttempts is its line before each leaf-node connection it dials.
const leafAttempts = "Trying to connect as leafnode"

func TestNATSRoutesWithMutualTLSAndPassword(t *testing.T) {
	const clusterPassword = "route-secret-5c0e"
	pki := newTestPKI(t, "natter-test-ca")
	other := newTestPKI(t, "other-ca")
	var ls logs
	ls.checkNoSecret(t, constant(clusterPassword), constant("client-secret-0b6d"))
	auth := &UserPassword{User: "route", Password: clusterPassword}
	node := func(name string, tlsc *tls.Config, auth *UserPassword, routes ...string) NATSConfig {
		return NATSConfig{ServerName: name, ClusterName: "natter-test", ClusterTLS: tlsc, ClusterAuth: auth, Routes: routes}
	}
	// The legitimate nodes require a client password too, as gateways
	// would: routes do not use it, and in-process connections (through
	// which acrossServers publishes) log in as the internal user.
	clientAuth := &UserPassword{User: "bridge", Password: "client-secret-0b6d"}
	cfgA := node("a", pki.server(t, "a", true), auth)
	cfgA.ClientAuth = clientAuth
	a, logA := ls.start(t, cfgA)
	cfgB := node("b", pki.server(t, "b", true), auth, a.ClusterURL())
	cfgB.ClientAuth = clientAuth
	b, _ := ls.start(t, cfgB)
	// Wait for all the routes between the two, so that the count does not
	// move later on its own.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return onlyRoutesTo(a, "b", routesPerPeer)
	})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		return onlyRoutesTo(b, "a", routesPerPeer)
	})
	acrossServers(t, a, b, "room.ab")
	acrossServers(t, b, a, "room.ba")

	// Nodes that must not join try through a: one whose certificate
	// another CA issued (it trusts our CA, so that a is the one to
	// refuse), one without TLS, and one with the wrong password.
	foreign := other.server(t, "c", true)
	ourCA, err := tlsconf.LoadCA(pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = ourCA
	for _, tc := range []struct {
		name string
		cfg  NATSConfig
		// refusal is what a logs when it refuses the node.
		refusal string
	}{
		{"certificate from another CA", node("c", foreign, auth, a.ClusterURL()), routeHandshakeError},
		{"no TLS", node("d", nil, auth, a.ClusterURL()), routeHandshakeError},
		{"wrong password", node("e", pki.server(t, "e", true), &UserPassword{User: "route", Password: "guess"}, a.ClusterURL()), authError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := logA.count(tc.refusal)
			n, _ := ls.start(t, tc.cfg)
			checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
				if logA.count(tc.refusal) == before {
					return fmt.Errorf("a has not logged %q", tc.refusal)
				}
				return nil
			})
			t.Logf("a refused the node: %s", logA.last(tc.refusal))
			// The dialling side registers a route when it reads the
			// other node's INFO, which comes before the other node
			// has checked its password: a refused node may count a
			// route for a moment, until the refusal closes it.
			checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if r := n.Routes(); r != 0 {
					return fmt.Errorf("the node has %d routes", r)
				}
				return nil
			})
			for _, nb := range []struct {
				n      *NATS
				remote string
			}{{a, "b"}, {b, "a"}} {
				if err := onlyRoutesTo(nb.n, nb.remote, routesPerPeer); err != nil {
					t.Error(err)
				}
			}
			acrossServers(t, a, b, "room.ab-after")
			acrossServers(t, b, a, "room.ba-after")
		})
	}
}

// What nats-server logs when it refuses a route (at error level, on the
// accepting side, and again for every retry of the other node's, about
// once a second).
const (
	routeHandshakeError = "TLS route handshake error"
	authError           = "authentication error"
)

// routesPerPeer is how many routes nats-server opens between two nodes:
// a pool shared by the accounts, and one for the system account.
const routesPerPeer = server.DEFAULT_ROUTE_POOL_SIZE + 1

// onlyRoutesTo says why n does not have exactly want routes, all to the
// server named remote.
func onlyRoutesTo(n *NATS, remote string, want int) error {
	links, err := n.Links()
	if err != nil {
		return err
	}
	got := 0
	for _, l := range links {
		if !strings.HasPrefix(l.ID, "route:") {
			continue
		}
		if l.Remote != remote {
			return fmt.Errorf("%s has a route to %s", n.srv.Name(), l.Remote)
		}
		got++
	}
	if got != want || n.Routes() != want {
		return fmt.Errorf("%s has %d routes to %s (Routes() = %d), want %d", n.srv.Name(), got, remote, n.Routes(), want)
	}
	return nil
}

func TestNATSLeafNodesWithMutualTLSAndPassword(t *testing.T) {
	const leafPassword = "leaf-secret-91b4"
	pki := newTestPKI(t, "natter-test-ca")
	other := newTestPKI(t, "other-ca")
	var ls logs
	ls.checkNoSecret(t, constant(leafPassword), constant("client-secret-44e2"))
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	auth := &UserPassword{User: "edge", Password: leafPassword}
	// The hub requires a client password too: leaf nodes must not need it.
	hub, logHub := ls.start(t, NATSConfig{ServerName: "hub", LeafPort: port, LeafTLS: pki.server(t, "hub", true), LeafAuth: auth,
		ClientAuth: &UserPassword{User: "bridge", Password: "client-secret-44e2"}})
	hubURL := fmt.Sprintf("nats-leaf://127.0.0.1:%d", port)
	edgeCfg := func(name string, tlsc *tls.Config, auth *UserPassword) NATSConfig {
		return NATSConfig{ServerName: name, DontListen: true, LeafRemotes: []string{hubURL}, LeafTLS: tlsc, LeafAuth: auth}
	}
	edge, _ := ls.start(t, edgeCfg("edge", pki.server(t, "edge", true), auth))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if hub.LeafNodes() != 1 || edge.LeafNodes() != 1 {
			return fmt.Errorf("leaf nodes: hub=%d edge=%d", hub.LeafNodes(), edge.LeafNodes())
		}
		return nil
	})
	acrossServers(t, edge, hub, "room.up")
	acrossServers(t, hub, edge, "room.down")

	// Edges that must not connect: one whose certificate another CA
	// issued (it trusts our CA, so that the hub is the one to refuse),
	// and one with the wrong password.
	foreign := other.server(t, "foreign", true)
	ourCA, err := tlsconf.LoadCA(pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = ourCA
	for _, tc := range []struct {
		name    string
		cfg     NATSConfig
		refusal string // what the hub logs
	}{
		{"certificate from another CA", edgeCfg("foreign", foreign, auth), leafHandshakeError},
		{"wrong password", edgeCfg("guesser", pki.server(t, "guesser", true), &UserPassword{User: "edge", Password: "guess"}), authError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := logHub.count(tc.refusal)
			n, logN := ls.start(t, tc.cfg)
			// The hub refuses the edge, and again when it retries: a
			// second attempt starts only once the first is over.
			checkFor(t, 15*time.Second, 10*time.Millisecond, func() error {
				if logHub.count(tc.refusal) == before || logN.count(leafAttempts) < 2 {
					return fmt.Errorf("the hub logged %q %d times, the edge tried %d times",
						tc.refusal, logHub.count(tc.refusal)-before, logN.count(leafAttempts))
				}
				return nil
			})
			t.Logf("the hub refused the edge: %s", logHub.last(tc.refusal))
			// Like a route, the dialling side registers the connection
			// when it reads the hub's INFO, before the hub has checked
			// its password: it may count a leaf node for a moment.
			checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if l := n.LeafNodes(); l != 0 {
					return fmt.Errorf("the edge has %d leaf nodes", l)
				}
				return nil
			})
			if l := hub.LeafNodes(); l != 1 {
				t.Errorf("the hub has %d leaf nodes, want 1", l)
			}
			acrossServers(t, edge, hub, "room.up-after")
			acrossServers(t, hub, edge, "room.down-after")
		})
	}
}

// leafHandshakeError is what a hub logs (at error level) when a leaf
// node's TLS handshake fails.
const leafHandshakeError = "TLS leafnode handshake error"

// A hub that does not verify leaf nodes takes an edge that only verifies
// the hub: LeafTLS with a CA and no certificate, as tlsconf's Client
// makes.
func TestNATSLeafNodeWithServerOnlyTLS(t *testing.T) {
	pki := newTestPKI(t, "natter-test-ca")
	var ls logs
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	hub, _ := ls.start(t, NATSConfig{ServerName: "hub", LeafPort: port, LeafTLS: pki.server(t, "hub", false)})
	edgeTLS, err := tlsconf.Files{CA: pki.caFile}.Client()
	if err != nil {
		t.Fatal(err)
	}
	edge, _ := ls.start(t, NATSConfig{ServerName: "edge", DontListen: true,
		LeafRemotes: []string{fmt.Sprintf("nats-leaf://127.0.0.1:%d", port)}, LeafTLS: edgeTLS})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if hub.LeafNodes() != 1 || edge.LeafNodes() != 1 {
			return fmt.Errorf("leaf nodes: hub=%d edge=%d", hub.LeafNodes(), edge.LeafNodes())
		}
		return nil
	})
	acrossServers(t, edge, hub, "room.up")
}

func TestNATSRejectsSecurityConfigsItCannotRun(t *testing.T) {
	pki := newTestPKI(t, "natter-test-ca")
	serving := pki.server(t, "node", false)
	verifying := pki.server(t, "node", true)
	clientOnly, err := tlsconf.Files{CA: pki.caFile}.Client()
	if err != nil {
		t.Fatal(err)
	}
	noCAs := verifying.Clone()
	noCAs.ClientCAs = nil
	auth := &UserPassword{User: "u", Password: "p"}
	for _, tc := range []struct {
		name string
		cfg  NATSConfig
		want string
	}{
		{"client auth without client listener", NATSConfig{DontListen: true, ClientAuth: auth}, "DontListen turns off"},
		{"client TLS without client listener", NATSConfig{DontListen: true, ClientTLS: serving}, "DontListen turns off"},
		{"client auth without password", NATSConfig{ClientAuth: &UserPassword{User: "u"}}, "needs both a user and a password"},
		{"client auth without user", NATSConfig{ClientAuth: &UserPassword{Password: "p"}}, "needs both a user and a password"},
		{"client auth as the in-process user", NATSConfig{ClientAuth: &UserPassword{User: inProcessUser, Password: "p"}}, "reserved"},
		{"client auth and leaf listener without leaf auth", NATSConfig{ClientAuth: auth, LeafPort: -1}, "needs LeafAuth"},
		{"client TLS without certificate", NATSConfig{ClientTLS: clientOnly}, "no certificate"},
		{"client TLS verifying without CAs", NATSConfig{ClientTLS: noCAs}, "no ClientCAs"},
		{"cluster TLS without cluster name", NATSConfig{ClusterTLS: verifying}, "need ClusterName"},
		{"cluster auth without cluster name", NATSConfig{ClusterAuth: auth}, "need ClusterName"},
		{"cluster auth without password", NATSConfig{ClusterName: "c", ClusterAuth: &UserPassword{User: "u"}}, "needs both"},
		{"cluster TLS that does not verify", NATSConfig{ClusterName: "c", ClusterTLS: serving}, "RequireAndVerifyClientCert"},
		{"cluster TLS without certificate", NATSConfig{ClusterName: "c", ClusterTLS: &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: verifying.ClientCAs}}, "no certificate"},
		{"cluster TLS without CAs", NATSConfig{ClusterName: "c", ClusterTLS: noCAs}, "no ClientCAs"},
		{"leaf TLS without leaf connections", NATSConfig{LeafTLS: verifying}, "need LeafPort or LeafRemotes"},
		{"leaf auth without leaf connections", NATSConfig{LeafAuth: auth}, "need LeafPort or LeafRemotes"},
		{"leaf auth without password", NATSConfig{LeafPort: -1, LeafAuth: &UserPassword{User: "u"}}, "needs both"},
		{"leaf listener TLS without certificate", NATSConfig{LeafPort: -1, LeafTLS: clientOnly}, "no certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := StartNATS(tc.cfg, testLogger(t))
			if err == nil {
				n.Close()
				t.Fatal("StartNATS succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// A URL that StartNATS refuses may hold a password: the error hides it.
func TestNATSRefusedURLHidesPassword(t *testing.T) {
	for _, cfg := range []NATSConfig{
		{ClusterName: "c", Routes: []string{"tls://route:hunter2@127.0.0.1:6222"}},
		{ClusterName: "c", Routes: []string{"route:hunter2@127.0.0.1:6222"}},
		{LeafRemotes: []string{"http://edge:hunter2@127.0.0.1:7422"}},
	} {
		n, err := StartNATS(cfg, testLogger(t))
		if err == nil {
			n.Close()
			t.Fatalf("StartNATS(%+v) succeeded", cfg)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
