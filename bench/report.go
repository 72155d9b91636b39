// Running a plan's parts together, the live progress line, the servers'
// metrics and the final report.

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Durations are in milliseconds, memory in
// bytes.
type Report struct {
	Scenario    string   `json:"scenario"`
	URLs        []string `json:"urls"`
	Conns       int      `json:"conns"`
	Rooms       int      `json:"rooms"`
	RoomSize    string   `json:"room_size"`
	Publishers  int      `json:"publishers"`
	Rate        float64  `json:"rate"`
	Duration    float64  `json:"duration_s"`
	BodyBytes   int      `json:"body_bytes"`
	Procs       int      `json:"procs"`
	SourceAddrs int      `json:"source_addrs"`
	FileLimit   uint64   `json:"file_limit"`

	Connected       int              `json:"connected"`
	Held            int              `json:"held"`
	ConnectErrors   int              `json:"connect_errors"`
	ConnectError    string           `json:"connect_error,omitempty"`
	Disconnects     int              `json:"disconnects"`
	DisconnectError string           `json:"disconnect_error,omitempty"`
	Sent            int64            `json:"sent"`
	SendErrors      int64            `json:"send_errors"`
	Acks            int64            `json:"acks"`
	Expected        int64            `json:"expected"`
	Delivered       int64            `json:"delivered"`
	Lost            int64            `json:"lost"`
	Duplicated      int64            `json:"duplicated"`
	DeliveriesPerS  float64          `json:"deliveries_per_s"`
	Errors          map[string]int64 `json:"errors,omitempty"`
	Latency         Latency          `json:"latency_ms"`
	LoadCPUCores    float64          `json:"load_cpu_cores"`
	// MachineCPUCores is the whole machine's busy CPU while publishing
	// (from /proc/stat): what it has beyond the load generator and the
	// servers is other work sharing the machine, which skews latency.
	MachineCPUCores float64  `json:"machine_cpu_cores"`
	Servers         []Server `json:"servers"`
	// Soak is the soak scenario's verdict (nil in the others).
	Soak *Soak `json:"soak,omitempty"`
}

// Latency holds end-to-end latency percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Max  float64 `json:"max"`
}

// Server is what a server's metrics showed: before connecting, once
// connected, and at the end of publishing (or of the idle hold).
type Server struct {
	MetricsURL      string  `json:"metrics_url"`
	Conns           int     `json:"conns"`
	RSSBefore       float64 `json:"rss_before"`
	RSSConnected    float64 `json:"rss_connected"`
	RSSEnd          float64 `json:"rss_end"`
	RSSPerConn      float64 `json:"rss_per_conn"`
	GoroutinesStart float64 `json:"goroutines_before"`
	GoroutinesEnd   float64 `json:"goroutines_end"`
	CPUCores        float64 `json:"cpu_cores"`
	Err             string  `json:"error,omitempty"`
}

// serverSample is one scrape. errors is the sum of every *_errors_total
// counter.
type serverSample struct {
	rss, goroutines, cpu        float64
	heapLive, heapInuse, errors float64
	at                          time.Time
	err                         error
}

// coordinator runs a plan's parts together and builds the report from
// what they and the servers showed.
type coordinator struct {
	cfg   *Config
	p     *plan
	parts []part
	pr    *progress
	rep   *Report

	// The servers' scrapes before connecting, once connected, and just
	// before publishing ends.
	before, connected, end []serverSample
	// The machine's CPU time when publishing starts (see machineCPU).
	busy0, total0 float64
	// soak samples the footprints in the soak scenario (else nil).
	soak *soakSampler
}

