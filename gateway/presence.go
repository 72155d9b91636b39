// Presence batching. Each change of a room's membership as a whole (a
// user's first connection joins, the last one leaves, another gateway's
// members come or go) is told to the room's local members in a presence
// frame. Sent one by one, filling a room of N costs N² frames. A change
// goes out at once when the room has told nothing for presenceBatch, and
// otherwise waits for the rest of that interval and goes out with every
// other change made meanwhile, in one frame: a lone join is seen at once,
// a room filling up costs one frame per member per interval.
//
// Members are told the room as of the last frame plus what the next one
// changes, exactly once: a connection that joins while changes wait is
// given the members as already told (and itself), and the next frame, the
// changes, without its own arrival. A message or typing event from a user
// whose change waits fans out only after the changes that wait, so nobody
// reads a message from a member they have not been told of; the others
// leave the batch alone, so a busy room still batches.

package gateway

import (
	"slices"
	"sort"
	"time"

	"github.com/natter-chat/natter/protocol"
)

const (
	// presenceBatch is how long after a presence frame further changes
	// wait to go out together.
	presenceBatch = 200 * time.Millisecond
	// presenceBatchMax sends the waiting changes at once when this many
	// users have changed, bounding what the connections that joined
	// meanwhile cost (a frame of their own each). A state event from
	// another gateway may change more users at once, in one frame.
	presenceBatchMax = 64
)

// presence is a room's batching state, guarded by room.mu.
type presence struct {
	// was holds each user changed since the last frame, with whether the
	// members were last told they are in the room.
	was map[string]bool
	// joiners are the connections that joined since the last frame, told
	// the members as of then and themselves.
	joiners map[*conn]struct{}
	// members is the room as last told (every change applied at a frame,
	// or, in a room nobody was told in, when the frame would have gone),
	// sorted: joiners are told it and themselves, without a sort per join.
	members []string
	told    time.Time   // the last frame
	timer   *time.Timer // sends the waiting changes; nil if none wait
}

// presentLocked reports whether user is in the room, on this gateway or
// another. r.mu held.
func (r *room) presentLocked(user string) bool {
	return r.users[user] > 0 || r.remotePresentLocked(user, "")
}

// changingLocked is called before a change that may alter whether user is
// in the room; changedLocked after it. r.mu held (write).
func (r *room) changingLocked(user string) {
	if r.pres.was == nil {
		r.pres.was = make(map[string]bool)
	}
	if _, ok := r.pres.was[user]; !ok {
		r.pres.was[user] = r.presentLocked(user)
	}
}

// changedLocked sends the waiting changes now, or makes sure they are
// sent at the end of the batch interval. r.mu held (write).
func (r *room) changedLocked(h *hub) {
	if len(r.pres.was) == 0 {
		return
	}
	r.waiting.Store(true)
	now := time.Now()
	due := r.pres.told.Add(presenceBatch)
	switch {
	case !now.Before(due) || len(r.pres.was) >= presenceBatchMax:
		r.tellLocked(h, now)
	case r.pres.timer == nil:
		var t *time.Timer
		t = time.AfterFunc(due.Sub(now), func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.pres.timer != t {
				return // told meanwhile; a newer batch has its own timer
			}
			r.pres.timer = nil
			r.tellLocked(h, time.Now())
		})
		r.pres.timer = t
	}
}

// joinedLocked notes that c joined, for the next frame, and returns the
// members to tell it. r.mu held (write), c already counted in r.users.
func (r *room) joinedLocked(c *conn) []string {
	if len(r.pres.was) > 0 {
		if r.pres.joiners == nil {
			r.pres.joiners = make(map[*conn]struct{})
		}
		r.pres.joiners[c] = struct{}{}
	}
	return r.toldMembersLocked(c.user)
}

// toldMembersLocked returns the members as the room was last told, with
// user, sorted. r.mu held.
func (r *room) toldMembersLocked(user string) []string {
	i, found := slices.BinarySearch(r.pres.members, user)
	if found {
		return slices.Clone(r.pres.members)
	}
	out := make([]string, 0, len(r.pres.members)+1)
	out = append(out, r.pres.members[:i]...)
	out = append(out, user)
	return append(out, r.pres.members[i:]...)
}

// flushPresence sends the waiting changes before a message or typing
// event of sender fans out, if sender's own change is among them ("": any
// waiting change). r.mu not held.
func (r *room) flushPresence(h *hub, sender string) {
	if !r.waiting.Load() {
		return
	}
	if sender != "" {
		r.mu.RLock()
		_, waits := r.pres.was[sender]
		r.mu.RUnlock()
		if !waits {
			return
		}
	}
	r.mu.Lock()
	r.tellLocked(h, time.Now())
	r.mu.Unlock()
}

// tellLocked sends the waiting changes in one frame: to the connections
// that joined since the last frame without their own arrival, which they
// were told in their join's answer. r.mu held (write).
func (r *room) tellLocked(h *hub, now time.Time) {
	if r.pres.timer != nil {
		r.pres.timer.Stop()
		r.pres.timer = nil
	}
	was, joiners := r.pres.was, r.pres.joiners
	r.pres.was, r.pres.joiners = nil, nil
	r.waiting.Store(false)
	if len(was) == 0 {
		return
	}
	var joined, left []string
	for u, before := range was {
		switch now := r.presentLocked(u); {
		case now && !before:
			joined = append(joined, u)
		case !now && before:
			left = append(left, u)
		}
	}
	if len(joined)+len(left) == 0 {
		return // the changes undid each other
	}
	sort.Strings(joined)
	sort.Strings(left)
	for _, u := range joined {
		i, _ := slices.BinarySearch(r.pres.members, u)
		r.pres.members = slices.Insert(r.pres.members, i, u)
	}
	for _, u := range left {
		if i, found := slices.BinarySearch(r.pres.members, u); found {
			r.pres.members = slices.Delete(r.pres.members, i, i+1)
		}
	}
	frame := presenceFrame(r.name, joined, left)
	var own map[string][]byte // joiners' frames, by user
	n := 0
	for c := range r.conns {
		f := frame
		if _, ok := joiners[c]; ok {
			if i, found := slices.BinarySearch(joined, c.user); found {
				if f = own[c.user]; f == nil {
					if own == nil {
						own = make(map[string][]byte)
					}
					f = presenceFrame(r.name, slices.Delete(slices.Clone(joined), i, i+1), left)
					own[c.user] = f
				}
			}
		}
		if f != nil {
			c.deliver(r.name, f, "")
			n++
		}
	}
	if n > 0 {
		r.pres.told = now // a room nobody was told in batches nothing
	}
	h.met.deliveries.Add(float64(n))
}

// presenceFrame encodes a presence frame; nil if it would tell nothing.
func presenceFrame(room string, joined, left []string) []byte {
	if len(joined)+len(left) == 0 {
		return nil
	}
	return protocol.Encode(protocol.Presence{Op: protocol.OpPresence, Room: room, Joined: joined, Left: left})
}
