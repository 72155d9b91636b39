package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter/bridge"
	"github.com/natter-chat/natter/embedded"
	"github.com/natter-chat/natter/federation"
	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/postgres"
)

// exportedMetrics returns the name of every metric natter's processes
// export, from the collectors the roles register: a gateway's with its
// embedded NATS server's, a bridge's with federation, a persister's, and
// the Go runtime and process metrics of every role.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ns, err := embedded.StartNATS(embedded.NATSConfig{DontListen: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	nc, err := ns.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// Built, never run: only their metrics are read.
	gw, err := gateway.New(gateway.Config{NATS: nc, History: (*postgres.Store)(nil), DurableLog: &kafkaLog{}, Open: true})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	fed, err := federation.New(federation.Config{Region: "r", NATS: nc, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	p, err := persister.New(persister.Config{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Group: "g",
		Store: (*postgres.Store)(nil), Sarama: kafka.NewConfig("test")})
	if err != nil {
		t.Fatal(err)
	}
	var all []prometheus.Collector
	for _, cs := range [][]prometheus.Collector{gw.Collectors(), natsCollectors(ns), bridge.New(bridge.Config{}).Collectors(),
		fed.Collectors(), p.Collectors(), runtimeCollectors()} {
		all = append(all, cs...)
	}
	fqName := regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	names := map[string]bool{}
	for _, c := range all {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
		}
	}
	for _, want := range []string{"natter_connections", "natter_kafka_produce_seconds", "natter_persister_lag", "natter_ready",
		"natter_federation_lag_seconds", "natter_nats_routes", "go_gc_heap_live_bytes", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Fatalf("%s is not among the %d metrics read; is the description format still parsed right?", want, len(names))
		}
	}
	return names
}

var (
	promLabels   = regexp.MustCompile(`\{[^}]*\}`)
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promLabelVal = regexp.MustCompile(`label_values\(\s*([^,()]+?)\s*,\s*\w+\s*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
)

// metricNames returns the metric names a PromQL expression (or a Grafana
// label_values query) selects.
func metricNames(expr string) []string {
	e := promLabels.ReplaceAllString(expr, "")
	e = promLabelVal.ReplaceAllString(e, "$1")
	e = promStrings.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	e = promRanges.ReplaceAllString(e, "")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[name] || (loc[0] > 0 && strings.ContainsRune("$.0123456789", rune(e[loc[0]-1]))) {
			continue // a function, a keyword, a Grafana variable or a number's exponent
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesOfPromQL(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (code) (rate(natter_client_errors_total{region=~"$region", code!="x"}[$__rate_interval]))`, []string{"natter_client_errors_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(natter_ack_seconds_bucket[5m])))`, []string{"natter_ack_seconds_bucket"}},
		{`natter_ready_check{check="kafka"} == 0 and on (instance) up`, []string{"natter_ready_check", "up"}},
		{`label_values(up{job=~"natter-.*"}, region)`, []string{"up"}},
		{`rate(process_cpu_seconds_total[1m]) * 1e3`, []string{"process_cpu_seconds_total"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// The dashboard queries only metrics natter exports, and shows every
// natter_ metric it exports.
func TestDashboardMatchesExportedMetrics(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/natter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				X, W int
			} `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("deploy/grafana/natter.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels")
	}
	exported := exportedMetrics(t)
	// Prometheus adds up to every target; histograms are queried by their series.
	known := func(name string) bool {
		if name == "up" || exported[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
				return true
			}
		}
		return false
	}
	shown := map[string]bool{}
	check := func(where, expr string) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if !known(n) {
				t.Errorf("%s: %q: natter exports no metric %s", where, expr, n)
			}
			shown[strings.TrimSuffix(n, "_bucket")] = true
		}
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the dashboard", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		var q struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			check("variable "+v.Name, q.Query)
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "natter_") && !shown[name] {
			t.Errorf("natter exports %s, which the dashboard does not show", name)
		}
	}
}

// deploy/prometheus.yml scrapes every natter service of compose.yaml, on
// the port its NATTER_ADDR listens on, in the job named after its role.
func TestPrometheusScrapesComposeServices(t *testing.T) {
	compose, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type service struct{ role, port string }
	services := map[string]*service{}
	svcRe := regexp.MustCompile(`^  ([a-z0-9-]+):$`)
	cmdRe := regexp.MustCompile(`^\s+command: \["(\w+)"\]`)
	addrRe := regexp.MustCompile(`^\s+NATTER_ADDR: "[^:]*:(\d+)"`)
	var cur *service
	for _, line := range strings.Split(string(compose), "\n") {
		if m := svcRe.FindStringSubmatch(line); m != nil {
			cur = &service{}
			services[m[1]] = cur
		}
		if cur == nil {
			continue
		}
		if m := cmdRe.FindStringSubmatch(line); m != nil {
			cur.role = m[1]
		}
		if m := addrRe.FindStringSubmatch(line); m != nil {
			cur.port = m[1]
		}
	}
	prom, err := os.ReadFile("../../deploy/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	jobRe := regexp.MustCompile(`^\s+- job_name: natter-(\w+)$`)
	targetRe := regexp.MustCompile(`"([a-z0-9-]+):(\d+)"`)
	scraped := map[string]bool{}
	job := ""
	for _, line := range strings.Split(string(prom), "\n") {
		if m := jobRe.FindStringSubmatch(line); m != nil {
			job = m[1]
		}
		if !strings.Contains(line, "targets:") {
			continue
		}
		for _, m := range targetRe.FindAllStringSubmatch(line, -1) {
			s := services[m[1]]
			switch {
			case s == nil:
				t.Errorf("prometheus.yml scrapes %s, which compose.yaml does not run", m[1])
			case s.role != job || s.port != m[2]:
				t.Errorf("prometheus.yml scrapes %s:%s in job natter-%s; compose runs natter %s on port %s", m[1], m[2], job, s.role, s.port)
			}
			scraped[m[1]] = true
		}
	}
	n := 0
	for name, s := range services {
		if s.role != "" && s.port != "" {
			n++
			if !scraped[name] {
				t.Errorf("compose.yaml runs natter %s as %s, which prometheus.yml does not scrape", s.role, name)
			}
		}
	}
	if n < 8 {
		t.Fatalf("found %d natter services with an address in compose.yaml; is it parsed right?", n)
	}
}
