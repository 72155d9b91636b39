// Package gateway is natter's edge: the WebSocket endpoint /ws speaking
// the protocol package's JSON protocol, the HTTP API, health endpoints and
// the web UI. It publishes accepted messages on the region's NATS for live
// fan-out at once, hands them to a bridge for the durable log, and acks a
// sender once the log has its message.
//
// Lock order: room.mu, then hub.mu; room.mu, then conn.mu. hub.mu is never
// held while taking a room's lock or writing to NATS. A room's send lock
// (Gateway.sendLocks) is taken before durable.mu; durable.mu and
// admission.mu are never held while taking another.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

const defaultHistoryLimit = 50

var errDraining = errors.New("the gateway is shutting down; reconnect to another gateway")

// History is the message store the gateway reads.
type History interface {
	// Page returns up to limit messages of room older than before ("" =
	// newest), oldest first, and whether older ones exist.
	Page(ctx context.Context, room, before string, limit int) ([]natter.Message, bool, error)
	// After returns up to limit messages of room after id, oldest first.
	After(ctx context.Context, room, after string, limit int) ([]natter.Message, error)
}

// DurableLog is the durable log, read on resume for what the store lacks
// yet.
type DurableLog interface {
	// Mark fixes the point from which the store may lack room's messages
	// and returns a reader of the log from there. Call it before reading
	// the store.
	Mark(ctx context.Context, room string, since natter.ID) (LogTail, error)
}

// LogTail reads room's messages after since from a Mark, up to the end of
// the log when called, at most limit; more reports a cut.
type LogTail func(ctx context.Context, limit int) (msgs []natter.Message, more bool, err error)

// Limits bound what one client may do. Zero values take the defaults in
// DefaultLimits; a negative ConnsPerIP, ConnsPerUser, RatePerConn or
// RatePerUser turns that limit off.
type Limits struct {
	FrameBytes      int           // largest client frame handled (16 KiB)
	HardFrameBytes  int           // larger frames close the connection (1 MiB)
	BodyBytes       int           // largest message body (4 KiB)
	RoomsPerConn    int           // rooms one connection may join (100)
	HistoryPage     int           // largest history page and resume batch (200)
	ResumeMax       int           // most messages replayed by one join with since (5000)
	QueueBytes      int           // bytes queued to a connection before it is cut (4 MiB)
	IdleTimeout     time.Duration // no frame nor pong for this long closes (75s)
	PingInterval    time.Duration // server pings (30s)
	WriteTimeout    time.Duration // a write blocked this long closes (10s)
	MaxPending      int           // messages awaiting the durable log before sends are refused (100000)
	MaxPendingBytes int           // their bytes (64 MiB)

	ConnsPerIP       int           // connections from one client address (1000)
	ConnsPerUser     int           // connections of one user (32)
	RatePerConn      float64       // messages (send, typing) per second per connection (20)
	BurstPerConn     int           // burst of RatePerConn (100)
	RatePerUser      float64       // messages per second per user, all its connections (50)
	BurstPerUser     int           // burst of RatePerUser (200)
	HandshakeTimeout time.Duration // HTTP headers, and WebSocket open to connect (10s)
}

// DefaultLimits are the limits used for zero fields.
var DefaultLimits = Limits{
	FrameBytes: 16 << 10, HardFrameBytes: 1 << 20, BodyBytes: natter.MaxBodyBytes, RoomsPerConn: 100,
	HistoryPage: 200, ResumeMax: 5000, QueueBytes: 4 << 20, IdleTimeout: 75 * time.Second,
	PingInterval: 30 * time.Second, WriteTimeout: 10 * time.Second, MaxPending: 100000, MaxPendingBytes: 64 << 20,
	ConnsPerIP: 1000, ConnsPerUser: 32, RatePerConn: 20, BurstPerConn: 100, RatePerUser: 50, BurstPerUser: 200,
	HandshakeTimeout: 10 * time.Second,
}

func (l *Limits) fill() {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.FrameBytes, d.FrameBytes)
	set(&l.HardFrameBytes, d.HardFrameBytes)
	set(&l.BodyBytes, d.BodyBytes)
	set(&l.RoomsPerConn, d.RoomsPerConn)
	set(&l.HistoryPage, d.HistoryPage)
	set(&l.ResumeMax, d.ResumeMax)
	set(&l.QueueBytes, d.QueueBytes)
	set(&l.MaxPending, d.MaxPending)
	set(&l.MaxPendingBytes, d.MaxPendingBytes)
	setD(&l.IdleTimeout, d.IdleTimeout)
	setD(&l.PingInterval, d.PingInterval)
	setD(&l.WriteTimeout, d.WriteTimeout)
	l.fillAbuse()
}

