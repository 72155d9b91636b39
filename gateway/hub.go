// The hub: which local connections are in which room, one NATS
// subscription per room per gateway, and local fan-out. A room message
// arrives once from NATS, already encoded as the wire frame, and the same
// bytes are queued to every member.

package gateway

import (
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// event is a presence or typing event on a room's event subject.
type event struct {
	T    string `json:"t"` // "join", "leave", "typing"
	User string `json:"user"`
	GW   string `json:"gw"`
}

type room struct {
	name string
	sub  *nats.Subscription

	mu     sync.RWMutex
	conns  map[*conn]struct{}
	users  map[string]int                 // local connections per user
	remote map[string]map[string]struct{} // gateway → users present there
}

type hub struct {
	nc   *nats.Conn
	gwID string
	log  *slog.Logger
	met  *metrics

	mu    sync.Mutex // guards rooms; taken before room.mu
	rooms map[string]*room
}

func newHub(nc *nats.Conn, gwID string, log *slog.Logger, met *metrics) *hub {
	return &hub{nc: nc, gwID: gwID, log: log, met: met, rooms: make(map[string]*room)}
}

// join adds c to room and returns the members.
func (h *hub) join(c *conn, name string) ([]string, error) {
	h.mu.Lock()
	r := h.rooms[name]
	if r == nil {
		r = &room{name: name, conns: make(map[*conn]struct{}), users: make(map[string]int), remote: make(map[string]map[string]struct{})}
		sub, err := h.nc.Subscribe(natter.RoomWildcard(name), r.onNATS(h))
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		// Fan-out is fast; the limit only guards memory if it stalls.
		_ = sub.SetPendingLimits(1<<16, 64<<20)
		r.sub = sub
		h.rooms[name] = r
		h.met.rooms.Set(float64(len(h.rooms)))
	}
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.users[c.user]++
	first := r.users[c.user] == 1
	members := r.membersLocked()
	r.mu.Unlock()
	h.mu.Unlock()
	if first {
		h.publishEvent(name, event{T: "join", User: c.user, GW: h.gwID})
	}
	return members, nil
}

// leave removes c from room.
func (h *hub) leave(c *conn, name string) {
	h.mu.Lock()
	r := h.rooms[name]
	if r == nil {
		h.mu.Unlock()
		return
	}
	r.mu.Lock()
	if _, ok := r.conns[c]; !ok {
		r.mu.Unlock()
		h.mu.Unlock()
		return
	}
	delete(r.conns, c)
	r.users[c.user]--
	last := r.users[c.user] == 0
	if last {
		delete(r.users, c.user)
	}
	empty := len(r.conns) == 0
	r.mu.Unlock()
	if empty {
		_ = r.sub.Unsubscribe()
		delete(h.rooms, name)
		h.met.rooms.Set(float64(len(h.rooms)))
	}
	h.mu.Unlock()
	if last {
		h.publishEvent(name, event{T: "leave", User: c.user, GW: h.gwID})
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

func (h *hub) typing(name, user string) {
	h.publishEvent(name, event{T: "typing", User: user, GW: h.gwID})
}

func (h *hub) publishEvent(name string, e event) {
	data, _ := json.Marshal(e)
	if err := h.nc.Publish(natter.EventSubject(name), data); err != nil {
		h.log.Warn("publish event", "room", name, "err", err)
	}
}

func (r *room) membersLocked() []string {
	set := make(map[string]struct{}, len(r.users))
	for u := range r.users {
		set[u] = struct{}{}
	}
	for _, us := range r.remote {
		for u := range us {
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
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Data, &head) != nil {
				return
			}
			r.fanout(h, m.Data, head.ID, "")
		case strings.HasSuffix(m.Subject, ".evt"):
			r.onEvent(h, m.Data)
		}
	}
}

func (r *room) onEvent(h *hub, data []byte) {
	var e event
	if json.Unmarshal(data, &e) != nil || natter.CheckUser(e.User) != nil {
		return
	}
	var frame []byte
	switch e.T {
	case "join":
		if e.GW != h.gwID {
			r.mu.Lock()
			if r.remote[e.GW] == nil {
				r.remote[e.GW] = make(map[string]struct{})
			}
			r.remote[e.GW][e.User] = struct{}{}
			r.mu.Unlock()
		}
		frame = protocol.Encode(protocol.Presence{Op: protocol.OpPresence, Room: r.name, Joined: []string{e.User}})
	case "leave":
		if e.GW != h.gwID {
			r.mu.Lock()
			delete(r.remote[e.GW], e.User)
			r.mu.Unlock()
		}
		frame = protocol.Encode(protocol.Presence{Op: protocol.OpPresence, Room: r.name, Left: []string{e.User}})
	case "typing":
		r.fanout(h, protocol.Encode(protocol.Typing{Op: protocol.OpTyping, Room: r.name, User: e.User}), "", e.User)
		return
	default:
		return
	}
	r.fanout(h, frame, "", "")
}

// fanout queues frame to every local member except those of user skip.
func (r *room) fanout(h *hub, frame []byte, id, skip string) {
	r.mu.RLock()
	n := 0
	for c := range r.conns {
		if skip != "" && c.user == skip {
			continue
		}
		c.deliver(r.name, frame, id)
		n++
	}
	r.mu.RUnlock()
	h.met.deliveries.Add(float64(n))
}
