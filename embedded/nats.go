// This file runs a NATS server inside the natter process: the message bus of
// the one-process default, and the building block of a multi-node region when
// it is given a cluster name and routes.

package embedded

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Links to other servers (routes, leaf nodes) ping every linkPingInterval
// and are closed when linkMaxPingsOut pings are unanswered: a link that
// went silent (a black-holed network) is closed within LinkTimeout.
const (
	linkPingInterval = 2 * time.Second
	linkMaxPingsOut  = 3
	// LinkTimeout bounds how long a dead route or leaf-node link stays
	// open: the last unanswered ping goes out linkMaxPingsOut intervals
	// after the link died, and the check one interval later closes it.
	LinkTimeout = linkPingInterval * (linkMaxPingsOut + 1)
)

// natsReadyTimeout bounds how long StartNATS waits for the listeners.
const natsReadyTimeout = 10 * time.Second

// natsTLSTimeout bounds a TLS handshake on the client port, a route or a
// leaf-node connection (nats-server's default is 2 s, tight for a loaded
// machine or a long link).
const natsTLSTimeout = 5 * time.Second

// inProcessUser is the user Connect logs in as when ClientAuth is set. Its
// password is random, made at StartNATS, and known only to the NATS value.
const inProcessUser = "natter-in-process"

// NATSConfig configures StartNATS. The zero value is an in-process-only
// server with no TCP listener at all; that is what the one-process default
// wants, since every client lives in the same process.
type NATSConfig struct {
	// ServerName names the server in logs, monitoring and route handshakes.
	// Empty means the server's random ID.
	ServerName string

	// DontListen turns off the client TCP listener: only Connect works.
	// It cannot be combined with clustering, because nats-server starts the
	// route listener only after the client listener.
	DontListen bool
	// Host is the client listener's address. Empty means 127.0.0.1.
	Host string
	// Port is the client listener's port. 0 picks a free port; ClientURL
	// says which.
	Port int

	// ClusterName turns on clustering: nodes with the same name and routes
	// between them form one NATS cluster. Empty means a standalone server.
	ClusterName string
	// ClusterHost is the route listener's address. Empty means 127.0.0.1.
	ClusterHost string
	// ClusterPort is the route listener's port. 0 picks a free port;
	// ClusterURL says which.
	ClusterPort int
	// ClusterAdvertise is the route address ("host:port") this node
	// gives the others, for when they must reach it through another
	// address than ClusterHost:ClusterPort (NAT, a proxy, a load
	// balancer). Empty advertises the listener's own address.
	ClusterAdvertise string
	// Routes are the route URLs of other nodes, e.g.
	// "nats://10.0.0.2:6222". A node may list itself: nats-server skips it,
	// so every node of a region can be given the same list.
	Routes []string

	// LeafRemotes makes the server a leaf node of each hub URL (e.g.
	// "nats-leaf://hub:7422"): the edge shape, where gateways connect out
	// to a regional hub instead of meshing routes with each other. Leaf
	// connections work with DontListen.
	LeafRemotes []string
	// LeafHost and LeafPort, with LeafPort non-zero, open a leaf-node
	// listener: this server is the hub others connect to.
	LeafHost string
	LeafPort int

	// ClientAuth, when set, makes the client listener require this user
	// and password. Connect is not affected: in-process connections log
	// in as a second, internal user whose random password, made by
	// StartNATS, only the returned NATS knows. Both users may publish and
	// subscribe to anything. It needs the client listener (DontListen
	// false), and LeafAuth when there is a leaf listener, since
	// nats-server would otherwise make leaf nodes log in as a client
	// user.
	ClientAuth *UserPassword
	// ClientTLS, when set, puts the client listener under TLS. It needs a
	// certificate; when its own ClientAuth field is
	// tls.RequireAndVerifyClientCert, clients must also present a
	// certificate that its ClientCAs verify (mutual TLS). ClientURL stays
	// nats://host:port: nats.go switches to TLS when the server requires
	// it. Connect is not affected: in-process connections skip TLS. It
	// needs the client listener.
	ClientTLS *tls.Config

	// ClusterTLS, when set, puts every route under mutual TLS, the ones
	// this node accepts and the ones it dials; route URLs stay
	// nats://host:port. It needs ClusterName, a certificate, ClientCAs,
	// and its ClientAuth field set to tls.RequireAndVerifyClientCert: a
	// node joins only with a certificate that ClientCAs verify, and this
	// node verifies the ones it dials with RootCAs (ClientCAs when RootCAs
	// is nil), against the host of the route URL or advertised address.
	// tlsconf.Files.Server(true) makes such a configuration.
	ClusterTLS *tls.Config
	// ClusterAuth, when set, makes the route listener require this user
	// and password, and this node presents them on the routes it dials,
	// in place of any user info in Routes. It needs ClusterName.
	ClusterAuth *UserPassword

	// LeafTLS, when set, puts leaf-node connections under TLS: the leaf
	// listener's, which then needs a certificate (and when the
	// configuration's ClientAuth field is tls.RequireAndVerifyClientCert,
	// leaf nodes must present a certificate that its ClientCAs verify),
	// and the ones to LeafRemotes, which verify the hub with RootCAs
	// (ClientCAs when RootCAs is nil) and present the configuration's
	// certificate, if any. It needs a leaf listener or LeafRemotes.
	LeafTLS *tls.Config
	// LeafAuth, when set, makes the leaf listener require this user and
	// password, and this server presents them to LeafRemotes, in place of
	// any user info in those URLs. It needs a leaf listener or
	// LeafRemotes.
	LeafAuth *UserPassword
}

