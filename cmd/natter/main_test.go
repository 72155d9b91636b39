package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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
// compose.yaml, and in its override compose.secure.yaml, against the
// --help of the role that service runs (in the override, the role of the
// service of the same name in compose.yaml unless it has a command of its
// own). No container engine runs here, so it also checks what a typo
// would break only at `docker compose up`: every file under /certs the
// files name is one the certs service makes, every service that uses
// them mounts the volume and waits for that service, and every volume a
// service mounts is declared.
func TestComposeSetsOnlyFlagsNatterReads(t *testing.T) {
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
	base := readCompose(t, "../../compose.yaml")
	secure := readCompose(t, "../../compose.secure.yaml")
	for _, c := range []*composeFile{base, secure} {
		checked := 0
		for _, name := range c.order {
			svc := c.services[name]
			role := svc.role
			if c == secure && role == "" && base.services[name] != nil {
				role = base.services[name].role
			}
			for _, env := range svc.envOrder {
				if role == "" {
					t.Errorf("%s: %s set on service %s, which runs no natter command", c.path, env, name)
					continue
				}
				if !strings.Contains(usage(role), "["+env) {
					t.Errorf("%s: sets %s for natter %s (service %s), which does not read it", c.path, env, role, name)
				}
				checked++
			}
		}
		if checked < 10 {
			t.Errorf("%s: checked only %d variables; is the compose file parsed right?", c.path, checked)
		}
	}

	// The certs service makes ca.pem, NAME.pem and NAME-key.pem for
	// NATTER_NAMES and NAME.password for NATTER_PASSWORDS; the override
	// may change both.
	certs := base.services["certs"]
	if certs == nil || certs.role != "certs" {
		t.Fatalf("compose.yaml has no service certs running natter certs")
	}
	if dir := certs.env["NATTER_DIR"]; dir == "" || !certs.mounts["certs:"+dir] {
		t.Errorf("the certs service writes to %q but mounts the volume certs at %v", dir, certs.mounts)
	}
	made := func(env map[string]string) map[string]bool {
		files := map[string]bool{"ca.pem": true}
		for _, n := range splitList(env["NATTER_NAMES"]) {
			files[n+".pem"], files[n+"-key.pem"] = true, true
		}
		for _, n := range splitList(env["NATTER_PASSWORDS"]) {
			files[n+".password"] = true
		}
		return files
	}
	merged := map[string]string{}
	for k, v := range certs.env {
		merged[k] = v
	}
	if s := secure.services["certs"]; s != nil {
		for k, v := range s.env {
			merged[k] = v
		}
	}
	for _, tc := range []struct {
		c     *composeFile
		files map[string]bool
	}{{base, made(certs.env)}, {secure, made(merged)}} {
		for _, name := range tc.c.order {
			svc := tc.c.services[name]
			for _, ref := range svc.certsRefs {
				if !tc.files[ref] {
					t.Errorf("%s: service %s uses /certs/%s, which the certs service does not make (it makes %s)",
						tc.c.path, name, ref, strings.Join(slices.Sorted(maps.Keys(tc.files)), ", "))
				}
			}
			if len(svc.certsRefs) == 0 || name == "certs" {
				continue
			}
			mounted, waits := svc.mounts["certs:/certs:ro"], svc.dependsOnCerts
			if b := base.services[name]; tc.c == secure && b != nil {
				mounted, waits = mounted || b.mounts["certs:/certs:ro"], waits || b.dependsOnCerts
			}
			if !mounted {
				t.Errorf("%s: service %s uses /certs but does not mount certs:/certs:ro", tc.c.path, name)
			}
			if !waits {
				t.Errorf("%s: service %s uses /certs but does not wait for certs (condition: service_completed_successfully)", tc.c.path, name)
			}
		}
	}
	for _, c := range []*composeFile{base, secure} {
		for _, name := range c.order {
			for m := range c.services[name].mounts {
				vol := strings.SplitN(m, ":", 2)[0]
				if !base.volumes[vol] && !secure.volumes[vol] {
					t.Errorf("%s: service %s mounts the volume %s, which neither file declares", c.path, name, vol)
				}
			}
			if c == secure && base.services[name] == nil && !c.services[name].hasImage {
				t.Errorf("%s: service %s is not in compose.yaml and has no image or build", c.path, name)
			}
		}
	}
}

// composeFile is what TestComposeSetsOnlyFlagsNatterReads reads of a
// compose file, line by line (no YAML library in the module): the
// indentation of compose.yaml's style, two spaces a level.
type composeFile struct {
	path     string
	order    []string
	services map[string]*composeService
	volumes  map[string]bool // declared at the top level
}

type composeService struct {
	role           string            // the natter command, "" for none
	env            map[string]string // NATTER_* variables, values unquoted
	envOrder       []string
	mounts         map[string]bool // "volume:/target[:ro]" of named volumes
	certsRefs      []string        // file names after /certs/ in its lines
	dependsOnCerts bool            // certs: { condition: service_completed_successfully }
	hasImage       bool            // image: or build:
}

