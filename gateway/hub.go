// The hub: which local connections are in which room, one NATS
// subscription per room per gateway, and local fan-out. A room message
// arrives once from NATS, already encoded as the wire frame, and the same
// bytes are queued to every member.

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/expiring"
	"github.com/natter-chat/natter/protocol"
)

// eventKind says what an event is.
type eventKind string

const (
	eventJoin   eventKind = "join"   // User joined at GW
	eventLeave  eventKind = "leave"  // User left at GW
	eventTyping eventKind = "typing" // User is typing
	eventState  eventKind = "state"  // Users are all of GW's members of the room
	eventSync   eventKind = "sync"   // GW asks the others for their state
)

// event is a presence, typing or control event on a room's event subject.
// Gateways of a region keep each other's members of a room in sync with
// them: "join"/"leave" as they happen, "state" (all local members of the
// room) every presence interval and in answer to "sync", which a gateway
// sends when it starts following a room. A gateway not heard from for
// three intervals is taken to be gone and its members leave.
type event struct {
	T     eventKind `json:"t"`
	User  string    `json:"user,omitempty"`
	Users []string  `json:"users,omitempty"`
	GW    string    `json:"gw"`
	// Region is the region of the gateway that sent the event; bridges
	// federate only their own region's events.
	Region string `json:"region"`
}

type remoteGW struct {
	users map[string]struct{}
	seen  time.Time
}

type room struct {
	name string
	// ready is closed once the room is followed on NATS (sub set) or
	// failed to be (err set); it is in the hub's map from before.
	ready chan struct{}
	sub   *nats.Subscription
	err   error

	mu     sync.RWMutex
	closed bool // emptied and out of the hub's map: a join follows the room anew
	conns  map[*conn]struct{}
	users  map[string]int       // local connections per user
	remote map[string]*remoteGW // other gateways' members

	// recent remembers the ids delivered in the last dedupWindow: a
	// message may arrive twice (through Redis and through repair from
	// Kafka, or published again after a client's retry), and is delivered
	// once. Memory follows the message rate, not the number of rooms.
	dmu    sync.Mutex
	recent expiring.Set[string, struct{}]
	keep   *atomic.Int64 // the hub's retainFrom

	pres    presence    // under mu (presence.go)
	waiting atomic.Bool // presence changes wait to be told
}

// dedupWindow is how long a room remembers a delivered id.
const dedupWindow = 30 * time.Second

// seen records id and reports whether it was delivered before.
func (r *room) seen(id string, now time.Time) bool {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	cutoff := now.Add(-dedupWindow)
	// While a NATS link gap is open, ids delivered since it began are
	// kept: the resync after it must not deliver them again.
	if keep := r.keep.Load(); keep != 0 && keep < cutoff.UnixNano() {
		cutoff = time.Unix(0, keep)
	}
	r.recent.ExpireBefore(cutoff)
	return !r.recent.Add(id, struct{}{}, now)
}

type hub struct {
	nats     *natsConns
	nc       *nats.Conn // nats.ctl
	gwID     string
	region   string
	log      *slog.Logger
	met      *metrics
	interval time.Duration
	// pendingOf returns room's messages accepted here, sent live and not
	// yet durable, for flush requests (flush.go).
	pendingOf func(room string) []natter.Message

	peersMu sync.Mutex
	peers   map[string]time.Time // the region's other gateways, last heard
	// heard is closed when another gateway of the region is first heard.
	heard     chan struct{}
	heardOnce sync.Once

	// mu guards rooms. It is never held while waiting for a room's lock
	// or for NATS: a room that empties leaves the map under its own lock
	// (room.mu, then mu), and a new room is followed on NATS after it
	// is in the map, outside mu.
	mu    sync.Mutex
	rooms map[string]*room

	// retainFrom (Unix nanoseconds, 0 = off) keeps every id a room
	// delivered at or after it past dedupWindow: set while a NATS link
	// gap is open (resync.go).
	retainFrom atomic.Int64
	// reach (0: links not watched) is how far back from a link's loss a
	// gap's resync reads: connections keep the ids their resumes brought
	// that recent, so a resync does not bring them again
	// (conn.noteResumed).
	reach time.Duration
}