// coordinate runs the parts of plan p together: it connects them all,
// has them publish (or hold) from one start time, follows them to the
// end and reports what they and the servers' metrics showed.
func coordinate(ctx context.Context, cfg *Config, p *plan, parts []part) (*Report, error) {
	c := &coordinator{cfg: cfg, p: p, parts: parts, pr: newProgress(cfg.Progress), rep: newReport(cfg, p)}
	raiseFileLimit()
	c.rep.FileLimit = fileLimit()
	c.before = scrapeAll(cfg)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	if err := c.connect(ctx, tick.C); err != nil {
		c.pr.done()
		return nil, err
	}
	c.connected = scrapeAll(cfg)
	c.busy0, c.total0 = machineCPU()

	// Publish (or hold) from t0, together.
	t0 := time.Now().Add(300 * time.Millisecond)
	for _, pt := range parts {
		if err := pt.start(t0); err != nil {
			return nil, err
		}
	}
	got, err := c.await(ctx, tick.C, t0)
	if err != nil {
		return nil, err
	}
	if c.end == nil {
		c.end = scrapeAll(cfg)
	}
	elapsed := time.Since(t0).Seconds()

	c.merge(got, elapsed)
	c.rep.Servers = c.servers()
	if c.soak != nil {
		c.rep.Soak = c.soakVerdict(churnTotals(got))
	}
	return c.rep, nil
}

// newReport starts the report of a run with what cfg and p describe.
func newReport(cfg *Config, p *plan) *Report {
	rep := &Report{Scenario: cfg.Scenario, URLs: cfg.URLs, Conns: cfg.Conns, Rooms: len(p.rooms), RoomSize: cfg.RoomSize,
		Publishers: len(p.pubs), Rate: cfg.Rate, Duration: cfg.Duration.Seconds(), BodyBytes: cfg.BodyBytes,
		Procs: cfg.Procs, SourceAddrs: cfg.SourceAddrs, Errors: map[string]int64{}}
	if cfg.Scenario == ScenarioFanout {
		rep.RoomSize = strconv.Itoa(cfg.Conns)
	}
	return rep
}

