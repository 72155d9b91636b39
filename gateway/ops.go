// Handling of client frames, one at a time, in the connection's read loop.

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// handle processes one client frame; false closes the connection.
func (c *conn) handle(ctx context.Context, data []byte) bool {
	f, err := protocol.Decode(data)
	if err != nil {
		var de *protocol.DecodeError
		if errors.As(err, &de) {
			c.sendError(de.Code, de.Msg, f.Ref)
		}
		return true
	}
	if f.Op == protocol.OpPing {
		c.enqueue(pong)
		return true
	}
	if f.Op == protocol.OpConnect {
		c.connect(ctx, f)
		return true
	}
	if c.user == "" {
		c.sendError(protocol.CodeNotConnected, "send connect first", f.Ref)
		return true
	}
	switch f.Op {
	case protocol.OpJoin:
		c.join(ctx, f)
	case protocol.OpLeave:
		c.leave(f)
	case protocol.OpSend:
		c.send(f)
	case protocol.OpHistory:
		c.history(ctx, f)
	case protocol.OpTyping:
		c.typing(f)
	case protocol.OpRefresh:
		c.refresh(ctx, f)
	}
	return true
}

var pong = protocol.Encode(protocol.Pong{Op: protocol.OpPong})

// checkRoom sends invalid_room and returns false for a bad room name.
func (c *conn) checkRoom(f protocol.ClientFrame) bool {
	if err := natter.CheckRoom(f.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), ref(f))
		return false
	}
	return true
}

func (c *conn) join(ctx context.Context, f protocol.ClientFrame) {
	if !c.checkRoom(f) || !c.mayRead(f.Room, ref(f)) {
		return
	}
	var since natter.ID
	if f.Since != "" {
		id, err := natter.ParseID(f.Since)
		if err != nil {
			c.sendError(protocol.CodeInvalidID, "since: "+err.Error(), ref(f))
			return
		}
		since = id
	}
	if _, ok := c.rooms[f.Room]; ok {
		c.g.hub.rejoined(c, f.Room)
		return
	}
	if len(c.rooms) >= c.g.cfg.Limits.RoomsPerConn {
		c.sendError(protocol.CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", c.g.cfg.Limits.RoomsPerConn), ref(f))
		return
	}
	c.hold(f.Room)
	members, err := c.g.hub.join(c, f.Room)
	if err != nil {
		c.release(f.Room, nil, nil)
		c.g.log.Error("join", "room", f.Room, "err", err)
		c.sendError(protocol.CodeInternal, "cannot join now; retry", ref(f))
		return
	}
	if c.rooms == nil {
		c.rooms = make(map[string]struct{}) // most idle connections join nothing
	}
	c.rooms[f.Room] = struct{}{}
	joined := protocol.Joined{Op: protocol.OpJoined, Room: f.Room, Members: members}
	if f.Since == "" {
		c.release(f.Room, [][]byte{protocol.Encode(joined)}, nil)
		return
	}
	start := time.Now()
	msgs, more, err := c.g.resume(ctx, f.Room, since, nil)
	c.g.met.resumeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		c.g.log.Warn("resume", "room", f.Room, "err", err)
		delete(c.rooms, f.Room)
		c.g.hub.leave(c, f.Room)
		c.unhold(f.Room) // what came meanwhile is for a room it is not in
		c.sendError(protocol.CodeUnavailable, "history is unavailable; retry the join", ref(f))
		return
	}
	c.noteResumed(msgs, time.Now())
	joined.Resumed, joined.More = len(msgs), more
	first := make([][]byte, 0, len(msgs)+1)
	first = append(first, protocol.Encode(joined))
	skip := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		first = append(first, protocol.EncodeMsg(m))
		skip[m.ID] = struct{}{}
	}
	c.release(f.Room, first, skip)
}

func (c *conn) leave(f protocol.ClientFrame) {
	if !c.checkRoom(f) {
		return
	}
	if _, ok := c.rooms[f.Room]; !ok {
		c.sendError(protocol.CodeNotJoined, "not in this room", ref(f))
		return
	}
	delete(c.rooms, f.Room)
	c.g.hub.leave(c, f.Room)
	c.enqueue(protocol.Encode(protocol.Left{Op: protocol.OpLeft, Room: f.Room}))
}

func (c *conn) send(f protocol.ClientFrame) {
	r := f.Ref
	if r == "" && len(f.CID) <= protocol.MaxRefLen {
		r = f.CID
	}
	if err := natter.CheckRoom(f.Room); err != nil {
		c.sendError(protocol.CodeInvalidRoom, err.Error(), r)
		return
	}
	if !c.mayWrite(f.Room, r) {
		return
	}
	if _, ok := c.rooms[f.Room]; !ok {
		c.sendError(protocol.CodeNotJoined, "join the room before sending", r)
		return
	}
	if err := natter.CheckCID(f.CID); err != nil {
		c.sendError(protocol.CodeInvalidCID, err.Error(), r)
		return
	}
	if err := natter.CheckBody(f.Body, c.g.cfg.Limits.BodyBytes); err != nil {
		c.sendError(protocol.CodeInvalidBody, err.Error(), r)
		return
	}
	if !c.allowMsg(r) {
		return
	}
	cid := f.CID
	ack := func(id string, ts int64) {
		c.enqueue(protocol.Encode(protocol.Ack{Op: protocol.OpAck, CID: cid, ID: id, TS: ts}))
	}
	if err := c.g.accept(c.user, f.Room, cid, f.Body, f.Retry, ack); err != nil {
		code := protocol.CodeUnavailable
		if errors.Is(err, errDraining) {
			code = protocol.CodeShuttingDown
		}
		c.sendError(code, err.Error(), r)
	}
}

func (c *conn) history(ctx context.Context, f protocol.ClientFrame) {
	if !c.checkRoom(f) || !c.mayRead(f.Room, ref(f)) {
		return
	}
	limit := defaultHistoryLimit
	if f.Limit != nil {
		limit = *f.Limit
	}
	if limit < 1 || limit > c.g.cfg.Limits.HistoryPage {
		c.sendError(protocol.CodeInvalidLimit, fmt.Sprintf("limit must be 1-%d", c.g.cfg.Limits.HistoryPage), ref(f))
		return
	}
	if f.Before != "" {
		if _, err := natter.ParseID(f.Before); err != nil {
			c.sendError(protocol.CodeInvalidID, "before: "+err.Error(), ref(f))
			return
		}
	}
	msgs, more, err := c.g.cfg.History.Page(ctx, f.Room, f.Before, limit)
	if err != nil {
		c.g.log.Warn("history", "room", f.Room, "err", err)
		c.sendError(protocol.CodeUnavailable, "history is unavailable; retry", ref(f))
		return
	}
	c.enqueue(protocol.Encode(protocol.History{Op: protocol.OpHistory, Room: f.Room, Messages: protocol.MsgsOf(msgs), More: more}))
}

func (c *conn) typing(f protocol.ClientFrame) {
	if !c.checkRoom(f) || !c.mayWrite(f.Room, ref(f)) {
		return
	}
	if _, ok := c.rooms[f.Room]; !ok {
		c.sendError(protocol.CodeNotJoined, "join the room first", ref(f))
		return
	}
	if !c.allowMsg(ref(f)) {
		return
	}
	c.g.hub.typing(f.Room, c.user)
}

// ref is what an error about f refers to: f's ref, else its room.
func ref(f protocol.ClientFrame) string {
	if f.Ref != "" {
		return f.Ref
	}
	if natter.ValidRoom(f.Room) {
		return f.Room
	}
	return ""
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
