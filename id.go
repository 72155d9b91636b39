// Message ids: time-ordered, unique, fixed width, sortable as strings.

package natter

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// IDLen is the length of a message id in characters.
const IDLen = 26

// crockford is the Crockford base32 alphabet; its byte order matches
// numeric order, so ids sort as strings in time order.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ID is a 128-bit message id: 48 bits of Unix milliseconds followed by 80
// bits that are random for the first id of a millisecond and incremented
// for the next ones, so ids from one generator strictly increase.
type ID [16]byte

// String encodes id as 26 Crockford base32 characters.
func (id ID) String() string {
	var out [IDLen]byte
	// 128 bits as 26 5-bit groups: the first character carries 3 bits.
	hi := binary.BigEndian.Uint64(id[:8])
	lo := binary.BigEndian.Uint64(id[8:])
	for i := IDLen - 1; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Time returns the millisecond timestamp in id.
func (id ID) Time() time.Time {
	ms := int64(binary.BigEndian.Uint64(id[:8]) >> 16)
	return time.UnixMilli(ms)
}

// ParseID parses the canonical form of an id strictly: exactly 26
// characters of the upper-case Crockford alphabet, first one at most '7'.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != IDLen {
		return id, fmt.Errorf("%w: want %d characters, got %d", ErrInvalidID, IDLen, len(s))
	}
	var hi, lo uint64
	for i := 0; i < IDLen; i++ {
		v := decodeChar(s[i])
		if v < 0 || (i == 0 && v > 7) {
			return id, fmt.Errorf("%w: bad character at %d", ErrInvalidID, i)
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id, nil
}

func decodeChar(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		for i := 10; i < len(crockford); i++ {
			if crockford[i] == c {
				return i
			}
		}
	}
	return -1
}

// MinIDAt returns the smallest id with timestamp t; every id made at or
// after t sorts at or after it.
func MinIDAt(t time.Time) ID {
	var id ID
	binary.BigEndian.PutUint64(id[:8], uint64(t.UnixMilli())<<16)
	return id
}

// IDGen makes strictly increasing ids. Its zero value is not usable; use
// NewIDGen. It is safe for concurrent use.
type IDGen struct {
	mu   sync.Mutex
	now  func() time.Time
	last ID
}

// NewIDGen returns a generator reading the clock with now, or time.Now if
// now is nil.
func NewIDGen(now func() time.Time) *IDGen {
	if now == nil {
		now = time.Now
	}
	return &IDGen{now: now}
}

// Next returns a new id, greater than every id this generator returned
// before, even when the clock stands still or steps back.
func (g *IDGen) Next() ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(g.now().UnixMilli())
	lastMS := binary.BigEndian.Uint64(g.last[:8]) >> 16
	var id ID
	if ms > lastMS {
		binary.BigEndian.PutUint64(id[:8], ms<<16)
		var r [10]byte
		if _, err := rand.Read(r[:]); err != nil {
			panic("natter: crypto/rand failed: " + err.Error())
		}
		copy(id[6:], r[:])
		// Keep the top bit of the random part clear so increments within
		// one millisecond cannot overflow into the timestamp in practice.
		id[6] &= 0x7f
	} else {
		id = g.last
		for i := 15; i >= 6; i-- {
			id[i]++
			if id[i] != 0 {
				break
			}
		}
	}
	g.last = id
	return id
}
