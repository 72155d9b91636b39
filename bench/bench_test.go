package bench

import (
	"strings"
	"testing"
	"time"
)

func TestHistQuantilesWithinResolution(t *testing.T) {
	var h Hist
	for i := 1; i <= 100000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 99900 * time.Microsecond}, {1, 100 * time.Millisecond}} {
		got := h.Quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < -0.02 || d > 0.02 {
			t.Errorf("q%.3f = %v, want %v ±2%%", tc.q, got, tc.want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestHistBucketsAreContiguous(t *testing.T) {
	for i := 1; i < histBuckets-1; i++ {
		if lo := histLow(i); histIndex(lo) != i || histIndex(lo-1) != i-1 {
			t.Fatalf("bucket %d starts at %d: index(lo)=%d index(lo-1)=%d", i, lo, histIndex(lo), histIndex(lo-1))
		}
	}
}

func TestHistSurvivesJSON(t *testing.T) {
	var a, b Hist
	a.Record(3 * time.Millisecond)
	a.Record(7 * time.Second)
	b.addJSON(a.toJSON())
	if b.Count() != 2 || b.Max() != 7*time.Second || b.Quantile(0.5) != a.Quantile(0.5) {
		t.Fatalf("merged %d max %v", b.Count(), b.Max())
	}
}

func TestPlanRoomsAndPublishers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		rooms     int
		pubs      int
		maxMember int
	}{
		{"fanout", Config{Scenario: ScenarioFanout, Conns: 1000, Rate: 500}, 1, 10, 1000},
		{"rooms", Config{Scenario: ScenarioRooms, Conns: 1000, RoomSize: "10", Rate: 100}, 100, 1000, 10},
		{"rooms range", Config{Scenario: ScenarioRooms, Conns: 1000, RoomSize: "2-50", Publishers: 2, Rate: 100}, 0, 0, 50},
		{"idle", Config{Scenario: ScenarioIdle, Conns: 95, RoomSize: "10"}, 10, 0, 10},
		{"idle, no rooms", Config{Scenario: ScenarioIdle, Conns: 50, RoomSize: "0"}, 0, 0, 0},
		{"cross", Config{Scenario: ScenarioCross, URLs: []string{"ws://a/ws", "ws://b/ws", "ws://c/ws"}, Conns: 100, Rate: 10}, 1, 10, 100},
		{"soak", Config{Scenario: ScenarioSoak, Conns: 1000, Rate: 10}, 0, 1000, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if err := cfg.fill(); err != nil {
				t.Fatal(err)
			}
			p, err := newPlan(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rooms > 0 && len(p.rooms) != tc.rooms {
				t.Errorf("rooms = %d, want %d", len(p.rooms), tc.rooms)
			}
			if tc.pubs > 0 && len(p.pubs) != tc.pubs {
				t.Errorf("publishers = %d, want %d", len(p.pubs), tc.pubs)
			}
			if tc.maxMember == 0 {
				for _, c := range p.conns {
					if c.room != -1 || c.pub != -1 {
						t.Fatalf("connection in room %d, publisher %d; want none", c.room, c.pub)
					}
				}
				return
			}
			members := 0
			for _, r := range p.rooms {
				members += r.members
				if r.members > tc.maxMember {
					t.Errorf("room of %d members, max %d", r.members, tc.maxMember)
				}
				if cfg.Publishers > 0 && len(r.pubs) > cfg.Publishers {
					t.Errorf("room has %d publishers, want at most %d", len(r.pubs), cfg.Publishers)
				}
			}
			if members != cfg.Conns {
				t.Errorf("members %d, want %d", members, cfg.Conns)
			}
			for pub, c := range p.pubs {
				cp := p.conns[c]
				if cp.pub != pub || p.rooms[cp.room].pubs[p.slot[pub]] != pub {
					t.Fatalf("publisher %d inconsistent", pub)
				}
				if cfg.Scenario == ScenarioCross && cp.url != 0 {
					t.Errorf("cross publisher on gateway %d", cp.url)
				}
			}
			var sum int64
			for pub := range p.pubs {
				sum += p.sentBy(pub)
			}
			if sum != p.messages {
				t.Errorf("schedule gives %d messages, plan says %d", sum, p.messages)
			}
		})
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: "storm"},
		{Scenario: ScenarioCross},
		{URLs: []string{"http://x/ws"}},
		{RoomSize: "ten"},
		{RoomSize: "9-3"},
		{Conns: 40000},
		{Scenario: ScenarioFanout, RoomSize: "0"},
		{Scenario: ScenarioRooms, Churn: 1},
		{Scenario: ScenarioSoak},
		{Scenario: ScenarioSoak, Rate: 10, Duration: time.Minute, Warmup: time.Minute},
		{Scenario: ScenarioSoak, Rate: 10, MaxGrowth: -1},
	} {
		if err := cfg.fill(); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestSlicesCoverEveryConnectionOnce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		next := 0
		for i := 0; i < n; i++ {
			lo, hi := slice(50001, i, n)
			if lo != next {
				t.Fatalf("n=%d part %d starts at %d, want %d", n, i, lo, next)
			}
			next = hi
		}
		if next != 50001 {
			t.Fatalf("n=%d ends at %d", n, next)
		}
	}
}

func TestCutInt(t *testing.T) {
	n, rest, ok := cutInt([]byte("12:345:x"))
	if !ok || n != 12 || !strings.HasPrefix(string(rest), "345:") {
		t.Fatalf("%d %q %v", n, rest, ok)
	}
	if _, _, ok := cutInt([]byte("12x")); ok {
		t.Fatal("accepted 12x")
	}
}
