// Package expiring remembers keys for a while: a map whose entries leave
// in the order they came, after a time-to-live or when a cap is reached.
//
// Entries are kept in a ring in insertion order beside the map, so
// forgetting the oldest costs O(1) and, once the ring has grown to the
// set's working size, neither insert nor expiry allocates. natter uses it
// wherever it must remember recent ids: a room's delivered message ids, a
// gateway's and a bridge's client ids (cids), federation's seen ids.
package expiring

import "time"

// Set maps keys to values and forgets them oldest first. Times passed to
// it are expected not to go backwards; one that does only delays its own
// entry's expiry. A Set is not safe for concurrent use: its owner's lock
// guards it.
type Set[K comparable, V any] struct {
	max  int
	keep func(K, V) bool
	m    map[K]V
	ring []item[K] // length a power of two; the oldest entry at head
	head int
	n    int
}

type item[K comparable] struct {
	k  K
	at int64 // Unix nanoseconds
}

// New returns an empty set. max (0: none) caps how many entries it holds:
// adding past it forgets the oldest. keep, if not nil, holds entries that
// must outlive their time and the cap (a message still in flight): such an
// entry, when its turn to go comes, stays and is counted as added then.
func New[K comparable, V any](max int, keep func(K, V) bool) *Set[K, V] {
	return &Set[K, V]{max: max, keep: keep}
}

// Len returns how many entries the set holds.
func (s *Set[K, V]) Len() int { return len(s.m) }

// Get returns k's value.
func (s *Set[K, V]) Get(k K) (V, bool) {
	v, ok := s.m[k]
	return v, ok
}

// Has reports whether k is in the set.
func (s *Set[K, V]) Has(k K) bool {
	_, ok := s.m[k]
	return ok
}

// Add adds k with v at now unless k is already there, and reports whether
// it added it; a present k keeps its value and its time. At the cap the
// oldest entries are forgotten first.
func (s *Set[K, V]) Add(k K, v V, now time.Time) bool {
	if _, ok := s.m[k]; ok {
		return false
	}
	at := now.UnixNano()
	// Bounded by the entries present: when keep holds them all, the set
	// goes over its cap rather than spin.
	for i := s.n; s.max > 0 && len(s.m) >= s.max && i > 0; i-- {
		s.dropHead(at)
	}
	s.push(k, v, at)
	return true
}

// ExpireBefore forgets the entries added before cutoff, oldest first, and
// returns how many it forgot.
func (s *Set[K, V]) ExpireBefore(cutoff time.Time) int {
	c := cutoff.UnixNano()
	before := len(s.m)
	for i := s.n; i > 0 && s.ring[s.head].at < c; i-- {
		s.dropHead(c)
	}
	return before - len(s.m)
}

// ForgetSince forgets the entries added at or after t, newest first, and
// returns how many it forgot. keep does not hold them.
func (s *Set[K, V]) ForgetSince(t time.Time) int {
	c := t.UnixNano()
	before := len(s.m)
	for s.n > 0 {
		i := (s.head + s.n - 1) & (len(s.ring) - 1)
		if s.ring[i].at < c {
			break
		}
		delete(s.m, s.ring[i].k)
		s.ring[i] = item[K]{}
		s.n--
	}
	return before - len(s.m)
}

// dropHead forgets the oldest entry, unless keep holds it: then it moves
// to the tail as added at at.
func (s *Set[K, V]) dropHead(at int64) {
	it := s.ring[s.head]
	s.ring[s.head] = item[K]{} // let the key be collected
	s.head = (s.head + 1) & (len(s.ring) - 1)
	s.n--
	if s.keep != nil {
		if v, ok := s.m[it.k]; ok && s.keep(it.k, v) {
			s.push(it.k, v, at)
			return
		}
	}
	delete(s.m, it.k)
}

func (s *Set[K, V]) push(k K, v V, at int64) {
	if s.m == nil {
		s.m = make(map[K]V)
	}
	if s.n == len(s.ring) {
		ring := make([]item[K], max(16, 2*len(s.ring)))
		for i := range s.n {
			ring[i] = s.ring[(s.head+i)&(len(s.ring)-1)]
		}
		s.ring, s.head = ring, 0
	}
	s.ring[(s.head+s.n)&(len(s.ring)-1)] = item[K]{k: k, at: at}
	s.n++
	s.m[k] = v
}