// Config configures a Gateway.
type Config struct {
	// ID names this gateway uniquely in its region ("" = random).
	ID string
	// Region is stamped on messages accepted here.
	Region string
	// NATS is the region's NATS connection; the gateway does not close it.
	NATS *nats.Conn
	// RoomConns are more connections to the same NATS server, which the
	// gateway does not close either. Each room's traffic goes over one of
	// them, chosen by the room name's hash, so a NATS write that blocks
	// holds up the rooms of one connection, not all. Empty: NATS carries
	// every room.
	RoomConns []*nats.Conn
	// History and DurableLog serve history and resume.
	History    History
	DurableLog DurableLog
	// Open lets a client pick any user name on connect (no token).
	Open bool
	// Limits; zero fields take DefaultLimits.
	Limits Limits
	// Security: tokens, the API key, origins, proxies, compression.
	Security Security
	// Checks are run by /readyz; each must answer within a second.
	Checks map[string]func(context.Context) error
	// Web serves everything outside /ws, /api and the health endpoints;
	// nil serves nothing there.
	Web http.Handler
	// Registry receives the gateway's metrics; nil creates one.
	Registry *prometheus.Registry
	// ShutdownTimeout bounds the drain on shutdown (10s).
	ShutdownTimeout time.Duration
	// PresenceInterval is how often the gateway tells the region who is
	// in its rooms (5s); a gateway silent for three intervals is taken to
	// be gone and its members leave.
	PresenceInterval time.Duration
	// Links lists the embedded NATS server's links to the region's other
	// servers. When set, the gateway watches them and, after one breaks,
	// resyncs its rooms from the durable log (resync.go). Nil: the NATS
	// server has no links (one process) or is not the gateway's to watch.
	Links func() ([]Link, error)
	// LinkTimeout is how long a link that went dead may stay open before
	// the NATS server closes it (its ping timeout): a resync reaches back
	// that far before the loss (10s).
	LinkTimeout time.Duration
	// Log receives the gateway's logs; nil means slog.Default().
	Log *slog.Logger
}

// Gateway is one gateway process's edge.
type Gateway struct {
	cfg     Config
	nats    *natsConns
	log     *slog.Logger
	met     *metrics
	hub     *hub
	durable *durable
	ids     *natter.IDGen
	up      websocket.Upgrader
	mux     *http.ServeMux
	adm     *admission
	sec     *secMetrics

	// sendLocks order id stamping with live publishing, per room: a
	// room's messages go out in id order, and a slow NATS write holds
	// up the sends of its own room (and the few that share its lock),
	// not every room's.
	sendLocks *natter.RoomLocks
	mu        sync.Mutex
	draining  bool
	conns     sync.WaitGroup

	// live holds the open connections, for shutdown to close them (a
	// set costs a connection less than a context hook of its own).
	liveMu    sync.Mutex
	live      map[*conn]struct{}
	closedAll bool

	flushers  atomic.Int64 // connections' flush loops running (conn.go)
	writePool sync.Pool    // write buffers, held only while writing
	framePool sync.Pool    // client frame buffers, held only while reading
}

// New checks cfg and builds a gateway; Serve or Run starts it.
func New(cfg Config) (*Gateway, error) {
	if slices.Contains(cfg.RoomConns, nil) {
		return nil, errors.New("gateway: a room connection is nil")
	}
	if cfg.NATS == nil || cfg.History == nil || cfg.DurableLog == nil {
		return nil, errors.New("gateway: NATS, History and DurableLog are required")
	}
	if cfg.ID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ID = "gw-" + hex.EncodeToString(b[:])
	}
	if !natter.ValidRoom(cfg.ID) {
		return nil, fmt.Errorf("gateway: id %q: use letters, digits, _ and -", cfg.ID)
	}
	if cfg.Region == "" {
		cfg.Region = "local"
	}
	cfg.Limits.fill()
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.LinkTimeout <= 0 {
		cfg.LinkTimeout = defaultLinkTimeout
	}
	// A resync must not reach back past what the rooms remember.
	if reach := gapReach(cfg.LinkTimeout) + gapMargin; reach >= dedupWindow {
		return nil, fmt.Errorf("gateway: LinkTimeout %v: a resync would reach back %v, past the %v the rooms remember", cfg.LinkTimeout, reach, dedupWindow)
	}
	if cfg.PresenceInterval <= 0 {
		cfg.PresenceInterval = 5 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("role", "gateway", "gateway", cfg.ID, "region", cfg.Region)
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	met, sec := newMetrics(), newSecMetrics()
	conns := newNATSConns(cfg.NATS, cfg.RoomConns)
	g := &Gateway{nats: conns,
		cfg: cfg, log: log, met: met, ids: natter.NewIDGen(nil), adm: newAdmission(cfg.Limits), sec: sec,
		sendLocks: natter.NewRoomLocks(),
		durable:   newDurable(conns, cfg.ID, cfg.Limits.MaxPending, cfg.Limits.MaxPendingBytes, log, met),
	}
	for _, c := range g.Collectors() {
		if err := cfg.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: metrics: %w", err)
		}
	}
	g.hub = newHub(conns, cfg.ID, cfg.Region, cfg.PresenceInterval, g.pendingLive, log, met)
	if cfg.Links != nil {
		g.hub.reach = gapReach(cfg.LinkTimeout)
	}
	g.framePool.New = func() any { b := make([]byte, 0, frameBufSize); return &b }
	g.up = websocket.Upgrader{
		// No read buffer of the upgrader's own: serveWS hands it one
		// (readBufSize) through the hijack, which the read loop keeps.
		ReadBufferSize: 0,
		// Write buffers are only held while a write is in progress, and
		// one holds a whole batch, so a batch is one system call.
		WriteBufferSize:  maxBatchBytes,
		WriteBufferPool:  &g.writePool,
		HandshakeTimeout: cfg.Limits.HandshakeTimeout,
		// serveWS checks the Origin before upgrading; this is the same
		// check, kept in case another path ever upgrades.
		CheckOrigin:       g.originAllowed,
		EnableCompression: cfg.Security.Compression,
	}
	g.mux = g.routes()
	return g, nil
}