// UserPassword is a user name and password that a listener requires and,
// for routes and leaf nodes, that a dialling server presents. Neither may
// be empty.
type UserPassword struct {
	User     string
	Password string
}

func (up *UserPassword) check(field string) error {
	if up.User == "" || up.Password == "" {
		return fmt.Errorf("nats: %s needs both a user and a password", field)
	}
	return nil
}

// NATS is a running in-process NATS server.
type NATS struct {
	srv *server.Server
	log *slog.Logger
	// inProcessPassword is inProcessUser's password, or "" when the
	// server requires no client authentication.
	inProcessPassword string
	closeOnce         sync.Once
}

// StartNATS starts a NATS server in this process and returns once it accepts
// connections. It installs no signal handlers: the natter process owns those
// and calls Close. The server's own log lines go to log (nil discards them).
func StartNATS(cfg NATSConfig, log *slog.Logger) (*NATS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("component", "nats"))
	opts, err := cfg.serverOptions()
	if err != nil {
		return nil, err
	}
	var inProcessPassword string
	if cfg.ClientAuth != nil {
		inProcessPassword = rand.Text()
		opts.Users = append(opts.Users, &server.User{Username: inProcessUser, Password: inProcessPassword})
	}
	if !cfg.DontListen {
		if err := checkPortFree("nats", opts.Host, opts.Port, "set another NATS port or stop the other process"); err != nil {
			return nil, err
		}
	}
	if cfg.ClusterName != "" {
		if err := checkPortFree("nats", opts.Cluster.Host, opts.Cluster.Port, "set another NATS cluster port or stop the other process"); err != nil {
			return nil, err
		}
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: configure server: %w", err)
	}
	sl := &natsLogger{log: log, fatal: make(chan string, 1)}
	srv.SetLoggerV2(sl, log.Enabled(context.Background(), slog.LevelDebug), log.Enabled(context.Background(), levelTrace), false)
	srv.Start()

	// ReadyForConnections polls for its whole timeout even when a listener
	// already failed, so we poll in short slices and stop at the first
	// fatal log line, which is how nats-server reports a failed start.
	for deadline := time.Now().Add(natsReadyTimeout); !srv.ReadyForConnections(50 * time.Millisecond); {
		var why string
		select {
		case why = <-sl.fatal:
		default:
			if time.Now().Before(deadline) {
				continue
			}
			why = "not ready after " + natsReadyTimeout.String()
		}
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: start server: %s", why)
	}
	sl.started.Store(true)
	n := &NATS{srv: srv, log: log, inProcessPassword: inProcessPassword}
	attrs := []any{slog.String("client_url", n.ClientURL()), slog.String("cluster_url", n.ClusterURL())}
	if sec := cfg.security(); sec != "" {
		attrs = append(attrs, slog.String("security", sec))
	}
	log.Info("nats server started", attrs...)
	return n, nil
}