func newHub(conns *natsConns, gwID, region string, interval time.Duration, pendingOf func(string) []natter.Message, log *slog.Logger, met *metrics) *hub {
	return &hub{nats: conns, nc: conns.ctl, gwID: gwID, region: region, interval: interval, pendingOf: pendingOf, log: log, met: met,
		rooms: make(map[string]*room), peers: make(map[string]time.Time), heard: make(chan struct{})}
}

// run announces this gateway's members of every room each interval and
// retires gateways that went silent, until ctx ends.
func (h *hub) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.beat(now, false)
			h.mu.Lock()
			rooms := make([]*room, 0, len(h.rooms))
			for _, r := range h.rooms {
				rooms = append(rooms, r)
			}
			h.mu.Unlock()
			for _, r := range rooms {
				h.publishEvent(r.name, event{T: eventState, Users: r.localUsers(), GW: h.gwID})
				r.expire(h, now.Add(-3*h.interval))
			}
		}
	}
}

// join adds c to room and returns the members.
func (h *hub) join(c *conn, name string) ([]string, error) {
	r, err := h.follow(name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	for r.closed { // emptied since: follow the room anew
		r.mu.Unlock()
		if r, err = h.follow(name); err != nil {
			return nil, err
		}
		r.mu.Lock()
	}
	first := r.users[c.user] == 0
	if first {
		r.changingLocked(c.user)
	}
	r.users[c.user]++
	r.changedLocked(h) // told now or later; c is not told its own arrival
	members := r.joinedLocked(c)
	r.conns[c] = struct{}{}
	r.mu.Unlock()
	if first {
		h.publishEvent(name, event{T: eventJoin, User: c.user, GW: h.gwID})
	}
	return members, nil
}

// follow returns the room named name, in the hub's map. A new room is
// subscribed to on NATS, and announced, outside the hub's lock: a slow
// NATS write holds up the joins of this room only.
func (h *hub) follow(name string) (*room, error) {
	h.mu.Lock()
	r := h.rooms[name]
	if r != nil {
		h.mu.Unlock()
		<-r.ready
		return r, r.err
	}
	r = &room{name: name, ready: make(chan struct{}), conns: make(map[*conn]struct{}), users: make(map[string]int), remote: make(map[string]*remoteGW), keep: &h.retainFrom}
	h.rooms[name] = r
	h.met.rooms.Set(float64(len(h.rooms)))
	h.mu.Unlock()
	defer close(r.ready)
	sub, err := h.nats.room(name).Subscribe(natter.RoomWildcard(name), r.onNATS(h))
	if err != nil {
		r.err = fmt.Errorf("follow room %s: %w", name, err)
		r.mu.Lock()
		r.closed = true
		h.forget(r)
		r.mu.Unlock()
		return nil, r.err
	}
	// Fan-out is fast; the limit only guards memory if it stalls.
	_ = sub.SetPendingLimits(1<<16, 64<<20)
	r.sub = sub
	// Learn who is on the other gateways.
	h.publishEvent(name, event{T: eventSync, GW: h.gwID})
	return r, nil
}

// forget takes r out of the hub's map. r.mu held.
func (h *hub) forget(r *room) {
	h.mu.Lock()
	if h.rooms[r.name] == r {
		delete(h.rooms, r.name)
		h.met.rooms.Set(float64(len(h.rooms)))
	}
	h.mu.Unlock()
}

// leave removes c from room.
func (h *hub) leave(c *conn, name string) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	if _, ok := r.conns[c]; !ok {
		r.mu.Unlock()
		return
	}
	delete(r.conns, c)
	delete(r.pres.joiners, c)
	last := r.users[c.user] == 1
	if last {
		r.changingLocked(c.user)
		delete(r.users, c.user)
	} else {
		r.users[c.user]--
	}
	r.changedLocked(h)
	empty := len(r.conns) == 0
	if empty && r.pres.timer != nil {
		r.pres.timer.Stop() // nobody here to tell
		r.pres.timer = nil
	}
	if empty {
		r.closed = true
		h.forget(r)
	}
	r.mu.Unlock()
	if empty {
		_ = r.sub.Unsubscribe()
	}
	if last {
		h.publishEvent(name, event{T: eventLeave, User: c.user, GW: h.gwID})
	}
}

// members returns room's members known to this gateway.
func (h *hub) members(name string) []string {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return []string{}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.membersLocked()
}