// connect opens every part's connections, printing how many are open at
// each tick, and adds up what opened and what failed. It fails with the
// first part that fails, or when not one connection opened.
func (c *coordinator) connect(ctx context.Context, tick <-chan time.Time) error {
	errs := make(chan error, len(c.parts))
	for _, pt := range c.parts {
		go func() { _, err := pt.connect(ctx); errs <- err }()
	}
	var firstErr error
	for waiting := len(c.parts); waiting > 0; {
		select {
		case err := <-errs:
			waiting--
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case <-tick:
			var n int64
			for _, pt := range c.parts {
				n += pt.snapshot().Connected
			}
			c.pr.printf("%s connecting %d/%d", c.cfg.Scenario, n, c.cfg.Conns)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	for _, pt := range c.parts {
		s := pt.snapshot()
		c.rep.Connected += int(s.Connected)
		c.rep.ConnectErrors += s.ConnectErrs
		if c.rep.ConnectError == "" {
			c.rep.ConnectError = s.ConnectErr
		}
	}
	if c.rep.Connected == 0 {
		return fmt.Errorf("no connection could be opened: %s", c.rep.ConnectError)
	}
	return nil
}

// await waits for every part's result once publishing started at t0.
// Meanwhile it prints the progress line at each tick, samples the soak's
// footprints, and takes the servers' last scrape and the machine's CPU
// use just before publishing ends, while every connection is still open.
func (c *coordinator) await(ctx context.Context, tick <-chan time.Time, t0 time.Time) ([]partResult, error) {
	results := make(chan partResult, len(c.parts))
	rerrs := make(chan error, len(c.parts))
	for _, pt := range c.parts {
		go func() {
			r, err := pt.result(ctx)
			if err != nil {
				rerrs <- err
				return
			}
			results <- r
		}()
	}
	endAt := t0.Add(c.cfg.Duration - min(500*time.Millisecond, c.cfg.Duration/10))
	endScrape := time.NewTimer(time.Until(endAt))
	defer endScrape.Stop()
	var soakTick <-chan time.Time
	if c.cfg.Scenario == ScenarioSoak {
		c.soak = newSoakSampler(c.cfg, t0)
		st := time.NewTicker(c.soak.every)
		defer st.Stop()
		soakTick = st.C
	}
	var got []partResult
	rate := deliveryRate{at: t0}
	for len(got) < len(c.parts) {
		select {
		case r := <-results:
			got = append(got, r)
		case err := <-rerrs:
			c.pr.done()
			return nil, err
		case now := <-soakTick:
			if at := now.Sub(t0); at >= 0 && at <= c.cfg.Duration {
				c.soak.sample(c.self())
			}
		case <-endScrape.C:
			c.end = scrapeAll(c.cfg)
			if busy1, total1 := machineCPU(); total1 > c.total0 {
				c.rep.MachineCPUCores = float64(runtime.NumCPU()) * (busy1 - c.busy0) / (total1 - c.total0)
			}
		case now := <-tick:
			c.pr.printf("%s", c.progressLine(now, t0, &rate))
		}
	}
	c.pr.done()
	return got, nil
}

// self is the load generator's footprint summed over its parts.
func (c *coordinator) self() selfSample {
	var self selfSample
	for _, pt := range c.parts {
		ps := pt.snapshot().Self
		self.Goroutines += ps.Goroutines
		self.HeapLive += ps.HeapLive
		self.RSS += ps.RSS
	}
	return self
}

// deliveryRate turns the running total of deliveries into deliveries a
// second since the last update.
type deliveryRate struct {
	delivered int64
	at        time.Time
}

func (r *deliveryRate) update(delivered int64, now time.Time) float64 {
	rate := float64(delivered-r.delivered) / now.Sub(r.at).Seconds()
	r.delivered, r.at = delivered, now
	return rate
}

// progressLine is the live progress line at now: the parts' running
// totals and latency, and the first server's footprint if it answers.
func (c *coordinator) progressLine(now, t0 time.Time, rate *deliveryRate) string {
	var s snapshot
	var h Hist
	for _, pt := range c.parts {
		ps := pt.snapshot()
		s.Held += ps.Held
		s.Sent += ps.Sent
		s.Delivered += ps.Delivered
		s.Dups += ps.Dups
		h.addJSON(ps.Hist)
	}
	perS := rate.update(s.Delivered, now)
	line := fmt.Sprintf("%s %4.0fs | held %d | sent %d | %s deliveries/s | p50 %s p99 %s max %s | dup %d",
		c.cfg.Scenario, now.Sub(t0).Seconds(), s.Held, s.Sent, si(perS), ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Max()), s.Dups)
	if srv := scrapeOne(c.cfg, 0); srv.err == nil {
		line += fmt.Sprintf(" | server %s RSS %s goroutines", mib(srv.rss), si(srv.goroutines))
	}
	return line
}

// merge adds the parts' results into the report: connections, messages,
// deliveries, loss, throughput, latency and the generator's CPU use over
// elapsed seconds.
func (c *coordinator) merge(got []partResult, elapsed float64) {
	rep := c.rep
	var h Hist
	sent := map[int]int64{}
	var recv, atEnd int64
	sendSeconds := c.cfg.Duration.Seconds()
	for _, r := range got {
		rep.Held += int(r.Held)
		rep.Disconnects += r.Disconnects
		if rep.DisconnectError == "" {
			rep.DisconnectError = r.DisconnectErr
		}
		rep.SendErrors += r.SendErrs
		rep.Acks += r.Acks
		rep.Delivered += r.Delivered
		rep.Duplicated += r.Dups
		atEnd += r.AtEnd
		sendSeconds = max(sendSeconds, r.SendSeconds)
		rep.LoadCPUCores += r.CPUSeconds / elapsed
		h.addJSON(r.Hist)
		for k, v := range r.PubSent {
			sent[k] += v
		}
		for _, v := range r.PubRecv {
			recv += v
		}
		for k, v := range r.Errors {
			rep.Errors[k] += v
		}
	}
	p := c.p
	for pub, n := range sent {
		rep.Sent += n
		rep.Expected += n * int64(p.rooms[p.conns[p.pubs[pub]].room].members)
	}
	rep.Lost = max(0, rep.Expected-recv)
	if sendSeconds > 0 {
		rep.DeliveriesPerS = float64(atEnd) / sendSeconds
	}
	rep.Latency = Latency{P50: msf(h.Quantile(0.5)), P90: msf(h.Quantile(0.9)), P99: msf(h.Quantile(0.99)),
		P999: msf(h.Quantile(0.999)), Max: msf(h.Max())}
}

// servers is what each server's three scrapes showed: memory per
// connection, goroutines, CPU while publishing, and the first scrape
// error.
func (c *coordinator) servers() []Server {
	perURL := make([]int, len(c.cfg.URLs))
	for _, conn := range c.p.conns {
		perURL[conn.url]++
	}
	var out []Server
	before, connected, end := c.before, c.connected, c.end
	for i := range c.cfg.MetricsURLs {
		s := Server{MetricsURL: c.cfg.MetricsURLs[i], RSSBefore: before[i].rss, RSSConnected: connected[i].rss,
			RSSEnd: end[i].rss, GoroutinesStart: before[i].goroutines, GoroutinesEnd: end[i].goroutines}
		if i < len(perURL) {
			s.Conns = perURL[i]
		}
		if s.Conns > 0 {
			s.RSSPerConn = (s.RSSEnd - s.RSSBefore) / float64(s.Conns)
		}
		if dt := end[i].at.Sub(connected[i].at).Seconds(); dt > 0 {
			s.CPUCores = (end[i].cpu - connected[i].cpu) / dt
		}
		for _, smp := range []serverSample{before[i], connected[i], end[i]} {
			if smp.err != nil && s.Err == "" {
				s.Err = smp.err.Error()
			}
		}
		out = append(out, s)
	}
	return out
}

// churnTotals adds up the soak's reopens over the parts' results: how
// many, how many failed and the first failure, and the sends skipped.
func churnTotals(got []partResult) Soak {
	var churn Soak
	for _, r := range got {
		churn.Reconnects += r.Reconnects
		churn.ReconnectErrors += r.ReconnectErrs
		churn.Skipped += r.Skipped
		if churn.ReconnectError == "" {
			churn.ReconnectError = r.ReconnectErr
		}
	}
	return churn
}

// soakVerdict judges the soak from its samples and the finished report,
// with churn's reopens added in; failed reopens fail it too.
func (c *coordinator) soakVerdict(churn Soak) *Soak {
	v := c.soak.verdict(c.rep, c.cfg.Churn)
	v.Reconnects, v.ReconnectErrors, v.Skipped = churn.Reconnects, churn.ReconnectErrors, churn.Skipped
	v.ReconnectError = churn.ReconnectError
	if churn.ReconnectErrors > 0 {
		v.Failures = append(v.Failures, fmt.Sprintf("%d of %d reopens failed: %s",
			churn.ReconnectErrors, churn.ReconnectErrors+churn.Reconnects, churn.ReconnectError))
	}
	return v
}

func scrapeAll(cfg *Config) []serverSample {
	out := make([]serverSample, len(cfg.MetricsURLs))
	for i := range out {
		out[i] = scrapeOne(cfg, i)
	}
	return out
}

var scrapeClient = &http.Client{Timeout: 3 * time.Second}

// scrapeOne reads RSS, goroutines and CPU seconds of server i from its
// /metrics, or its RSS from /proc when ServerPID is set.
func scrapeOne(cfg *Config, i int) serverSample {
	s := serverSample{at: time.Now()}
	if cfg.ServerPID > 0 && i == 0 {
		s.rss, s.cpu, s.err = procStat(cfg.ServerPID)
		return s
	}
	resp, err := scrapeClient.Get(cfg.MetricsURLs[i])
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.err = fmt.Errorf("%s: %s", cfg.MetricsURLs[i], resp.Status)
		return s
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, _, _ := strings.Cut(line[:sp], "{")
		switch name {
		case "process_resident_memory_bytes":
			s.rss = v
		case "go_goroutines":
			s.goroutines = v
		case "process_cpu_seconds_total":
			s.cpu = v
		case "go_gc_heap_live_bytes":
			s.heapLive = v
		case "go_memstats_heap_inuse_bytes":
			s.heapInuse = v
		default:
			if strings.HasSuffix(name, "_errors_total") {
				s.errors += v
			}
		}
	}
	return s
}