// track adds c to the open connections, or closes it at once when the
// gateway is shutting down.
func (g *Gateway) track(c *conn) {
	g.liveMu.Lock()
	defer g.liveMu.Unlock()
	if g.closedAll {
		c.stop(reasonShuttingDown)
		return
	}
	if g.live == nil {
		g.live = make(map[*conn]struct{})
	}
	g.live[c] = struct{}{}
}

func (g *Gateway) untrack(c *conn) {
	g.liveMu.Lock()
	delete(g.live, c)
	g.liveMu.Unlock()
}

// closeAll closes every open connection, and any opened later, with
// shutting_down.
func (g *Gateway) closeAll() {
	g.liveMu.Lock()
	defer g.liveMu.Unlock()
	g.closedAll = true
	for c := range g.live {
		c.stop(reasonShuttingDown)
	}
}

// ID returns the gateway's id.
func (g *Gateway) ID() string { return g.cfg.ID }

// Collectors returns the gateway's metrics, which New registers with
// Config.Registry.
func (g *Gateway) Collectors() []prometheus.Collector {
	return append(append(g.met.all(), g.sec.all()...), newReadyCollector(g))
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.mux }

// Run serves on ln until ctx is cancelled, then drains: it stops
// accepting connections and sends, waits (up to ShutdownTimeout) for
// accepted messages to reach the durable log so their acks go out, closes
// every connection with "going away" and returns nil.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	connCtx, stopConns := context.WithCancel(context.Background())
	defer stopConns()
	g.mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) { g.serveWS(connCtx, w, r) })
	if err := g.hub.listen(); err != nil {
		return fmt.Errorf("gateway: nats: %w", err)
	}
	if g.cfg.Links != nil {
		// A gateway in a cluster learns the region's others from their
		// answers to its hello before it takes clients: a resume that
		// asked nobody would miss their messages not yet durable.
		g.hub.awaitPeers(ctx, peerWait)
	}
	// The durable hop, the hub's timers and the link watch outlive the
	// connections: they stop after the drain.
	durCtx, stopDurable := context.WithCancel(context.Background())
	var background errgroup.Group
	background.Go(func() error { return g.durable.run(durCtx) })
	background.Go(func() error { g.hub.run(durCtx); return nil })
	if g.cfg.Links != nil {
		w := newLinkWatch(g, g.cfg.Links, g.cfg.LinkTimeout)
		background.Go(func() error { w.run(durCtx); return nil })
	}
	srv := &http.Server{Handler: g.mux, ReadHeaderTimeout: g.cfg.Limits.HandshakeTimeout}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "open", g.cfg.Open, "tokens", g.cfg.Security.Auth != nil,
		"api_key", g.cfg.Security.APIKey != "", "compression", g.cfg.Security.Compression)
	var err error
	select {
	case <-ctx.Done():
	case err = <-srvDone:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	shutCtx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if n := g.durable.waitEmpty(shutCtx); n > 0 {
		g.log.Warn("shutdown with messages not yet durable; clients will resend them", "pending", n)
	}
	stopConns()
	g.closeAll()
	g.conns.Wait()
	stopDurable()
	if berr := background.Wait(); berr != nil {
		g.log.Warn("gateway: background work ended with an error", "err", berr)
	}
	g.log.Info("gateway stopped")
	return err
}