// rejoined answers a join of c to room, which it is in already, with the
// members as the room's local members were last told. The answer is
// queued under the room's lock, so no presence frame goes out between
// reading the members and queuing them.
func (h *hub) rejoined(c *conn, name string) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		c.enqueue(protocol.Encode(protocol.Joined{Op: protocol.OpJoined, Room: name, Members: []string{c.user}}))
		return
	}
	r.mu.RLock()
	c.enqueue(protocol.Encode(protocol.Joined{Op: protocol.OpJoined, Room: name, Members: r.toldMembersLocked(c.user)}))
	r.mu.RUnlock()
}

// typing tells the room's local members at once and the other gateways
// through NATS (a gateway ignores its own events).
func (h *hub) typing(name, user string) {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r != nil {
		r.flushPresence(h, user)
		r.fanout(h, protocol.Encode(protocol.Typing{Op: protocol.OpTyping, Room: name, User: user}), "", user)
	}
	h.publishEvent(name, event{T: eventTyping, User: user, GW: h.gwID})
}

func (h *hub) publishEvent(name string, e event) {
	e.Region = h.region
	data, _ := json.Marshal(e)
	if err := h.nats.room(name).Publish(natter.EventSubject(name), data); err != nil {
		h.log.Warn("publish event", "room", name, "err", err)
	}
}