// machineCPU returns the busy and total CPU time of the machine, in
// jiffies summed over its processors.
func machineCPU() (busy, total float64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// procStat reads a local process's RSS (bytes) and CPU seconds.
func procStat(pid int) (rss, cpu float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseFloat(f[21], 64)
	return pages * float64(os.Getpagesize()), (utime + stime) / 100, nil
}

// WriteText prints the report as a table.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s, %d connections, %d rooms of %s, %d publishers, %s publishes/s for %.0fs, %d-byte bodies",
		r.Scenario, r.Conns, r.Rooms, r.RoomSize, r.Publishers, si(r.Rate), r.Duration, r.BodyBytes)
	row("load generator", "%d process(es), %d source addresses, open-file limit %d, %.2f cores", r.Procs, r.SourceAddrs, r.FileLimit, r.LoadCPUCores)
	if r.MachineCPUCores > 0 {
		row("machine", "%d cores, %.2f busy while publishing (generator and servers included)", runtime.NumCPU(), r.MachineCPUCores)
	}
	row("connections", "%d opened, %d held to the end, %d failed, %d dropped", r.Connected, r.Held, r.ConnectErrors, r.Disconnects)
	if r.ConnectError != "" {
		row("", "first connect error: %s", r.ConnectError)
	}
	if r.DisconnectError != "" {
		row("", "first drop: %s", r.DisconnectError)
	}
	if r.Rate > 0 {
		row("messages", "%d sent (%d send errors), %d acked", r.Sent, r.SendErrors, r.Acks)
		row("deliveries", "%d of %d expected: %d lost, %d duplicated", r.Delivered-r.Duplicated, r.Expected, r.Lost, r.Duplicated)
		row("throughput", "%s deliveries/s", si(r.DeliveriesPerS))
		row("latency", "p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms",
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999, r.Latency.Max)
	}
	for k, v := range r.Errors {
		row("errors", "%s: %d", k, v)
	}
	for _, s := range r.Servers {
		if s.Err != "" {
			row("server", "%s: %s", s.MetricsURL, s.Err)
			continue
		}
		row("server", "%s: %d conns, RSS %s → %s (%s/conn), goroutines %.0f → %.0f, %.2f cores",
			s.MetricsURL, s.Conns, mib(s.RSSBefore), mib(s.RSSEnd), kib(s.RSSPerConn), s.GoroutinesStart, s.GoroutinesEnd, s.CPUCores)
	}
	if v := r.Soak; v != nil {
		row("soak", "warm-up %.0fs; medians of %.0fs windows, a sample every %.0fs; allowed growth %.1f%%",
			v.WarmupS, v.WindowS, v.SampleEveryS, 100*v.MaxGrowth)
		row("churn", "%.1f reopens/s: %d reopened, %d failed, %d sends skipped while reopening",
			v.Churn, v.Reconnects, v.ReconnectErrors, v.Skipped)
		for _, p := range v.Processes {
			row("growth", "%s: goroutines %.0f → %.0f (%+.1f%%), live heap %s → %s (%+.1f%%), RSS %s → %s (%+.1f%%), errors +%.0f",
				p.Name, p.Goroutines.Base, p.Goroutines.End, 100*p.Goroutines.Growth,
				mib(p.HeapLive.Base), mib(p.HeapLive.End), 100*p.HeapLive.Growth,
				mib(p.RSS.Base), mib(p.RSS.End), 100*p.RSS.Growth, p.Errors)
		}
		if len(v.Failures) == 0 {
			row("verdict", "PASS")
		}
		for _, f := range v.Failures {
			row("verdict", "FAIL: %s", f)
		}
	}
	_ = tw.Flush()
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// progress prints a line a second: in place on a terminal, else one
// line each.
type progress struct {
	w    io.Writer
	tty  bool
	used bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) printf(format string, a ...any) {
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K"+format, a...)
		p.used = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", a...)
}

func (p *progress) done() {
	if p.w != nil && p.tty && p.used {
		fmt.Fprintln(p.w)
	}
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", msf(d)) }

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/(1<<10)) }
