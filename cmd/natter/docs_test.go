package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// commands are every command natter dispatches ("" is the one-process
// default).
var commands = []string{"", "gateway", "bridge", "persister", "local", "replay", "bench", "healthcheck", "certs"}

// helpFlags returns every flag and environment variable the commands'
// --help lists.
func helpFlags(t *testing.T) (flags, envs map[string]bool) {
	t.Helper()
	flags, envs = map[string]bool{}, map[string]bool{}
	line := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)  \[([A-Z0-9_, ]+)\]`)
	for _, cmd := range commands {
		var out bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		args := []string{"--help"}
		if cmd != "" {
			args = []string{cmd, "--help"}
		}
		if err := m.Run(context.Background(), args); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("natter %s --help: %v", cmd, err)
		}
		for _, m := range line.FindAllStringSubmatch(out.String(), -1) {
			flags[m[1]] = true
			for _, e := range strings.Split(m[2], ", ") {
				envs[e] = true
			}
		}
	}
	if len(flags) < 50 {
		t.Fatalf("found %d flags in the commands' --help; is it parsed right?", len(flags))
	}
	return flags, envs
}

// docs returns README.md and docs/*.md.
func docs(t *testing.T) map[string]string {
	t.Helper()
	paths, _ := filepath.Glob("../../docs/*.md")
	paths = append(paths, "../../README.md")
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = string(b)
	}
	return out
}

// foreignFlags are other programs' flags the docs quote (go, redis,
// Kafka's tools, docker compose, node).
var foreignFlags = map[string]bool{
	"add-scram": true, "tls-port": true, "race": true, "help": true, "benchtime": true, "bindir": true,
	"some-name": true, // the docs' placeholder for any flag
}

// TestDocsNameOnlyRealFlagsAndEveryFlag: every --flag and NATTER_
// variable README.md and docs/ name is one natter reads (or one of the
// test scripts' variables), and every flag natter has is named there.
func TestDocsNameOnlyRealFlagsAndEveryFlag(t *testing.T) {
	flags, envs := helpFlags(t)
	scripts := "NATTER_SOME_NAME"                    // the docs' placeholder for any flag's variable
	paths, _ := filepath.Glob("../../e2e/*_test.go") // the suite's own knobs, e.g. NATTER_SOAK
	for _, p := range append(paths, "../../scripts/services", "../../scripts/test", "../../web/package.json") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		scripts += string(b)
	}
	for _, extra := range []string{"NATTER_PPROF_ADDR", "NATTER_PG_BIN"} {
		envs[extra] = true // read by natter outside the flags; natter help names them
	}
	flagRe := regexp.MustCompile("(?:^|[\\s`(\\[|])--([a-z][a-z0-9-]+)")
	envRe := regexp.MustCompile(`\bNATTER_[A-Z0-9_]+\b`)
	named := map[string]bool{}
	for name, text := range docs(t) {
		for _, m := range flagRe.FindAllStringSubmatch(text, -1) {
			f := m[1]
			if strings.HasSuffix(f, "-") { // a family, as in --kafka-sasl-…
				if !hasPrefix(flags, f) {
					t.Errorf("%s names --%s…, which no natter flag starts with", name, f)
				}
				continue
			}
			named[f] = true
			if !flags[f] && !foreignFlags[f] {
				t.Errorf("%s names --%s, which no natter command has", name, f)
			}
		}
		for _, e := range envRe.FindAllString(text, -1) {
			if !envs[e] && !strings.Contains(scripts, e) {
				t.Errorf("%s names %s, which natter does not read", name, e)
			}
		}
	}
	var missing []string
	for f := range flags {
		if !named[f] {
			missing = append(missing, "--"+f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags no doc names: %s", strings.Join(missing, " "))
	}
}

func hasPrefix(set map[string]bool, prefix string) bool {
	for k := range set {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