func (r *room) membersLocked() []string {
	set := make(map[string]struct{}, len(r.users))
	for u := range r.users {
		set[u] = struct{}{}
	}
	for _, g := range r.remote {
		for u := range g.users {
			set[u] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// onNATS returns the room's NATS handler. NATS calls it from one goroutine
// per subscription, so a room's frames reach each member in NATS order.
func (r *room) onNATS(h *hub) nats.MsgHandler {
	return func(m *nats.Msg) {
		switch {
		case strings.HasSuffix(m.Subject, ".msg"):
			var head struct {
				ID   string `json:"id"`
				TS   int64  `json:"ts"`
				User string `json:"user"`
			}
			if json.Unmarshal(m.Data, &head) != nil {
				return
			}
			now := time.Now()
			if r.seen(head.ID, now) {
				return
			}
			// From the accepting gateway's clock to this one's: clock skew
			// between hosts shows here too.
			h.met.fanoutSeconds.Observe(max(0, float64(now.UnixMilli()-head.TS)) / 1000)
			r.flushPresence(h, head.User) // nobody reads a member they were not told of
			r.fanout(h, m.Data, head.ID, "")
		case strings.HasSuffix(m.Subject, ".evt"):
			r.onEvent(h, m.Data)
		}
	}
}

func (r *room) onEvent(h *hub, data []byte) {
	var e event
	if json.Unmarshal(data, &e) != nil || e.GW == h.gwID || !natter.ValidRoom(e.GW) {
		return // our own events were applied locally already
	}
	switch e.T {
	case eventJoin, eventLeave:
		if natter.CheckUser(e.User) != nil {
			return
		}
		r.mu.Lock()
		r.changeRemoteLocked(h, e.GW, r.remoteLocked(e.GW), e.User, e.T == eventJoin)
		r.mu.Unlock()
	case eventState:
		users := make(map[string]struct{}, len(e.Users))
		for _, u := range e.Users {
			if natter.CheckUser(u) == nil {
				users[u] = struct{}{}
			}
		}
		r.mu.Lock()
		r.setRemoteLocked(h, e.GW, r.remoteLocked(e.GW), users)
		r.mu.Unlock()
	case eventSync:
		h.publishEvent(r.name, event{T: eventState, Users: r.localUsers(), GW: h.gwID})
	case eventTyping:
		if natter.CheckUser(e.User) != nil {
			return
		}
		r.flushPresence(h, e.User)
		r.mu.RLock()
		r.fanoutLocked(h, protocol.Encode(protocol.Typing{Op: protocol.OpTyping, Room: r.name, User: e.User}), "", e.User)
		r.mu.RUnlock()
	}
}

// remoteLocked returns gateway gw's entry, creating it. r.mu held.
func (r *room) remoteLocked(gw string) *remoteGW {
	g := r.remote[gw]
	if g == nil {
		g = &remoteGW{users: map[string]struct{}{}}
		r.remote[gw] = g
	}
	g.seen = time.Now()
	return g
}

// setRemoteLocked replaces gateway gw's members with users and tells local
// members who appeared or disappeared from the room as a whole. r.mu held.
func (r *room) setRemoteLocked(h *hub, gw string, g *remoteGW, users map[string]struct{}) {
	for u := range users {
		if _, had := g.users[u]; !had {
			r.changingLocked(u)
		}
	}
	for u := range g.users {
		if _, has := users[u]; !has {
			r.changingLocked(u)
		}
	}
	g.users = users
	if len(users) == 0 {
		delete(r.remote, gw)
	}
	r.changedLocked(h)
}

// changeRemoteLocked adds user to gateway gw's members (or removes it)
// in place, telling local members if the room as a whole gained or lost
// them: a room filling from another gateway costs one step per join, not
// a copy of its members. r.mu held.
func (r *room) changeRemoteLocked(h *hub, gw string, g *remoteGW, user string, joined bool) {
	if _, had := g.users[user]; had != joined {
		r.changingLocked(user)
		if joined {
			g.users[user] = struct{}{}
		} else {
			delete(g.users, user)
		}
	}
	if len(g.users) == 0 {
		delete(r.remote, gw)
	}
	r.changedLocked(h)
}

// remotePresentLocked reports whether user is on a gateway other than
// this one and except. r.mu held.
func (r *room) remotePresentLocked(user, except string) bool {
	for gw, g := range r.remote {
		if gw == except {
			continue
		}
		if _, ok := g.users[user]; ok {
			return true
		}
	}
	return false
}

// expire retires gateways not heard from since cutoff.
func (r *room) expire(h *hub, cutoff time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for gw, g := range r.remote {
		if g.seen.Before(cutoff) {
			h.log.Info("gateway silent; its members leave", "room", r.name, "peer", gw)
			r.setRemoteLocked(h, gw, g, map[string]struct{}{})
			delete(r.remote, gw)
		}
	}
}

func (r *room) localUsers() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.users))
	for u := range r.users {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// retain keeps the ids rooms deliver from t on (with a margin for the
// difference between a message's id time and its arrival) until called
// with the zero time.
func (h *hub) retain(t time.Time) {
	if t.IsZero() {
		h.retainFrom.Store(0)
		return
	}
	h.retainFrom.Store(t.Add(-gapMargin).UnixNano())
}

// resumeFloor returns the oldest id time (Unix nanoseconds) a resync may
// still deliver, seen from now: a gap noticed from now on reaches back
// reach, and an open one to its start. ok is false when links are not
// watched, and no resync ever runs.
func (h *hub) resumeFloor(now time.Time) (floor int64, ok bool) {
	if h.reach == 0 {
		return 0, false
	}
	floor = now.Add(-h.reach).UnixNano()
	if keep := h.retainFrom.Load(); keep != 0 && keep < floor {
		floor = keep
	}
	return floor, true
}

// names returns the rooms with local members.
func (h *hub) names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Collect(maps.Keys(h.rooms))
}

// redeliver fans out the messages of room it has not delivered yet, in
// order, and returns how many it delivered.
func (h *hub) redeliver(name string, msgs []natter.Message) int {
	h.mu.Lock()
	r := h.rooms[name]
	h.mu.Unlock()
	if r == nil {
		return 0 // everyone left meanwhile
	}
	r.flushPresence(h, "")
	n := 0
	now := time.Now()
	for _, m := range msgs {
		if r.seen(m.ID, now) {
			continue
		}
		frame := protocol.EncodeMsg(m)
		id, _ := natter.ParseID(m.ID) // from the log: ids parse
		r.mu.RLock()
		for c := range r.conns {
			// A member that joined with since shortly before the loss,
			// or since, may have had it from its resume.
			if !c.wasResumed(id) {
				c.deliver(r.name, frame, m.ID)
			}
		}
		r.mu.RUnlock()
		n++
	}
	h.met.resyncDelivered.Add(float64(n))
	return n
}

// fanout queues frame to every local member except those of user skip.
func (r *room) fanout(h *hub, frame []byte, id, skip string) {
	r.mu.RLock()
	r.fanoutLocked(h, frame, id, skip)
	r.mu.RUnlock()
}

// fanoutLocked is fanout with r.mu held (read or write).
func (r *room) fanoutLocked(h *hub, frame []byte, id, skip string) {
	n := 0
	for c := range r.conns {
		if skip != "" && c.user == skip {
			continue
		}
		c.deliver(r.name, frame, id)
		n++
	}
	h.met.deliveries.Add(float64(n))
}
