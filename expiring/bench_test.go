package expiring

import (
	"strconv"
	"testing"
	"time"
)

// live is the steady-state size the benchmarks hold: every operation adds
// one entry and expires one.
const live = 400_000

func keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = "01JBENCH" + strconv.Itoa(i)
	}
	return k
}

// BenchmarkExpireAndAdd400k is a room's or federation's seen ids at
// 400,000 live entries: each op expires the oldest and adds a new one.
func BenchmarkExpireAndAdd400k(b *testing.B) {
	ks := keys(1_000_000)
	const window = 30 * time.Second
	step := window / live
	s := New[string, struct{}](0, nil)
	for i := range live {
		s.Add(ks[i], struct{}{}, t0.Add(time.Duration(i)*step))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := live + i
		now := t0.Add(time.Duration(n) * step)
		s.ExpireBefore(now.Add(-window))
		if !s.Add(ks[n%len(ks)], struct{}{}, now) {
			b.Fatal("fresh key refused")
		}
	}
	if s.Len() > live+1 {
		b.Fatalf("Len %d, want at most %d", s.Len(), live+1)
	}
}

// BenchmarkCapAndKeep400k is the gateway's cids at their cap of 400,000,
// one in a thousand still pending (held by keep): each add pushes the
// oldest out.
func BenchmarkCapAndKeep400k(b *testing.B) {
	ks := keys(1_000_000)
	type entry struct{ pending bool }
	s := New[string, *entry](live, func(_ string, e *entry) bool { return e.pending })
	vals := make([]entry, len(ks))
	for i := range vals {
		vals[i].pending = i%1000 == 0
	}
	for i := range live {
		s.Add(ks[i], &vals[i], t0.Add(time.Duration(i)*time.Millisecond))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := live + i
		s.Add(ks[n%len(ks)], &vals[n%len(vals)], t0.Add(time.Duration(n)*time.Millisecond))
	}
}
