// The soak scenario's footprint check: sample every server and the load
// generator through the run, compare the two halves of what follows the
// warm-up, and list what makes the run fail.

package bench

import (
	"fmt"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Soak is the verdict of a soak run.
type Soak struct {
	WarmupS         float64       `json:"warmup_s"`
	WindowS         float64       `json:"window_s"`
	SampleEveryS    float64       `json:"sample_every_s"`
	MaxGrowth       float64       `json:"max_growth"`
	Churn           float64       `json:"churn_per_s"`
	Reconnects      int64         `json:"reconnects"`
	ReconnectErrors int64         `json:"reconnect_errors"`
	ReconnectError  string        `json:"reconnect_error,omitempty"`
	Skipped         int64         `json:"skipped_sends"`
	Processes       []SoakProcess `json:"processes"`
	// Failures says why the run failed; empty when it passed.
	Failures []string `json:"failures,omitempty"`
}

// Growth smaller than these is not judged, whatever its percentage: in a
// process of a few MiB, GC timing, buffer pools and a goroutine or two
// that come and go move the footprint by this much. A leak over a soak
// outgrows them by far.
const (
	floorGoroutines = 5
	floorHeap       = 1 << 20
	floorRSS        = 4 << 20
)

// SoakProcess is one process's footprint: the median of the first half
// after warm-up (Base) and of the second half (End) of each quantity.
type SoakProcess struct {
	// Name is the server's metrics URL, or "load generator" (reported,
	// not judged: the soak is about the servers).
	Name    string `json:"name"`
	Samples int    `json:"samples"`
	// HeapMetric names where HeapLive came from: the live heap at the
	// last GC (go_gc_heap_live_bytes), else the in-use heap spans.
	HeapMetric string `json:"heap_metric"`
	Goroutines Growth `json:"goroutines"`
	HeapLive   Growth `json:"heap_live_bytes"`
	RSS        Growth `json:"rss_bytes"`
	// Errors is how much the process's *_errors_total counters rose
	// while publishing.
	Errors float64 `json:"errors"`
	Err    string  `json:"error,omitempty"`
	// Series is every sample, for plotting.
	Series []SoakSample `json:"series"`
}

// SoakSample is one sample of a process: seconds since publishing
// started, goroutines, live heap bytes and RSS bytes.
type SoakSample struct {
	At         float64 `json:"t"`
	Goroutines float64 `json:"goroutines"`
	HeapLive   float64 `json:"heap"`
	RSS        float64 `json:"rss"`
}

// Growth compares two medians; Growth is (End-Base)/Base.
type Growth struct {
	Base   float64 `json:"base"`
	End    float64 `json:"end"`
	Growth float64 `json:"growth"`
}

// selfSample is a load-generator process's own footprint.
type selfSample struct {
	Goroutines float64 `json:"goroutines"`
	HeapLive   float64 `json:"heap_live"`
	RSS        float64 `json:"rss"`
}

func readSelf() selfSample {
	s := []metrics.Sample{{Name: "/sched/goroutines:goroutines"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	out := selfSample{}
	if s[0].Value.Kind() == metrics.KindUint64 {
		out.Goroutines = float64(s[0].Value.Uint64())
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		out.HeapLive = float64(s[1].Value.Uint64())
	}
	// /proc/self/statm: size resident shared … in pages.
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 1 {
			pages, _ := strconv.ParseFloat(f[1], 64)
			out.RSS = pages * float64(os.Getpagesize())
		}
	}
	return out
}

// soakSampler collects the samples of a soak run.
type soakSampler struct {
	cfg   *Config
	t0    time.Time
	every time.Duration
	// series[i] are the samples of server i; the last is the load
	// generator.
	series [][]serverSample
}

func newSoakSampler(cfg *Config, t0 time.Time) *soakSampler {
	every := min(max(cfg.Duration/300, time.Second), 15*time.Second)
	return &soakSampler{cfg: cfg, t0: t0, every: every, series: make([][]serverSample, len(cfg.MetricsURLs)+1)}
}

// sample scrapes every server once and records self, the load generator's
// footprint summed over its processes.
func (s *soakSampler) sample(self selfSample) {
	for i, smp := range scrapeAll(s.cfg) {
		s.series[i] = append(s.series[i], smp)
	}
	s.series[len(s.series)-1] = append(s.series[len(s.series)-1], serverSample{at: time.Now(),
		goroutines: self.Goroutines, heapLive: self.HeapLive, rss: self.RSS})
}

// verdict compares the windows and fills in the failures, with those rep
// already shows (loss, duplicates, errors).
func (s *soakSampler) verdict(rep *Report, churn float64) *Soak {
	v := &Soak{WarmupS: s.cfg.Warmup.Seconds(), WindowS: s.window().Seconds(), SampleEveryS: s.every.Seconds(),
		MaxGrowth: s.cfg.MaxGrowth, Churn: churn}
	for i, series := range s.series {
		p, failures := s.judge(i, series)
		v.Processes = append(v.Processes, p)
		v.Failures = append(v.Failures, failures...)
	}
	v.Failures = append(v.Failures, runFailures(rep)...)
	return v
}

// window is the length of each window compared: half of what follows the
// warm-up.
func (s *soakSampler) window() time.Duration { return (s.cfg.Duration - s.cfg.Warmup) / 2 }

// judge sums up series, the samples of process i (the last is the load
// generator), and says how the process failed: too few samples to
// compare, or, for a server, growth beyond MaxGrowth or errors counted.
func (s *soakSampler) judge(i int, series []serverSample) (SoakProcess, []string) {
	var failures []string
	fail := func(format string, a ...any) { failures = append(failures, fmt.Sprintf(format, a...)) }
	p := SoakProcess{Name: "load generator", HeapMetric: "/gc/heap/live:bytes"}
	server := i < len(s.cfg.MetricsURLs)
	if server {
		p.Name = s.cfg.MetricsURLs[i]
		p.HeapMetric = "go_gc_heap_live_bytes"
	}
	base, end, first, last := s.windows(series, server, &p)
	if len(base) < 3 || len(end) < 3 {
		fail("%s: only %d and %d samples in the windows compared (scrape error: %s)", p.Name, len(base), len(end), p.Err)
		return p, failures
	}
	heap := func(x serverSample) float64 {
		if p.HeapMetric == "go_memstats_heap_inuse_bytes" {
			return x.heapInuse
		}
		return x.heapLive
	}
	for _, x := range series {
		if x.err == nil {
			p.Series = append(p.Series, SoakSample{At: x.at.Sub(s.t0).Seconds(), Goroutines: x.goroutines, HeapLive: heap(x), RSS: x.rss})
		}
	}
	p.Goroutines = growth(base, end, func(x serverSample) float64 { return x.goroutines })
	p.HeapLive = growth(base, end, heap)
	p.RSS = growth(base, end, func(x serverSample) float64 { return x.rss })
	p.Errors = last.errors - first.errors
	if !server {
		return p, failures // the load generator
	}
	for _, q := range []struct {
		name  string
		g     Growth
		floor float64
		unit  func(float64) string
	}{{"goroutines", p.Goroutines, floorGoroutines, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
		{"live heap", p.HeapLive, floorHeap, mib}, {"RSS", p.RSS, floorRSS, mib}} {
		if q.g.Growth > s.cfg.MaxGrowth && q.g.End-q.g.Base > q.floor {
			fail("%s: %s grew %.1f%% after warm-up (%s → %s), more than %.1f%%", p.Name, q.name,
				100*q.g.Growth, q.unit(q.g.Base), q.unit(q.g.End), 100*s.cfg.MaxGrowth)
		}
	}
	if p.Errors > 0 {
		fail("%s: its *_errors_total counters rose by %.0f", p.Name, p.Errors)
	}
	return p, failures
}

// windows sorts the good samples of series into the base and end windows
// and returns them with the first and last good sample. It counts them
// and notes the first scrape error in p, and for a server whose live heap
// is not known yet in the windows, switches p to the in-use heap.
func (s *soakSampler) windows(series []serverSample, server bool, p *SoakProcess) (base, end []serverSample, first, last *serverSample) {
	warm, win := s.cfg.Warmup, s.window()
	for j := range series {
		smp := &series[j]
		if smp.err != nil {
			if p.Err == "" {
				p.Err = smp.err.Error()
			}
			continue
		}
		p.Samples++
		if first == nil {
			first = smp
		}
		last = smp
		at := smp.at.Sub(s.t0)
		in := true
		switch {
		case at >= warm && at < warm+win:
			base = append(base, *smp)
		case at >= warm+win:
			end = append(end, *smp)
		default:
			in = false
		}
		// The live heap is 0 until the first GC; without it in the
		// windows, compare the in-use heap.
		if in && server && smp.heapLive == 0 {
			p.HeapMetric = "go_memstats_heap_inuse_bytes"
		}
	}
	return base, end, first, last
}

// runFailures are the failures of the run as a whole that rep shows:
// lost or duplicated deliveries, failed or unacked sends, error frames,
// and connections that failed or dropped.
func runFailures(rep *Report) []string {
	var failures []string
	fail := func(format string, a ...any) { failures = append(failures, fmt.Sprintf(format, a...)) }
	switch {
	case rep.Lost > 0 || rep.Duplicated > 0:
		fail("%d deliveries lost, %d duplicated", rep.Lost, rep.Duplicated)
	case rep.Delivered == 0:
		fail("nothing was delivered")
	}
	if rep.SendErrors > 0 {
		fail("%d sends failed", rep.SendErrors)
	}
	if rep.Acks < rep.Sent {
		fail("%d of %d sends were not acked", rep.Sent-rep.Acks, rep.Sent)
	}
	if len(rep.Errors) > 0 {
		fail("error frames: %v", rep.Errors)
	}
	if rep.ConnectErrors > 0 || rep.Disconnects > 0 {
		fail("%d connections failed to open, %d dropped (%s%s)", rep.ConnectErrors, rep.Disconnects, rep.ConnectError, rep.DisconnectError)
	}
	return failures
}

// growth compares the medians of f over base and end.
func growth(base, end []serverSample, f func(serverSample) float64) Growth {
	g := Growth{Base: median(base, f), End: median(end, f)}
	if g.Base > 0 {
		g.Growth = (g.End - g.Base) / g.Base
	}
	return g
}

func median(s []serverSample, f func(serverSample) float64) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
