// A connection's session: the handshake deadline for connect, the
// identity its token proves, the session's end at the token's expiry,
// refresh, room permissions and message rates.

package gateway

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// Session states: a connection must connect before the handshake timeout.
const (
	sessPending int32 = iota
	sessConnected
	sessTimedOut
)

// connSec is a connection's security state. ident, slot and the timer
// fields belong to the read loop (and serve, after it); the timers'
// callbacks touch only the atomics and the connection's locked queue.
type connSec struct {
	state     atomic.Int32
	gen       atomic.Uint64 // bumped by each new expiry timer
	ident     natter.Identity
	slot      *userSlot
	rate      *rate.Limiter // per connection; nil: unlimited
	handshake *time.Timer
	expiry    *time.Timer
}

// startSec arms the handshake deadline: a connection that has not
// connected by then is told so and closed, so idle unauthenticated
// sockets cannot pile up.
func (c *conn) startSec() {
	lim := c.g.cfg.Limits
	if lim.RatePerConn > 0 {
		c.sec.rate = rate.NewLimiter(rate.Limit(lim.RatePerConn), lim.BurstPerConn)
	}
	c.sec.handshake = time.AfterFunc(lim.HandshakeTimeout, func() {
		if c.sec.state.CompareAndSwap(sessPending, sessTimedOut) {
			c.sendError(protocol.CodeHandshake, "no successful connect within the handshake timeout", "")
			c.stop(reasonHandshake)
		}
	})
}

// endSec stops the timers and releases the user's connection slot.
func (c *conn) endSec() {
	if c.sec.handshake != nil {
		c.sec.handshake.Stop()
	}
	c.sec.gen.Add(1)
	if c.sec.expiry != nil {
		c.sec.expiry.Stop()
	}
	if c.sec.slot != nil {
		c.g.adm.dropUser(c.user)
	}
}

func (c *conn) connect(ctx context.Context, f protocol.ClientFrame) {
	if c.user != "" {
		c.sendError(protocol.CodeAlreadyConn, "already connected", f.Ref)
		return
	}
	id, err := c.g.identify(ctx, f)
	if err != nil {
		c.sendError(authCode(err), err.Error(), f.Ref)
		return
	}
	if err := natter.CheckUser(id.User); err != nil {
		c.sendError(protocol.CodeInvalidUser, err.Error(), f.Ref)
		return
	}
	if !id.Expires.IsZero() && !time.Now().Before(id.Expires) {
		c.sendError(protocol.CodeTokenExpired, natter.ErrTokenExpired.Error(), f.Ref)
		return
	}
	slot := c.g.adm.addUser(id.User)
	if slot == nil {
		c.sendError(protocol.CodeTooManyConns, fmt.Sprintf("at most %d connections per user", c.g.cfg.Limits.ConnsPerUser), f.Ref)
		return
	}
	if !c.sec.state.CompareAndSwap(sessPending, sessConnected) {
		c.g.adm.dropUser(id.User) // the handshake deadline won
		return
	}
	c.sec.handshake.Stop()
	c.sec.handshake = nil // an idle connection keeps no timer it no longer needs
	c.sec.ident, c.sec.slot = id, slot
	c.user = id.User
	c.session = newSessionID()
	c.scheduleExpiry()
	c.enqueue(protocol.Encode(protocol.Connected{Op: protocol.OpConnected, User: id.User, Session: c.session,
		Version: protocol.Version, Exp: unixOrZero(id.Expires)}))
}

// refresh replaces the session's identity with a fresh token's for the
// same user. Rooms the new token no longer allows are left. A refused
// token leaves the session as it was.
func (c *conn) refresh(ctx context.Context, f protocol.ClientFrame) {
	if f.Token == "" {
		c.sendError(protocol.CodeUnauthorized, "refresh needs a token", f.Ref)
		return
	}
	id, err := c.g.verifyToken(ctx, f.Token)
	if err != nil {
		c.sendError(authCode(err), err.Error(), f.Ref)
		return
	}
	if id.User != c.user {
		c.sendError(protocol.CodeUnauthorized, "the token is for another user", f.Ref)
		return
	}
	c.sec.ident = id
	c.scheduleExpiry()
	for room := range c.rooms {
		if !id.CanRead(room) {
			delete(c.rooms, room)
			c.g.hub.leave(c, room)
			c.enqueue(protocol.Encode(protocol.Left{Op: protocol.OpLeft, Room: room}))
		}
	}
	c.enqueue(protocol.Encode(protocol.Refreshed{Op: protocol.OpRefreshed, Exp: unixOrZero(id.Expires)}))
}

// scheduleExpiry ends the session when its identity expires: the client
// is told token_expired and the connection closes (1008).
func (c *conn) scheduleExpiry() {
	gen := c.sec.gen.Add(1)
	if c.sec.expiry != nil {
		c.sec.expiry.Stop()
		c.sec.expiry = nil
	}
	exp := c.sec.ident.Expires
	if exp.IsZero() {
		return
	}
	c.sec.expiry = time.AfterFunc(time.Until(exp), func() {
		if c.sec.gen.Load() != gen {
			return // refreshed or closed meanwhile
		}
		c.sendError(protocol.CodeTokenExpired, "the token has expired; connect again with a fresh one", "")
		c.stop(reasonTokenExpired)
	})
}

// mayRead sends forbidden and returns false unless the session may read
// room.
func (c *conn) mayRead(room, ref string) bool {
	if c.sec.ident.CanRead(room) {
		return true
	}
	c.sendError(protocol.CodeForbidden, "the token does not allow reading this room", ref)
	return false
}

// mayWrite sends forbidden and returns false unless the session may write
// to room.
func (c *conn) mayWrite(room, ref string) bool {
	if c.sec.ident.CanWrite(room) {
		return true
	}
	c.sendError(protocol.CodeForbidden, "the token does not allow writing to this room", ref)
	return false
}

// allowMsg takes a token from the connection's and the user's buckets; it
// sends rate_limited and returns false when either is empty.
func (c *conn) allowMsg(ref string) bool {
	var user *rate.Limiter
	if c.sec.slot != nil {
		user = c.sec.slot.rate
	}
	if allow(c.sec.rate, user) {
		return true
	}
	c.sendError(protocol.CodeRateLimited, "slow down: over the message rate of this connection or user", ref)
	return false
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