// Connect opens a client connection that talks to the server through an
// in-memory pipe: no TCP, no port, and it works with DontListen. name is the
// connection name shown in monitoring; opts are applied after ours, so a
// caller can override any of them.
//
// When the server requires client authentication (ClientAuth), the
// connection logs in as an internal user that only this value knows the
// password of; when the client port has TLS, the connection skips it, as
// nats-server lets in-process connections do.
func (n *NATS) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.Name(name), nats.InProcessServer(n.srv)}
	if n.inProcessPassword != "" {
		all = append(all, nats.UserInfo(inProcessUser, n.inProcessPassword))
	}
	all = append(all, opts...)
	// The URL is never dialled with InProcessServer set, but nats.go wants
	// at least one server in its list. nats-server gives a tls:// URL when
	// the client port has TLS, and nats.go would then insist on TLS over
	// the pipe; in-process connections need none.
	u := strings.Replace(n.srv.ClientURL(), "tls://", "nats://", 1)
	nc, err := nats.Connect(u, all...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %q in-process: %w", name, err)
	}
	return nc, nil
}

// ClientURL is the URL for TCP clients, e.g. "nats://127.0.0.1:4222", or ""
// when DontListen is set.
func (n *NATS) ClientURL() string {
	if n.srv.Addr() == nil {
		return ""
	}
	return "nats://" + n.srv.Addr().String()
}

// ClusterURL is the URL other nodes put in their Routes, or "" when
// clustering is off.
func (n *NATS) ClusterURL() string {
	if a := n.srv.ClusterAddr(); a != nil {
		return "nats://" + a.String()
	}
	return ""
}

// Routes returns the number of route connections to other servers of
// the cluster.
func (n *NATS) Routes() int { return n.srv.NumRoutes() }

// Link is one connection of this server to another NATS server: a route
// or a leaf-node connection.
type Link struct {
	// ID names the connection uniquely for the server's lifetime:
	// "route:<rid>" or "leaf:<cid>".
	ID string
	// Remote names the server at the other end (its name, else its ID).
	Remote string
}

// Links lists the server's route and leaf-node connections. A pooled
// route to one server shows as several links.
func (n *NATS) Links() ([]Link, error) {
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return nil, fmt.Errorf("nats: routes: %w", err)
	}
	lz, err := n.srv.Leafz(nil)
	if err != nil {
		return nil, fmt.Errorf("nats: leaf nodes: %w", err)
	}
	out := make([]Link, 0, len(rz.Routes)+len(lz.Leafs))
	for _, r := range rz.Routes {
		out = append(out, Link{ID: "route:" + strconv.FormatUint(r.Rid, 10), Remote: orDefault(r.RemoteName, r.RemoteID)})
	}
	for _, l := range lz.Leafs {
		out = append(out, Link{ID: "leaf:" + strconv.FormatUint(l.ID, 10), Remote: l.Name})
	}
	return out, nil
}

// LeafNodes returns the number of leaf-node connections.
func (n *NATS) LeafNodes() int { return n.srv.NumLeafNodes() }

// Close shuts the server down and waits until it has: every client and route
// is closed and every server goroutine has ended. It is safe to call more
// than once, and always returns nil; it has an error so that NATS is an
// io.Closer like the other embedded services.
func (n *NATS) Close() error {
	n.closeOnce.Do(func() {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.log.Info("nats server stopped")
	})
	return nil
}

