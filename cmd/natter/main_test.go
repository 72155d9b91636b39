package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	f := newFlags("t", "t", &bytes.Buffer{})
	addr := f.String("kafka-brokers", "", "")
	db := f.String("database-url", "", "", "DATABASE_URL")
	n := f.Int("batch-size", 1, "")
	env := map[string]string{"NATTER_KAFKA_BROKERS": "k:1", "DATABASE_URL": "postgres://x", "NATTER_BATCH_SIZE": "7"}
	if err := f.parse([]string{"--kafka-brokers", "flag:2"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *addr != "flag:2" || *db != "postgres://x" || *n != 7 {
		t.Errorf("got %q %q %d: a flag must win over env, env must fill the rest", *addr, *db, *n)
	}
}

func TestBadEnvironmentValueIsAClearError(t *testing.T) {
	f := newFlags("t", "t", &bytes.Buffer{})
	f.Int("batch-size", 1, "")
	err := f.parse(nil, func(k string) string {
		if k == "NATTER_BATCH_SIZE" {
			return "many"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "NATTER_BATCH_SIZE") {
		t.Fatalf("err = %v, want one naming NATTER_BATCH_SIZE", err)
	}
}

func TestRolesRefuseMissingConfiguration(t *testing.T) {
	for _, role := range []string{"gateway", "bridge", "persister"} {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
		err := m.Run(context.Background(), []string{role})
		if err == nil || !strings.Contains(err.Error(), "--kafka-brokers is required") {
			t.Errorf("natter %s with no config: %v", role, err)
		}
	}
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), []string{"nonsense"}); err == nil {
		t.Error("an unknown command must fail")
	}
}

func TestGatewayRefusesBadClusterFlags(t *testing.T) {
	base := []string{"gateway", "--open", "--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-routes", "nats://127.0.0.1:6222"}, "--nats-routes needs --nats-cluster-addr"},
		{[]string{"--nats-cluster-advertise", "10.0.0.1:6222"}, "--nats-cluster-advertise needs --nats-cluster-addr"},
		{[]string{"--nats-cluster-addr", "127.0.0.1:0", "--nats-cluster-advertise", "proxy"}, "--nats-cluster-advertise"},
	} {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
		err := m.Run(context.Background(), append(append([]string{}, base...), tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

// TestComposeSetsOnlyFlagsNatterReads checks every NATTER_ variable in
// compose.yaml against the --help of the role that service runs.
func TestComposeSetsOnlyFlagsNatterReads(t *testing.T) {
	data, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	help := map[string]string{}
	usage := func(role string) string {
		if h, ok := help[role]; ok {
			return h
		}
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		if err := m.Run(context.Background(), []string{role, "--help"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("natter %s --help: %v", role, err)
		}
		help[role] = out.String()
		return help[role]
	}
	cmdRe := regexp.MustCompile(`^\s+command: \["(\w+)"\]`)
	envRe := regexp.MustCompile(`^\s+(NATTER_[A-Z_]+):`)
	role, checked := "", 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 2 && line[0] == ' ' && line[2] != ' ' { // a new service
			role = ""
		}
		if m := cmdRe.FindStringSubmatch(line); m != nil {
			role = m[1]
		}
		if m := envRe.FindStringSubmatch(line); m != nil {
			if role == "" {
				t.Errorf("%s set on a service without a natter command", m[1])
				continue
			}
			if !strings.Contains(usage(role), "["+m[1]) {
				t.Errorf("compose sets %s for natter %s, which does not read it", m[1], role)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d variables; is the compose file parsed right?", checked)
	}
}

func TestPprofAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	env := map[string]string{"NATTER_PPROF_ADDR": "127.0.0.1:0"}
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}
	if err := m.Run(ctx, []string{"help"}); err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(out.String()[:strings.Index(out.String(), "\n")], "natter: profiling on "))
	res, err := http.Get(url + "goroutine?debug=1")
	if err != nil {
		t.Fatalf("%v (output %q)", err, out.String())
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("pprof: HTTP %d", res.StatusCode)
	}
	env["NATTER_PPROF_ADDR"] = "not-an-address"
	if err := m.Run(ctx, []string{"help"}); err == nil || !strings.Contains(err.Error(), "NATTER_PPROF_ADDR") {
		t.Fatalf("bad address: got %v", err)
	}
}