func readCompose(t *testing.T, path string) *composeFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &composeFile{path: filepath.Base(path), services: map[string]*composeService{}, volumes: map[string]bool{}}
	var (
		topRe     = regexp.MustCompile(`^([A-Za-z][\w-]*):`)
		serviceRe = regexp.MustCompile(`^  ([a-z][\w-]*):\s*$`)
		volumeRe  = regexp.MustCompile(`^  ([a-z][\w-]*):`)
		cmdRe     = regexp.MustCompile(`^    command: \["(\w+)"\]`)
		envRe     = regexp.MustCompile(`^\s+(NATTER_[A-Z_]+):\s*(.*)$`)
		mountRe   = regexp.MustCompile(`^      - ([a-z][\w-]*:/[^\s"]*)\s*$`)
		certsRe   = regexp.MustCompile(`/certs/([\w.-]+)`)
		waitRe    = regexp.MustCompile(`^      certs: \{ ?condition: service_completed_successfully ?\}`)
	)
	top := ""
	var svc *composeService
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.Contains(line, "\t") {
			t.Errorf("%s:%d: a tab (YAML indents with spaces)", c.path, n)
		}
		if m := topRe.FindStringSubmatch(line); m != nil {
			top, svc = m[1], nil
			switch {
			case top == "name" || top == "services" || top == "volumes" || strings.HasPrefix(top, "x-"):
			default:
				t.Errorf("%s:%d: unexpected top-level key %q", c.path, n, top)
			}
			continue
		}
		switch top {
		case "volumes":
			if m := volumeRe.FindStringSubmatch(line); m != nil {
				c.volumes[m[1]] = true
			}
			continue
		case "services":
		default:
			continue
		}
		if m := serviceRe.FindStringSubmatch(line); m != nil {
			if c.services[m[1]] != nil {
				t.Errorf("%s:%d: service %s twice", c.path, n, m[1])
			}
			svc = &composeService{env: map[string]string{}, mounts: map[string]bool{}}
			c.services[m[1]] = svc
			c.order = append(c.order, m[1])
			continue
		}
		if svc == nil {
			continue
		}
		if m := cmdRe.FindStringSubmatch(line); m != nil {
			svc.role = m[1]
		}
		if strings.HasPrefix(line, "    image:") || strings.HasPrefix(line, "    build:") {
			svc.hasImage = true
		}
		if m := envRe.FindStringSubmatch(line); m != nil {
			svc.env[m[1]] = strings.Trim(m[2], `"`)
			svc.envOrder = append(svc.envOrder, m[1])
		}
		if m := mountRe.FindStringSubmatch(line); m != nil {
			svc.mounts[m[1]] = true
		}
		if waitRe.MatchString(line) {
			svc.dependsOnCerts = true
		}
		for _, m := range certsRe.FindAllStringSubmatch(line, -1) {
			svc.certsRefs = append(svc.certsRefs, m[1])
		}
	}
	// A value given by an anchor (&name) counts for every service that
	// uses it (*name).
	anchorRe := regexp.MustCompile(`&([\w-]+)\s+"?([^"]*)"?`)
	for _, m := range anchorRe.FindAllStringSubmatch(string(data), -1) {
		refs := certsRe.FindAllStringSubmatch(m[2], -1)
		for _, svc := range c.services {
			for _, v := range svc.env {
				if v == "*"+m[1] {
					for _, r := range refs {
						svc.certsRefs = append(svc.certsRefs, r[1])
					}
				}
			}
		}
	}
	if len(c.services) < 5 {
		t.Fatalf("%s: found only %d services; is it parsed right?", c.path, len(c.services))
	}
	return c
}

func TestPprofAddr(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	env := map[string]string{"NATTER_PPROF_ADDR": "127.0.0.1:0"}
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}
	// A role without its flags stops at once, but the profiler serves
	// until ctx ends.
	if err := m.Run(ctx, []string{"persister"}); err == nil || !strings.Contains(err.Error(), "--kafka-brokers is required") {
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
	if err := m.Run(ctx, []string{"persister"}); err == nil || !strings.Contains(err.Error(), "NATTER_PPROF_ADDR") {
		t.Fatalf("bad address: got %v", err)
	}
	// Short-lived helpers never profile: they would take the address of
	// the process they run beside.
	out.Reset()
	for _, cmd := range []string{"help", "certs --help", "healthcheck --help"} {
		if err := m.Run(ctx, strings.Fields(cmd)); err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("natter %s: %v", cmd, err)
		}
	}
	if strings.Contains(out.String(), "profiling on") {
		t.Fatalf("a short-lived command served the profiler:\n%s", out.String())
	}
}

// TestHelpListsEveryCommand: `natter help` and `natter --help` name every
// command Run dispatches, and each command answers --help.
func TestHelpListsEveryCommand(t *testing.T) {
	var help bytes.Buffer
	m := &Main{Stdout: &help, Stderr: &help, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), []string{"help"}); err != nil {
		t.Fatal(err)
	}
	var top bytes.Buffer
	m = &Main{Stdout: &top, Stderr: &top, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("natter --help: %v", err)
	}
	for _, cmd := range []string{"gateway", "bridge", "persister", "local", "replay", "bench", "healthcheck", "certs"} {
		for what, out := range map[string]string{"natter help": help.String(), "natter --help": top.String()} {
			if !strings.Contains(out, "\n  "+cmd+" ") {
				t.Errorf("%s does not list %s:\n%s", what, cmd, out)
			}
		}
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		if err := m.Run(context.Background(), []string{cmd, "--help"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("natter %s --help: %v", cmd, err)
		}
	}
}