// serverOptions validates cfg and turns it into nats-server options.
func (cfg NATSConfig) serverOptions() (*server.Options, error) {
	if err := cfg.checkSecurity(); err != nil {
		return nil, err
	}
	clustered := cfg.ClusterName != ""
	if !clustered && (len(cfg.Routes) > 0 || cfg.ClusterPort != 0 || cfg.ClusterHost != "") {
		return nil, errors.New("nats: routes and a cluster listener need ClusterName")
	}
	if clustered && cfg.DontListen {
		return nil, errors.New("nats: clustering needs the client listener; DontListen must be false when ClusterName is set")
	}
	opts := cfg.clientOptions()
	if err := cfg.addLeafNodes(opts); err != nil {
		return nil, err
	}
	if clustered || len(cfg.LeafRemotes) > 0 || cfg.LeafPort != 0 {
		// Links ping often, so one that went silent is closed within
		// LinkTimeout rather than minutes: the gateway's resync after a
		// broken link (gateway/resync.go) reaches back that far. Leaf
		// nodes (and TCP clients) take the server-wide interval, routes
		// the cluster's.
		opts.PingInterval = linkPingInterval
		opts.MaxPingsOut = linkMaxPingsOut
	}
	if !clustered {
		return opts, nil
	}
	if err := cfg.addCluster(opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// clientOptions are the server's options with its client listener, and
// the user and TLS it requires.
func (cfg NATSConfig) clientOptions() *server.Options {
	opts := &server.Options{
		ServerName: cfg.ServerName,
		DontListen: cfg.DontListen,
		Host:       orDefault(cfg.Host, "127.0.0.1"),
		Port:       randomIfZero(cfg.Port),
		NoSigs:     true,
	}
	if cfg.DontListen {
		opts.Port = 0
	}
	if cfg.ClientAuth != nil {
		// StartNATS adds the in-process user.
		opts.Users = []*server.User{{Username: cfg.ClientAuth.User, Password: cfg.ClientAuth.Password}}
	}
	if cfg.ClientTLS != nil {
		opts.TLSConfig = cfg.ClientTLS.Clone()
		opts.TLSTimeout = natsTLSTimeout.Seconds()
		// nats-server decides on verifying clients by the configuration's
		// ClientAuth; TLSVerify only says so in monitoring and INFO.
		opts.TLSVerify = cfg.ClientTLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	return opts
}

// addLeafNodes adds cfg's links to leaf-node hubs and its leaf-node
// listener to opts, with their user and TLS.
func (cfg NATSConfig) addLeafNodes(opts *server.Options) error {
	var leafTLS *tls.Config
	if cfg.LeafTLS != nil {
		leafTLS = cfg.LeafTLS.Clone()
		if leafTLS.RootCAs == nil {
			leafTLS.RootCAs = leafTLS.ClientCAs
		}
	}
	for _, r := range cfg.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-leaf") || u.Port() == "" {
			return fmt.Errorf("nats: leaf remote %q is not a nats-leaf://host:port URL", redactURL(r))
		}
		remote := &server.RemoteLeafOpts{URLs: []*url.URL{u}}
		if cfg.LeafAuth != nil {
			u.User = url.UserPassword(cfg.LeafAuth.User, cfg.LeafAuth.Password)
		}
		if leafTLS != nil {
			remote.TLS = true
			remote.TLSConfig = leafTLS.Clone()
			remote.TLSTimeout = natsTLSTimeout.Seconds()
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, remote)
	}
	if cfg.LeafPort != 0 {
		opts.LeafNode.Host = orDefault(cfg.LeafHost, "127.0.0.1")
		opts.LeafNode.Port = randomIfZero(cfg.LeafPort)
		if cfg.LeafAuth != nil {
			opts.LeafNode.Username = cfg.LeafAuth.User
			opts.LeafNode.Password = cfg.LeafAuth.Password
		}
		if leafTLS != nil {
			// A leaf node must present a certificate when ClientAuth says
			// tls.RequireAndVerifyClientCert: nats-server reads that
			// from the configuration, there is no separate switch.
			opts.LeafNode.TLSConfig = leafTLS
			opts.LeafNode.TLSTimeout = natsTLSTimeout.Seconds()
		}
	}
	return nil
}

// addCluster adds cfg's cluster to opts: the route listener, the address
// it advertises, its user and TLS, and the routes to dial.
func (cfg NATSConfig) addCluster(opts *server.Options) error {
	opts.Cluster.Name = cfg.ClusterName
	opts.Cluster.Host = orDefault(cfg.ClusterHost, "127.0.0.1")
	opts.Cluster.Port = randomIfZero(cfg.ClusterPort)
	opts.Cluster.PingInterval = linkPingInterval
	opts.Cluster.MaxPingsOut = linkMaxPingsOut
	if cfg.ClusterAdvertise != "" {
		_, port, err := net.SplitHostPort(cfg.ClusterAdvertise)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("nats: cluster advertise %q is not host:port", cfg.ClusterAdvertise)
		}
		opts.Cluster.Advertise = cfg.ClusterAdvertise
	}
	if cfg.ClusterAuth != nil {
		// Routes learnt from other nodes (not in Routes) are dialled with
		// these too.
		opts.Cluster.Username = cfg.ClusterAuth.User
		opts.Cluster.Password = cfg.ClusterAuth.Password
	}
	if cfg.ClusterTLS != nil {
		// checkSecurity made sure that it verifies the other side; with
		// a TLS configuration, nats-server requires TLS on every route,
		// accepted or dialled, and verifies by ClientAuth.
		tc := cfg.ClusterTLS.Clone()
		if tc.RootCAs == nil {
			tc.RootCAs = tc.ClientCAs
		}
		opts.Cluster.TLSConfig = tc
		opts.Cluster.TLSTimeout = natsTLSTimeout.Seconds()
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats" || u.Port() == "" {
			return fmt.Errorf("nats: route %q is not a nats://host:port URL", redactURL(r))
		}
		if cfg.ClusterAuth != nil {
			// nats-server presents a route URL's user info when it dials.
			u.User = url.UserPassword(cfg.ClusterAuth.User, cfg.ClusterAuth.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// checkSecurity refuses TLS and authentication settings that cannot work
// together with the rest of cfg.
func (cfg NATSConfig) checkSecurity() error {
	if cfg.DontListen && (cfg.ClientAuth != nil || cfg.ClientTLS != nil) {
		return errors.New("nats: ClientAuth and ClientTLS secure the client listener, which DontListen turns off")
	}
	if cfg.ClientAuth != nil {
		if err := cfg.ClientAuth.check("ClientAuth"); err != nil {
			return err
		}
		if cfg.ClientAuth.User == inProcessUser {
			return fmt.Errorf("nats: ClientAuth user %q is reserved for in-process connections", inProcessUser)
		}
		if cfg.LeafPort != 0 && cfg.LeafAuth == nil {
			return errors.New("nats: ClientAuth with a leaf listener needs LeafAuth, or nats-server would make leaf nodes log in as the client user")
		}
	}
	if cfg.ClientTLS != nil {
		if err := checkServerTLS("ClientTLS", cfg.ClientTLS); err != nil {
			return err
		}
	}
	if cfg.ClusterName == "" && (cfg.ClusterTLS != nil || cfg.ClusterAuth != nil) {
		return errors.New("nats: ClusterTLS and ClusterAuth secure routes, which need ClusterName")
	}
	if cfg.ClusterAuth != nil {
		if err := cfg.ClusterAuth.check("ClusterAuth"); err != nil {
			return err
		}
	}
	if cfg.ClusterTLS != nil {
		if cfg.ClusterTLS.ClientAuth != tls.RequireAndVerifyClientCert {
			return errors.New("nats: ClusterTLS must verify the other nodes: set its ClientAuth to tls.RequireAndVerifyClientCert")
		}
		if err := checkServerTLS("ClusterTLS", cfg.ClusterTLS); err != nil {
			return err
		}
	}
	leaf := cfg.LeafPort != 0 || len(cfg.LeafRemotes) > 0
	if !leaf && (cfg.LeafTLS != nil || cfg.LeafAuth != nil) {
		return errors.New("nats: LeafTLS and LeafAuth secure leaf-node connections, which need LeafPort or LeafRemotes")
	}
	if cfg.LeafAuth != nil {
		if err := cfg.LeafAuth.check("LeafAuth"); err != nil {
			return err
		}
	}
	if cfg.LeafTLS != nil && cfg.LeafPort != 0 {
		if err := checkServerTLS("LeafTLS", cfg.LeafTLS); err != nil {
			return err
		}
	}
	return nil
}

// checkServerTLS checks that c can serve: it has a certificate, and a CA
// pool when it verifies the other side (else the system's roots would
// verify a private link's peers).
func checkServerTLS(field string, c *tls.Config) error {
	if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return fmt.Errorf("nats: %s has no certificate to serve with", field)
	}
	if c.ClientAuth >= tls.VerifyClientCertIfGiven && c.ClientCAs == nil {
		return fmt.Errorf("nats: %s verifies the other side's certificate but has no ClientCAs", field)
	}
	return nil
}

// security names the TLS and authentication settings that are on, for the
// start-up log line: never a user name or a password.
func (cfg NATSConfig) security() string {
	var on []string
	for _, s := range []struct {
		name string
		set  bool
	}{
		{"client_tls", cfg.ClientTLS != nil},
		{"client_auth", cfg.ClientAuth != nil},
		{"cluster_tls", cfg.ClusterTLS != nil},
		{"cluster_auth", cfg.ClusterAuth != nil},
		{"leaf_tls", cfg.LeafTLS != nil},
		{"leaf_auth", cfg.LeafAuth != nil},
	} {
		if s.set {
			on = append(on, s.name)
		}
	}
	return strings.Join(on, ",")
}

// redactURL hides the password of a URL for an error message, and the
// whole URL when its user info cannot be told apart.
func redactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return "(a URL with user info, not shown)"
}

// randomIfZero maps our "0 picks a free port" to nats-server's -1, because
// to nats-server 0 means its well-known default port.
func randomIfZero(port int) int {
	if port == 0 {
		return server.RANDOM_PORT
	}
	return port
}

// levelTrace is below slog.LevelDebug: nats-server's protocol trace, one line
// per message, wanted only when chasing a bug.
const levelTrace = slog.LevelDebug - 4

// natsLogger bridges nats-server's Logger to slog. nats-server already
// filters debug and trace by the flags given to SetLoggerV2.
type natsLogger struct {
	log *slog.Logger
	// fatal receives the first Fatalf line. nats-server's own logger exits
	// the process on Fatalf; embedded, we turn it into StartNATS's error.
	fatal   chan string
	started atomic.Bool
}

// Noticef logs at info once the server runs. Start-up notices, a banner
// of version, name and listeners, go to debug: StartNATS sums them up in one
// info line.
func (l *natsLogger) Noticef(format string, v ...any) {
	level := slog.LevelDebug
	if l.started.Load() {
		level = slog.LevelInfo
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

// plaintextWarning is nats-server's advice to configure bcrypt hashes
// instead of passwords. natter reads the password from a file the
// process can read anyway, so a hash in memory would protect nothing,
// and it would cost every login a bcrypt check; the advice is dropped.
const plaintextWarning = "Plaintext passwords detected"

func (l *natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, plaintextWarning) {
		return
	}
	l.log.Warn(msg)
}
func (l *natsLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *natsLogger) Tracef(format string, v ...any) {
	l.log.Log(context.Background(), levelTrace, fmt.Sprintf(format, v...))
}

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
