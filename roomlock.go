package natter

import (
	"hash/maphash"
	"sync"
)

// RoomLocks orders what happens in one room without holding up the
// others: a fixed set of mutexes, a room's chosen by its name's hash. Two
// rooms may share one; a room always gets the same. The zero value is
// not ready; use NewRoomLocks.
type RoomLocks struct {
	seed maphash.Seed
	mu   [roomLockShards]sync.Mutex
}

// roomLockShards is how many mutexes RoomLocks spreads rooms over: enough
// that a room waiting on a slow NATS write rarely shares one with another
// busy room.
const roomLockShards = 256

// NewRoomLocks returns a set of room locks.
func NewRoomLocks() *RoomLocks { return &RoomLocks{seed: maphash.MakeSeed()} }

// Of returns room's mutex.
func (l *RoomLocks) Of(room string) *sync.Mutex {
	return &l.mu[maphash.String(l.seed, room)%roomLockShards]
}
