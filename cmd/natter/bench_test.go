package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestBenchRefusesBadConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "storm"},
		{"--scenario", "cross", "--url", "ws://127.0.0.1:1/ws"},
		{"--rate", "fast"},
		{"--room-size", "ten"},
		{"--worker", "3/2"},
	} {
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
		if err := m.Run(context.Background(), append([]string{"bench"}, args...)); err == nil {
			t.Errorf("natter bench %v: no error", args)
		}
	}
}

func TestBenchFlagsHaveEnvironmentVariables(t *testing.T) {
	var out bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	if err := m.Run(context.Background(), []string{"bench", "--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("natter bench --help: %v", err)
	}
	for _, env := range []string{"NATTER_URL", "NATTER_SCENARIO", "NATTER_CONNS", "NATTER_RATE", "NATTER_PROCS", "NATTER_JSON"} {
		if !strings.Contains(out.String(), "["+env+"]") {
			t.Errorf("--help does not list %s", env)
		}
	}
}
