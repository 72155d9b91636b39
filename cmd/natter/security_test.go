package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// resolveWith parses args and env like a role does and resolves the
// security flags, with --open defaulting to openDefault.
func resolveWith(t *testing.T, openDefault bool, args []string, env map[string]string) (*securityFlags, bool, error) {
	t.Helper()
	f := newFlags("t", "t", &bytes.Buffer{})
	open := f.Bool("open", openDefault, "")
	s := addSecurityFlags(f)
	if err := f.parse(args, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	err := s.resolve(f, open, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	return s, *open, err
}

func TestGatewayNeedsKeysOrOpen(t *testing.T) {
	if _, _, err := resolveWith(t, false, nil, nil); err == nil || !strings.Contains(err.Error(), "no way to authenticate") {
		t.Errorf("no keys, no --open: %v", err)
	}
	if _, open, err := resolveWith(t, false, []string{"--open"}, nil); err != nil || !open {
		t.Errorf("--open: %v %v", open, err)
	}
	s, open, err := resolveWith(t, false, nil, map[string]string{"NATTER_JWT_SECRET": testSecret})
	if err != nil || open || s.security.Auth == nil {
		t.Errorf("secret from the environment: open=%v auth=%v err=%v", open, s.security.Auth != nil, err)
	}
}

func TestKeysTurnTheDefaultOpenModeOff(t *testing.T) {
	if _, open, err := resolveWith(t, true, nil, nil); err != nil || !open {
		t.Errorf("one-process default without keys must stay open: %v %v", open, err)
	}
	if _, open, err := resolveWith(t, true, []string{"--jwt-secret", testSecret}, nil); err != nil || open {
		t.Errorf("keys without --open: open=%v err=%v, want open off", open, err)
	}
	if _, open, err := resolveWith(t, true, []string{"--jwt-secret", testSecret, "--open"}, nil); err != nil || !open {
		t.Errorf("keys with an explicit --open: open=%v err=%v", open, err)
	}
	if _, open, err := resolveWith(t, true, []string{"--jwt-secret", testSecret}, map[string]string{"NATTER_OPEN": "true"}); err != nil || !open {
		t.Errorf("keys with NATTER_OPEN=true: open=%v err=%v", open, err)
	}
}

func TestSecurityFlagsRefuseBadValues(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--jwt-secret", "short"}, "at least 32"},
		{[]string{"--jwt-public-keys", junk}, "--jwt-public-keys"},
		{[]string{"--jwt-public-keys", filepath.Join(dir, "missing.pem")}, "--jwt-public-keys"},
		{[]string{"--jwks-file", junk}, "--jwks-file"},
		{[]string{"--open", "--api-key", "short"}, "--api-key"},
		{[]string{"--open", "--api-key-file", filepath.Join(dir, "missing")}, "--api-key-file"},
		{[]string{"--open", "--api-key-file", junk}, "--api-key-file: the key is 4 characters"},
		{[]string{"--open", "--api-key-file", junk, "--api-key", "0123456789abcdefghij"}, "not both"},
		{[]string{"--open", "--allowed-origins", "chat.example.com"}, "--allowed-origins"},
		{[]string{"--open", "--allowed-origins", "https://chat.example.com/path"}, "--allowed-origins"},
		{[]string{"--open", "--trusted-proxies", "not-an-ip"}, "--trusted-proxies"},
		{[]string{"--open", "--tls-cert", "c.pem"}, "go together"},
		{[]string{"--open", "--tls-cert", junk, "--tls-key", junk}, "--tls-cert"},
		{[]string{"--open", "--rate-per-conn", "-1"}, "no limit"},
		{[]string{"--open", "--max-frame-bytes", "0"}, "--max-frame-bytes"},
		{[]string{"--open", "--max-frame-bytes", "2000000"}, "at most"},
		{[]string{"--open", "--handshake-timeout", "0s"}, "--handshake-timeout"},
		{[]string{"--open", "--max-pending", "0"}, "--max-pending"},
		{[]string{"--open", "--max-pending-bytes", "-5"}, "--max-pending-bytes"},
	} {
		if _, _, err := resolveWith(t, false, tc.args, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestZeroFlagTurnsALimitOff(t *testing.T) {
	s, _, err := resolveWith(t, false, []string{"--open", "--rate-per-conn", "0", "--max-conns-per-ip", "0", "--allowed-origins", "https://a.example,*",
		"--trusted-proxies", "10.0.0.0/8,192.0.2.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.limits.RatePerConn >= 0 || s.limits.ConnsPerIP >= 0 || s.limits.RatePerUser != 50 {
		t.Errorf("limits %+v", s.limits)
	}
	if len(s.security.AllowedOrigins) != 2 || len(s.security.TrustedProxies) != 2 || s.security.TrustedProxies[1].Bits() != 32 {
		t.Errorf("security %+v", s.security)
	}
}

func TestPendingBoundFlags(t *testing.T) {
	s, _, err := resolveWith(t, false, []string{"--open", "--max-pending", "300"}, map[string]string{"NATTER_MAX_PENDING_BYTES": "65536"})
	if err != nil {
		t.Fatal(err)
	}
	if s.limits.MaxPending != 300 || s.limits.MaxPendingBytes != 65536 {
		t.Errorf("limits %+v", s.limits)
	}
}

func TestNatterGatewayRefusesToStartWithoutAuthentication(t *testing.T) {
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(string) string { return "" }}
	err := m.Run(context.Background(), []string{"gateway", "--kafka-brokers", "k:9092", "--database-url", "postgres://x"})
	if err == nil || !strings.Contains(err.Error(), "no way to authenticate") {
		t.Fatalf("natter gateway without keys or --open: %v", err)
	}
}

func TestAPIKeyFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(p, []byte("0123456789abcdefghij\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, err := resolveWith(t, true, []string{"--api-key-file", p}, nil)
	if err != nil || s.security.APIKey != "0123456789abcdefghij" {
		t.Fatalf("key %q, err %v", s.security.APIKey, err)
	}
}
