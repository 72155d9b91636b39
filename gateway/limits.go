// Abuse limits beyond a single frame: connections per client address and
// per user, message rates per connection and per user (token buckets),
// and the metrics that count what they refused. All counts are per
// gateway: a user on two gateways has each gateway's allowance.

package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/natter-chat/natter/protocol"
)

// admission counts connections per client address and per user, and
// holds each connected user's shared rate limiter.
type admission struct {
	lim Limits

	mu    sync.Mutex
	perIP map[string]int
	users map[string]*userSlot
}

type userSlot struct {
	conns int
	rate  *rate.Limiter // nil: no per-user rate
}

func newAdmission(lim Limits) *admission {
	return &admission{lim: lim, perIP: make(map[string]int), users: make(map[string]*userSlot)}
}

// addIP counts a connection from ip; false means ip is at its limit.
func (a *admission) addIP(ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lim.ConnsPerIP > 0 && a.perIP[ip] >= a.lim.ConnsPerIP {
		return false
	}
	a.perIP[ip]++
	return true
}

func (a *admission) dropIP(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
}

// addUser counts a connection of user and returns the user's slot; nil
// means user is at its limit.
func (a *admission) addUser(user string) *userSlot {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.users[user]
	if s == nil {
		s = &userSlot{}
		if a.lim.RatePerUser > 0 {
			s.rate = rate.NewLimiter(rate.Limit(a.lim.RatePerUser), a.lim.BurstPerUser)
		}
		a.users[user] = s
	}
	if a.lim.ConnsPerUser > 0 && s.conns >= a.lim.ConnsPerUser {
		return nil
	}
	s.conns++
	return s
}

func (a *admission) dropUser(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.users[user]
	if s == nil {
		return
	}
	if s.conns--; s.conns <= 0 {
		delete(a.users, user)
	}
}

// allow takes one token from each limiter, or none if either is empty.
func allow(lims ...*rate.Limiter) bool {
	now := time.Now()
	var taken []*rate.Reservation
	for _, l := range lims {
		if l == nil {
			continue
		}
		r := l.ReserveN(now, 1)
		if !r.OK() || r.DelayFrom(now) > 0 {
			r.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			return false
		}
		taken = append(taken, r)
	}
	return true
}

// closeReason says why a connection closed: the text of the close frame,
// when the server sends one, and the label of natter_disconnects_total.
// The reasons a client is told are protocol codes.
type closeReason string

const (
	reasonSlowConsumer = closeReason(protocol.CodeSlowConsumer)
	reasonTokenExpired = closeReason(protocol.CodeTokenExpired)
	reasonHandshake    = closeReason(protocol.CodeHandshake)
	reasonShuttingDown = closeReason(protocol.CodeShuttingDown)
	reasonTooLarge     = closeReason(protocol.CodeTooLarge)

	reasonClientClosed   closeReason = "client_closed"    // the client closed
	reasonIdle           closeReason = "idle_timeout"     // no frame nor pong for the idle timeout
	reasonReadError      closeReason = "read_error"       // the socket failed while reading
	reasonWriteError     closeReason = "write_error"      // the socket failed while writing
	reasonClosedByServer closeReason = "closed_by_server" // a frame's handler ended the connection
)

// code is the WebSocket close status for the reason.
func (r closeReason) code() int {
	switch r {
	case reasonSlowConsumer, reasonTokenExpired, reasonHandshake:
		return websocket.ClosePolicyViolation
	case reasonShuttingDown:
		return websocket.CloseGoingAway
	case reasonTooLarge:
		return websocket.CloseMessageTooBig
	default:
		return websocket.CloseNormalClosure
	}
}

// secMetrics count what the security controls refused. Error frames sent
// are counted by code in natter_client_errors_total already.
type secMetrics struct {
	refused      *prometheus.CounterVec
	authFailures *prometheus.CounterVec
}

func newSecMetrics() *secMetrics {
	return &secMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "natter_connections_refused_total",
			Help: "WebSocket upgrades refused before the upgrade, by reason."}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "natter_auth_failures_total",
			Help: "Tokens refused (connect, refresh, HTTP bearer), by reason."}, []string{"reason"}),
	}
}

func (m *secMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.refused, m.authFailures}
}

// fillAbuse applies the defaults of the abuse limits: zero takes the
// default, negative turns the limit off.
func (l *Limits) fillAbuse() {
	d := DefaultLimits
	orDef := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	orDefF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	orDef(&l.ConnsPerIP, d.ConnsPerIP)
	orDef(&l.ConnsPerUser, d.ConnsPerUser)
	orDefF(&l.RatePerConn, d.RatePerConn)
	orDefF(&l.RatePerUser, d.RatePerUser)
	if l.BurstPerConn <= 0 {
		l.BurstPerConn = d.BurstPerConn
	}
	if l.BurstPerUser <= 0 {
		l.BurstPerUser = d.BurstPerUser
	}
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = d.HandshakeTimeout
	}
	if l.HardFrameBytes < l.FrameBytes {
		l.HardFrameBytes = l.FrameBytes
	}
}

// admit applies the pre-upgrade controls to a /ws request: the Origin
// policy and the per-address connection limit. On refusal it has answered
// and ok is false; otherwise release must be called when the connection
// ends.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if !g.originAllowed(r) {
		g.sec.refused.WithLabelValues("origin").Inc()
		writeErr(w, http.StatusForbidden, protocol.CodeForbidden, "this Origin may not open a WebSocket here")
		return nil, false
	}
	ip := g.clientIP(r)
	if !g.adm.addIP(ip) {
		g.sec.refused.WithLabelValues("conns_per_ip").Inc()
		writeErr(w, http.StatusTooManyRequests, protocol.CodeTooManyConns,
			fmt.Sprintf("at most %d connections per client address", g.cfg.Limits.ConnsPerIP))
		return nil, false
	}
	return func() { g.adm.dropIP(ip) }, true
}