func (g *Gateway) serveWS(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	g.conns.Add(1)
	g.mu.Unlock()
	release, ok := g.admit(w, r)
	if !ok {
		g.conns.Done()
		return
	}
	cw := &captureReader{ResponseWriter: w}
	ws, err := g.up.Upgrade(cw, r, nil)
	if err != nil {
		release()
		g.conns.Done()
		return // the upgrader has answered
	}
	idle := newIdleWait(ws, cw.br)
	// The connection gets a goroutine of its own so that this handler
	// returns and net/http frees what it holds per request (buffers, a
	// deep stack): an idle connection then costs a few KiB.
	remote := r.RemoteAddr
	go func() {
		defer g.conns.Done()
		defer release()
		c := newConn(g, ws, remote)
		c.idle = idle
		c.serve(ctx)
	}()
}

// accept stamps a message, publishes it live and starts its durable hop;
// ack is called once it is durable. A repeated (user, room, cid) is not
// published again: ack gets the first send's id.
//
// A retry (a resend after a reconnect) is published live only once the
// bridge confirmed no earlier message has its cid, so a message whose
// first gateway died is not shown twice.
func (g *Gateway) accept(user, room, cid, body string, retry bool, ack ackFunc) error {
	g.mu.Lock()
	draining := g.draining
	g.mu.Unlock()
	if draining {
		return errDraining
	}
	// Stamping and publishing under the room's lock makes this gateway's
	// messages reach every member in id order; a retry's cid is looked up
	// under it too, so two copies of one retry make one message.
	mu := g.sendLocks.Of(room)
	mu.Lock()
	defer mu.Unlock()
	if cid != "" && g.durable.lookup(natter.CIDKey(user, room, cid), ack) {
		return nil
	}
	id := g.ids.Next()
	msg := natter.Message{ID: id.String(), Room: room, User: user, Body: body, TS: id.Time().UnixMilli(), Region: g.cfg.Region, CID: cid}
	p, err := g.durable.reserve(msg, ack, retry)
	if err != nil {
		return err
	}
	g.met.messagesIn.Inc()
	if !retry {
		// Live first, then the durable hop: a message in the log always
		// went out live (on the same NATS connection, in that order).
		if err := g.nats.room(room).Publish(natter.MsgSubject(room), protocol.EncodeMsg(msg)); err != nil {
			// Live delivery failed; the message still goes to the log and
			// reaches members through resume.
			g.log.Warn("live publish", "room", room, "id", msg.ID, "err", err)
		}
	}
	g.durable.publish(p)
	return nil
}

// pendingLive returns room's messages this gateway sent live and has not
// seen durable. Under the room's send lock: a message reserved is also
// published live before anyone can see it here, so a resume that returns
// it holds its live copy too, and drops it.
func (g *Gateway) pendingLive(room string) []natter.Message {
	mu := g.sendLocks.Of(room)
	mu.Lock()
	defer mu.Unlock()
	return g.durable.pendingMsgs(room)
}

// resume returns room's messages after since: from the store, then from
// the log what the store may lack, and the messages this gateway and the
// region's others sent live but have not seen durable yet (flush.go),
// merged by id. Gateways in skip are not asked (a resync's lost ones).
func (g *Gateway) resume(ctx context.Context, room string, since natter.ID, skip map[string]struct{}) ([]natter.Message, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	flushed, err := g.hub.flush(ctx, room, skip)
	if err != nil {
		return nil, false, fmt.Errorf("resume %s: flush: %w", room, err)
	}
	flushed = append(flushed, g.pendingLive(room)...)
	limit := g.cfg.Limits.ResumeMax
	tail, err := g.cfg.DurableLog.Mark(ctx, room, since)
	if err != nil {
		return nil, false, fmt.Errorf("resume %s: %w", room, err)
	}
	stored, err := g.cfg.History.After(ctx, room, since.String(), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("resume %s: %w", room, err)
	}
	logged, more, err := tail(ctx, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("resume %s: %w", room, err)
	}
	sinceID := since.String()
	seen := make(map[string]struct{}, len(stored)+len(logged)+len(flushed))
	all := make([]natter.Message, 0, len(stored)+len(logged)+len(flushed))
	for _, set := range [][]natter.Message{stored, logged, flushed} {
		for _, m := range set {
			if _, ok := seen[m.ID]; !ok && m.ID > sinceID {
				seen[m.ID] = struct{}{}
				all = append(all, m)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if len(all) > limit {
		all, more = all[:limit], true
	}
	return all, more, nil
}
