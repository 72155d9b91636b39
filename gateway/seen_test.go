package gateway

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// A room remembers the ids it delivered for dedupWindow, and while a link
// gap is open, every id since the gap began.
func TestRoomSeenWindowAndGap(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	r := &room{keep: new(atomic.Int64)}
	if r.seen("a", t0) || !r.seen("a", t0.Add(time.Second)) {
		t.Fatal("an id was not remembered")
	}
	if r.seen("a", t0.Add(dedupWindow+time.Second)) {
		t.Fatal("an id was remembered past the window")
	}
	// A gap opens: ids from it on are kept past the window.
	gap := t0.Add(2 * dedupWindow)
	r.keep.Store(gap.UnixNano())
	r.seen("b", gap)
	if !r.seen("b", gap.Add(3*dedupWindow)) {
		t.Fatal("an id delivered during a gap was forgotten")
	}
	r.keep.Store(0)
	if r.seen("b", gap.Add(5*dedupWindow)) {
		t.Fatal("an id outlived the window after the gap closed")
	}
}

// BenchmarkRoomSeen400k is a busy room's dedup at 400,000 ids in its
// window: every delivery expires the oldest and remembers the new one.
func BenchmarkRoomSeen400k(b *testing.B) {
	const live = 400_000
	keys := make([]string, 1_000_000)
	for i := range keys {
		keys[i] = "01JBENCH" + strconv.Itoa(i)
	}
	step := dedupWindow / live
	t0 := time.Unix(1_700_000_000, 0)
	r := &room{keep: new(atomic.Int64)}
	for i := range live {
		r.seen(keys[i], t0.Add(time.Duration(i)*step))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := live + i
		if r.seen(keys[n%len(keys)], t0.Add(time.Duration(n)*step)) {
			b.Fatal("fresh id reported seen")
		}
	}
}
