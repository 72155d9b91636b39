package expiring

import (
	"strconv"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestAddKeepsTheFirstValue(t *testing.T) {
	s := New[string, int](0, nil)
	if !s.Add("a", 1, at(0)) {
		t.Fatal("first add refused")
	}
	if s.Add("a", 2, at(1)) {
		t.Fatal("second add of the same key accepted")
	}
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v; want 1, true", v, ok)
	}
	// The repeat did not refresh its time either.
	if n := s.ExpireBefore(at(1)); n != 1 || s.Has("a") {
		t.Fatalf("ExpireBefore forgot %d, Has(a) %v; want 1, false", n, s.Has("a"))
	}
}

func TestExpireBeforeForgetsOldestFirst(t *testing.T) {
	s := New[string, struct{}](0, nil)
	for i := range 100 {
		s.Add(strconv.Itoa(i), struct{}{}, at(i))
	}
	if n := s.ExpireBefore(at(40)); n != 40 {
		t.Fatalf("forgot %d, want 40", n)
	}
	for i := range 100 {
		if got, want := s.Has(strconv.Itoa(i)), i >= 40; got != want {
			t.Fatalf("Has(%d) = %v, want %v", i, got, want)
		}
	}
	if s.Len() != 60 {
		t.Fatalf("Len = %d, want 60", s.Len())
	}
	// A forgotten key can come back.
	if !s.Add("3", struct{}{}, at(100)) {
		t.Fatal("a forgotten key was refused")
	}
}

func TestCapForgetsTheOldest(t *testing.T) {
	s := New[int, int](3, nil)
	for i := range 5 {
		s.Add(i, i, at(i))
	}
	if s.Len() != 3 || s.Has(0) || s.Has(1) || !s.Has(2) || !s.Has(4) {
		t.Fatalf("after 5 adds with cap 3: len %d, has 0 %v 1 %v 2 %v 4 %v", s.Len(), s.Has(0), s.Has(1), s.Has(2), s.Has(4))
	}
}

func TestKeepHoldsEntriesPastTimeAndCap(t *testing.T) {
	pinned := map[int]bool{1: true}
	s := New[int, string](3, func(k int, _ string) bool { return pinned[k] })
	for i := range 3 {
		s.Add(i, "v", at(i))
	}
	s.Add(3, "v", at(3)) // over the cap: 0 goes, 1 is kept
	if s.Has(0) || !s.Has(1) {
		t.Fatalf("cap: has 0 %v, 1 %v; want false, true", s.Has(0), s.Has(1))
	}
	if n := s.ExpireBefore(at(100)); n != 2 || !s.Has(1) || s.Len() != 1 {
		t.Fatalf("expire: forgot %d, len %d, has 1 %v; want 2, 1, true", n, s.Len(), s.Has(1))
	}
	// Once released it goes at its next turn, counted from when it was kept.
	delete(pinned, 1)
	if n := s.ExpireBefore(at(99)); n != 0 {
		t.Fatalf("released entry forgot too early: %d", n)
	}
	if n := s.ExpireBefore(at(101)); n != 1 || s.Len() != 0 {
		t.Fatalf("released entry: forgot %d, len %d", n, s.Len())
	}
}

func TestKeepingEveryEntryGoesOverTheCapRatherThanSpin(t *testing.T) {
	s := New[int, int](2, func(int, int) bool { return true })
	for i := range 5 {
		s.Add(i, i, at(i))
	}
	if s.Len() != 5 {
		t.Fatalf("Len = %d, want 5 (all kept)", s.Len())
	}
	if n := s.ExpireBefore(at(100)); n != 0 || s.Len() != 5 {
		t.Fatalf("expire of kept entries forgot %d", n)
	}
}

func TestForgetSinceDropsTheNewest(t *testing.T) {
	s := New[int, int](0, nil)
	for i := range 10 {
		s.Add(i, i, at(i))
	}
	if n := s.ForgetSince(at(7)); n != 3 {
		t.Fatalf("forgot %d, want 3", n)
	}
	for i := range 10 {
		if got, want := s.Has(i), i < 7; got != want {
			t.Fatalf("Has(%d) = %v, want %v", i, got, want)
		}
	}
	if !s.Add(8, 8, at(11)) || s.ExpireBefore(at(7)) != 7 || s.Len() != 1 {
		t.Fatalf("after re-adding: len %d", s.Len())
	}
}

func TestRingWrapsAndGrows(t *testing.T) {
	s := New[int, int](0, nil)
	live := 0
	// Interleave adds and expiry so the head walks around the ring while
	// it grows past its first size several times.
	for i := range 5000 {
		s.Add(i, i, at(i))
		live++
		if i%3 == 0 {
			live -= s.ExpireBefore(at(i - i/2))
		}
		if s.Len() != live {
			t.Fatalf("step %d: Len %d, counted %d", i, s.Len(), live)
		}
	}
	// The last expiry ran at i = 4998, with its cutoff at 2499.
	for i := range 5000 {
		if got, want := s.Has(i), i >= 2499; got != want {
			t.Fatalf("Has(%d) = %v, want %v", i, got, want)
		}
	}
}

func TestOutOfOrderTimeOnlyDelaysItsEntry(t *testing.T) {
	s := New[int, int](0, nil)
	s.Add(1, 1, at(10))
	s.Add(2, 2, at(5)) // the clock stepped back
	s.Add(3, 3, at(11))
	if n := s.ExpireBefore(at(8)); n != 0 {
		t.Fatalf("forgot %d behind a younger head", n)
	}
	if n := s.ExpireBefore(at(12)); n != 3 {
		t.Fatalf("forgot %d, want 3", n)
	}
}
