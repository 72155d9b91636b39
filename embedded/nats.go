// This file runs a NATS server inside the natter process: the message bus of
// the one-process default, and the building block of a multi-node region when
// it is given a cluster name and routes.

package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
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
}

// NATS is a running in-process NATS server.
type NATS struct {
	srv       *server.Server
	log       *slog.Logger
	closeOnce sync.Once
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
	n := &NATS{srv: srv, log: log}
	log.Info("nats server started", slog.String("client_url", n.ClientURL()), slog.String("cluster_url", n.ClusterURL()))
	return n, nil
}

// Connect opens a client connection that talks to the server through an
// in-memory pipe: no TCP, no port, and it works with DontListen. name is the
// connection name shown in monitoring; opts are applied after ours, so a
// caller can override any of them.
func (n *NATS) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.Name(name), nats.InProcessServer(n.srv)}, opts...)
	// The URL is never dialled with InProcessServer set, but nats.go wants
	// at least one server in its list.
	nc, err := nats.Connect(n.srv.ClientURL(), all...)
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
	clustered := cfg.ClusterName != ""
	if !clustered && (len(cfg.Routes) > 0 || cfg.ClusterPort != 0 || cfg.ClusterHost != "") {
		return nil, errors.New("nats: routes and a cluster listener need ClusterName")
	}
	if clustered && cfg.DontListen {
		return nil, errors.New("nats: clustering needs the client listener; DontListen must be false when ClusterName is set")
	}
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
	for _, r := range cfg.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-leaf") || u.Port() == "" {
			return nil, fmt.Errorf("nats: leaf remote %q is not a nats-leaf://host:port URL", r)
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{u}})
	}
	if cfg.LeafPort != 0 {
		opts.LeafNode.Host = orDefault(cfg.LeafHost, "127.0.0.1")
		opts.LeafNode.Port = randomIfZero(cfg.LeafPort)
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
	opts.Cluster.Name = cfg.ClusterName
	opts.Cluster.Host = orDefault(cfg.ClusterHost, "127.0.0.1")
	opts.Cluster.Port = randomIfZero(cfg.ClusterPort)
	opts.Cluster.PingInterval = linkPingInterval
	opts.Cluster.MaxPingsOut = linkMaxPingsOut
	if cfg.ClusterAdvertise != "" {
		_, port, err := net.SplitHostPort(cfg.ClusterAdvertise)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("nats: cluster advertise %q is not host:port", cfg.ClusterAdvertise)
		}
		opts.Cluster.Advertise = cfg.ClusterAdvertise
	}
	for _, r := range cfg.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats" || u.Port() == "" {
			return nil, fmt.Errorf("nats: route %q is not a nats://host:port URL", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
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

func (l *natsLogger) Warnf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
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
