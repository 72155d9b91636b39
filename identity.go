// Who a client is and which rooms it may use: the identity a token (or
// open mode) yields, and the room patterns of its claims.

package natter

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrTokenExpired is returned for a token whose exp has passed (beyond the
// leeway); callers tell the client to come back with a fresh token.
var ErrTokenExpired = errors.New("token has expired")

// MaxRoomPatterns bounds the patterns one identity may carry, so that
// checking a room against them stays cheap.
const MaxRoomPatterns = 256

// Identity is an authenticated user and the rooms it may use.
//
// Read and Write hold room patterns: an exact room name, or a prefix
// followed by '*' ("team-*" matches every room starting with "team-"; "*"
// alone matches every room). Write implies read: a room one may publish to
// one may also join and page through.
type Identity struct {
	User  string
	Read  []string
	Write []string
	// Expires is when the identity stops being valid; zero means never
	// (open mode).
	Expires time.Time
}

// OpenIdentity is the identity of open mode: any valid user name, every
// room, no expiry.
func OpenIdentity(user string) Identity {
	return Identity{User: user, Write: []string{"*"}}
}

// CanRead reports whether id may join room, read its history and
// presence.
func (id Identity) CanRead(room string) bool {
	return matchAny(id.Read, room) || matchAny(id.Write, room)
}

// CanWrite reports whether id may send to room and type in it.
func (id Identity) CanWrite(room string) bool { return matchAny(id.Write, room) }

// Check returns an error unless id has a valid user name and valid, not
// too many, room patterns.
func (id Identity) Check() error {
	if err := CheckUser(id.User); err != nil {
		return err
	}
	if n := len(id.Read) + len(id.Write); n > MaxRoomPatterns {
		return fmt.Errorf("%d room patterns, at most %d", n, MaxRoomPatterns)
	}
	for _, set := range [][]string{id.Read, id.Write} {
		for _, p := range set {
			if !ValidRoomPattern(p) {
				return fmt.Errorf("invalid room pattern: use a room name, or a prefix of one followed by *")
			}
		}
	}
	return nil
}

// ValidRoomPattern reports whether p is a valid room name, or "*", or a
// non-empty prefix of a valid room name followed by one '*'.
func ValidRoomPattern(p string) bool {
	prefix, wild := strings.CutSuffix(p, "*")
	if !wild {
		return ValidRoom(p)
	}
	if prefix == "" {
		return true
	}
	// A prefix is valid when completing it with one letter gives a valid
	// room name; the length check keeps at least one character free.
	return len(prefix) < MaxRoomLen && ValidRoom(prefix+"x")
}

// MatchRoom reports whether room matches pattern p (see Identity).
func MatchRoom(p, room string) bool {
	if prefix, wild := strings.CutSuffix(p, "*"); wild {
		return strings.HasPrefix(room, prefix)
	}
	return p == room
}

func matchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if MatchRoom(p, room) {
			return true
		}
	}
	return false
}
