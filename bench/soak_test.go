package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// soakSeries is a server's samples, one a second for d, from f(t).
func soakSeries(t0 time.Time, d time.Duration, f func(sec float64) serverSample) []serverSample {
	var out []serverSample
	for s := time.Duration(0); s <= d; s += time.Second {
		x := f(s.Seconds())
		x.at = t0.Add(s)
		out = append(out, x)
	}
	return out
}

func TestSoakVerdictJudgesGrowthBeyondNoise(t *testing.T) {
	const mb = 1 << 20
	flat := func(sec float64) serverSample {
		// A GC-like sawtooth of ±3% around a flat level.
		saw := 1 + 0.03*math.Sin(sec)
		return serverSample{goroutines: 1000, heapLive: 40 * mb * saw, rss: 200 * mb * saw}
	}
	for _, tc := range []struct {
		name string
		f    func(sec float64) serverSample
		fail string // a substring of the expected failure; "" = pass
	}{
		{"flat with a sawtooth", flat, ""},
		{"goroutine leak", func(sec float64) serverSample {
			s := flat(sec)
			s.goroutines += 2 * sec // two a second
			return s
		}, "goroutines grew"},
		{"heap leak", func(sec float64) serverSample {
			s := flat(sec)
			s.heapLive += 100 << 10 * sec // 100 KiB a second
			return s
		}, "live heap grew"},
		{"RSS leak", func(sec float64) serverSample {
			s := flat(sec)
			s.rss += 400 << 10 * sec
			return s
		}, "RSS grew"},
		{"small process, growth under the floor", func(sec float64) serverSample {
			return serverSample{goroutines: 30 + float64(int(sec)%2), heapLive: 3*mb + 5<<10*sec, rss: 30 * mb}
		}, ""},
		{"errors rise", func(sec float64) serverSample {
			s := flat(sec)
			s.errors = math.Floor(sec / 50)
			return s
		}, "errors_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{Scenario: ScenarioSoak, Duration: 100 * time.Second, Warmup: 20 * time.Second, MaxGrowth: 0.05,
				MetricsURLs: []string{"http://gw/metrics"}}
			t0 := time.Now()
			s := newSoakSampler(cfg, t0)
			s.series[0] = soakSeries(t0, cfg.Duration, tc.f)
			s.series[1] = soakSeries(t0, cfg.Duration, func(sec float64) serverSample {
				// The load generator is reported, never judged.
				return serverSample{goroutines: 10 + sec, heapLive: mb, rss: mb * (1 + sec)}
			})
			rep := &Report{Sent: 10, Acks: 10, Delivered: 50, Expected: 50}
			v := s.verdict(rep, 1)
			got := strings.Join(v.Failures, "; ")
			if tc.fail == "" && got != "" {
				t.Fatalf("failed: %s", got)
			}
			if tc.fail != "" && !strings.Contains(got, tc.fail) {
				t.Fatalf("failures %q, want one about %q", got, tc.fail)
			}
			if len(v.Processes) != 2 || v.Processes[0].Samples != 101 || len(v.Processes[1].Series) != 101 {
				t.Fatalf("processes %+v", v.Processes)
			}
		})
	}
}

func TestSoakVerdictFailsOnLossErrorsAndUnackedSends(t *testing.T) {
	for _, tc := range []struct {
		rep  Report
		fail string
	}{
		{Report{Sent: 10, Acks: 10, Delivered: 50, Expected: 51, Lost: 1}, "lost"},
		{Report{Sent: 10, Acks: 10, Delivered: 51, Expected: 50, Duplicated: 1}, "duplicated"},
		{Report{Sent: 10, Acks: 9, Delivered: 50, Expected: 50}, "not acked"},
		{Report{Sent: 10, Acks: 10, Delivered: 50, Expected: 50, Errors: map[string]int64{"unavailable": 1}}, "error frames"},
		{Report{Sent: 10, Acks: 10, Delivered: 50, Expected: 50, Disconnects: 1}, "dropped"},
		{Report{Sent: 10, Acks: 10, Delivered: 50, Expected: 50, SendErrors: 2}, "sends failed"},
	} {
		cfg := &Config{Scenario: ScenarioSoak, Duration: 10 * time.Second, Warmup: 2 * time.Second, MaxGrowth: 0.05}
		t0 := time.Now()
		s := newSoakSampler(cfg, t0)
		s.series[0] = soakSeries(t0, cfg.Duration, func(float64) serverSample { return serverSample{goroutines: 1} })
		v := s.verdict(&tc.rep, 1)
		if got := strings.Join(v.Failures, "; "); !strings.Contains(got, tc.fail) {
			t.Errorf("%+v: failures %q, want %q", tc.rep, got, tc.fail)
		}
	}
}

func TestSoakConfigDefaults(t *testing.T) {
	cfg := Config{Scenario: ScenarioSoak, Conns: 500, Rate: 10, Duration: time.Hour}
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	if cfg.RoomSize != "2-10" || cfg.Churn != 5 || cfg.Warmup != 12*time.Minute || cfg.MaxGrowth != 0.05 {
		t.Fatalf("defaults: room size %s, churn %v, warmup %v, max growth %v", cfg.RoomSize, cfg.Churn, cfg.Warmup, cfg.MaxGrowth)
	}
	off := Config{Scenario: ScenarioSoak, Rate: 10, Churn: -1}
	if err := off.fill(); err != nil || off.Churn != 0 {
		t.Fatalf("churn -1: %v, %v", off.Churn, err)
	}
}
