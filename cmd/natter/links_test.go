package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter/embedded"
	"github.com/natter-chat/natter/postgres"
	"github.com/natter-chat/natter/tlsconf"
)

// linkFiles makes a CA, a certificate and secret files for the flag tests.
type linkFiles struct {
	dir, ca, cert, key, password, empty, missing string
}

func newLinkFiles(t *testing.T) linkFiles {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(dir, "client", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lf := linkFiles{dir: dir, ca: filepath.Join(dir, "ca.pem"), cert: cert, key: key,
		password: filepath.Join(dir, "pw"), empty: filepath.Join(dir, "empty"), missing: filepath.Join(dir, "missing.pem")}
	if err := os.WriteFile(lf.password, []byte("s3cret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lf.empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return lf
}

// TestLinkFlagsRefuseBadConfiguration runs each role with a link
// configuration that cannot work and checks it stops at once with an
// error naming the flag, before dialling anything (every address here is
// unreachable).
func TestLinkFlagsRefuseBadConfiguration(t *testing.T) {
	lf := newLinkFiles(t)
	gateway := []string{"gateway", "--open", "--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}
	bridge := []string{"bridge", "--kafka-brokers", "127.0.0.1:1", "--nats-url", "nats://127.0.0.1:1"}
	persister := []string{"persister", "--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}
	replay := []string{"replay", "--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"CA file that does not exist", append(bridge, "--kafka-ca-file", lf.missing), "--kafka-ca-file"},
		{"certificate without its key", append(persister, "--kafka-ca-file", lf.ca, "--kafka-cert-file", lf.cert), "without its key"},
		{"key without its certificate", append(replay, "--kafka-key-file", lf.key), "--kafka-ca-file/-cert-file/-key-file"},
		{"unknown SASL mechanism", append(gateway, "--kafka-tls", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", lf.password), "not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"},
		{"SASL without a user", append(bridge, "--kafka-tls", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-password-file", lf.password), "needs --kafka-sasl-user"},
		{"SASL without a password", append(bridge, "--kafka-tls", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", "u"), "needs --kafka-sasl-password-file"},
		{"a user without a mechanism", append(bridge, "--kafka-sasl-user", "u"), "need --kafka-sasl-mechanism"},
		{"SASL password file missing", append(persister, "--kafka-tls", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", lf.missing), "--kafka-sasl-password-file"},
		{"SASL password file empty", append(persister, "--kafka-tls", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", lf.empty), "empty"},
		{"SASL without TLS to a remote broker", []string{"bridge", "--kafka-brokers", "kafka.example.com:9092", "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", lf.password}, "add --kafka-tls"},
		{"Redis CA with a plaintext URL", append(bridge, "--redis-url", "redis://127.0.0.1:1/0", "--redis-ca-file", lf.ca), "need a rediss:// URL"},
		{"Redis CA file missing", append(bridge, "--redis-url", "rediss://127.0.0.1:1/0", "--redis-ca-file", lf.missing), "--redis-ca-file"},
		{"Redis password twice", append(bridge, "--redis-url", "redis://u:p@127.0.0.1:1/0", "--redis-password-file", lf.password), "not both"},
		{"Redis TLS files without a URL", append(bridge, "--redis-ca-file", lf.ca), "need --redis-url"},
		{"PostgreSQL CA that does not exist", []string{"persister", "--kafka-brokers", "127.0.0.1:1", "--database-url", "postgres://x@127.0.0.1:1/x?sslmode=verify-full&sslrootcert=" + lf.missing}, "--database-url"},
		{"PostgreSQL password twice", append(persister, "--database-password-file", lf.password, "--database-url", "postgres://x:pw@127.0.0.1:1/x"), "not both"},
		{"PostgreSQL password file missing", append(gateway, "--database-password-file", lf.missing), "--database-password-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			m := &Main{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing may be dialled: the check comes first
			err := m.Run(ctx, tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			for _, secret := range []string{"s3cret-password"} {
				if strings.Contains(err.Error()+out.String(), secret) {
					t.Fatalf("the password leaked into the error or the log: %v", err)
				}
			}
		})
	}
}

func TestSASLOverPlaintextIsAllowedOnLoopback(t *testing.T) {
	lf := newLinkFiles(t)
	f := newFlags("t", "t", &bytes.Buffer{})
	k := addKafkaFlags(f, "")
	if err := f.parse([]string{"--kafka-brokers", "127.0.0.1:9092,localhost:9093,[::1]:9094", "--kafka-sasl-mechanism", "scram-sha-512",
		"--kafka-sasl-user", "natter", "--kafka-sasl-password-file", lf.password}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	c, err := k.cluster()
	if err != nil {
		t.Fatal(err)
	}
	if c.SASL.Mechanism != "SCRAM-SHA-512" || c.SASL.Password != "s3cret-password" || c.TLS != nil {
		t.Fatalf("cluster = %+v", c.SASL)
	}
	if s := c.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "SASL SCRAM-SHA-512 as natter") {
		t.Fatalf("String() = %q", s)
	}
	cfg := c.Config("t")
	if !cfg.Net.SASL.Enable || cfg.Net.SASL.SCRAMClientGeneratorFunc == nil || cfg.Net.TLS.Enable {
		t.Fatalf("sarama config: SASL %v, SCRAM client %v, TLS %v", cfg.Net.SASL.Enable, cfg.Net.SASL.SCRAMClientGeneratorFunc != nil, cfg.Net.TLS.Enable)
	}
}

func TestRedisFlagsTakeCAAndPasswordFile(t *testing.T) {
	lf := newLinkFiles(t)
	f := newFlags("t", "t", &bytes.Buffer{})
	r := addRedisFlags(f)
	if err := f.parse([]string{"--redis-url", "rediss://natter@redis.internal:6380/0", "--redis-ca-file", lf.ca,
		"--redis-cert-file", lf.cert, "--redis-key-file", lf.key, "--redis-password-file", lf.password}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	opt, err := r.options()
	if err != nil {
		t.Fatal(err)
	}
	if opt.Username != "natter" || opt.Password != "s3cret-password" || opt.TLSConfig == nil || opt.TLSConfig.RootCAs == nil ||
		len(opt.TLSConfig.Certificates) != 1 || opt.TLSConfig.ServerName != "redis.internal" {
		t.Fatalf("options: user %q, TLS %+v", opt.Username, opt.TLSConfig)
	}
	if s := redisTarget(opt); strings.Contains(s, "s3cret") || s != "redis.internal:6380 (TLS, user natter)" {
		t.Fatalf("redisTarget = %q", s)
	}
}

// service returns a variable of scripts/services; these tests need the
// services it starts.
func service(t *testing.T, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: run the suite with ./scripts/test, which starts the services", env)
	}
	return v
}

// otherCA writes a CA that signed none of the services' certificates.
func otherCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "ca.pem")
}

// TestRedisOverTLSWithACLUser reaches the test Redis's TLS port as its
// ACL user, with the CA and the password from files, and checks that a
// wrong password and an untrusted certificate are refused, each saying
// why.
func TestRedisOverTLSWithACLUser(t *testing.T) {
	ca := filepath.Join(service(t, "NATTER_TEST_TLS_DIR"), "ca.pem")
	pwFile := service(t, "NATTER_TEST_REDIS_PASSWORD_FILE")
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ca, pw, want string
	}{
		{"right CA and password", ca, pwFile, ""},
		{"wrong password", ca, wrong, "WRONGPASS"},
		{"untrusted server certificate", otherCA(t), pwFile, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags("t", "t", &bytes.Buffer{})
			r := addRedisFlags(f)
			if err := f.parse([]string{"--redis-url", service(t, "NATTER_TEST_REDIS_TLS_URL"), "--redis-ca-file", tc.ca,
				"--redis-password-file", tc.pw}, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			opt, err := r.options()
			if err != nil {
				t.Fatal(err)
			}
			opt.MaxRetries = -1
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			err = rdb.Ping(context.Background()).Err()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestPostgreSQLVerifyFull opens the store over TLS with sslmode=verify-full,
// the password from a file, and checks that an untrusted server
// certificate and a wrong password are refused.
func TestPostgreSQLVerifyFull(t *testing.T) {
	url := service(t, "NATTER_TEST_DATABASE_TLS_URL")
	pwFile := service(t, "NATTER_TEST_DATABASE_PASSWORD_FILE")
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(service(t, "NATTER_TEST_TLS_DIR"), "ca.pem")
	for _, tc := range []struct {
		name, url, pw, want string
	}{
		{"right CA and password", url, pwFile, ""},
		{"wrong password", url, wrong, "password authentication failed"},
		{"untrusted server certificate", strings.Replace(url, caFile, otherCA(t), 1), pwFile, "unknown authority"},
		{"TLS refused for this user", strings.Replace(url, "sslmode=verify-full", "sslmode=disable", 1), pwFile, "no encryption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags("t", "t", &bytes.Buffer{})
			d := addDatabaseFlags(f)
			if err := f.parse([]string{"--database-url", tc.url, "--database-password-file", tc.pw}, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			c, err := d.config()
			if err != nil {
				t.Fatal(err)
			}
			if target := c.Target(); strings.Contains(target, "not-the-password") || (tc.want == "" && !strings.Contains(target, "TLS, verified")) {
				t.Fatalf("Target() = %q", target)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, c)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if err := s.Ping(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGatewayNATSRefusesToBeOpenToTheNetwork checks that a gateway whose
// NATS would accept anyone on a non-loopback address stops at start
// naming what is open, unless --nats-insecure says so.
func TestGatewayNATSRefusesToBeOpenToTheNetwork(t *testing.T) {
	lf := newLinkFiles(t)
	for _, tc := range []struct {
		name string
		args []string
		want string // "" = accepted
		warn string
	}{
		{"loopback client port without a password", []string{"--nats-addr", "127.0.0.1:4222"}, "", ""},
		{"open client port", []string{"--nats-addr", "0.0.0.0:4222"}, "the client port 0.0.0.0:4222 accepts anyone", ""},
		{"open client port, insecure", []string{"--nats-addr", "0.0.0.0:4222", "--nats-insecure"}, "", "NATS INSECURE"},
		{"client port with a password", []string{"--nats-addr", "0.0.0.0:4222", "--nats-password-file", lf.password}, "", ""},
		{"open route port", []string{"--nats-password-file", lf.password, "--nats-cluster-addr", "10.0.0.1:6222"}, "the route port 10.0.0.1:6222 accepts any server", ""},
		{"route port with mutual TLS", []string{"--nats-password-file", lf.password, "--nats-cluster-addr", "10.0.0.1:6222",
			"--nats-cert-file", lf.cert, "--nats-key-file", lf.key, "--nats-ca-file", lf.ca}, "", ""},
		{"route port with a password", []string{"--nats-password-file", lf.password, "--nats-cluster-addr", "10.0.0.1:6222", "--nats-cluster-password-file", lf.password}, "", ""},
		{"routes need the CA with a certificate", []string{"--nats-cluster-addr", "127.0.0.1:6222", "--nats-cert-file", lf.cert, "--nats-key-file", lf.key}, "--nats-ca-file is needed", ""},
		{"open leaf port", []string{"--nats-password-file", lf.password, "--nats-leaf-addr", "0.0.0.0:7422", "--nats-leaf-password-file", lf.password}, "", ""},
		{"leaf port without its own password", []string{"--nats-password-file", lf.password, "--nats-leaf-addr", "0.0.0.0:7422"}, "needs --nats-leaf-password-file", ""},
		{"unencrypted link to a remote hub", []string{"--nats-leaf-remotes", "nats-leaf://hub.example.com:7422"}, "the leaf-node link to hub.example.com:7422 is not encrypted", ""},
		{"a certificate without its key", []string{"--nats-cert-file", lf.cert}, "--nats-cert-file/--nats-key-file", ""},
		{"a CA without a certificate", []string{"--nats-ca-file", lf.ca}, "--nats-ca-file needs --nats-cert-file", ""},
		{"a missing password file", []string{"--nats-password-file", lf.missing}, "--nats-password-file", ""},
		{"a cluster password without a cluster", []string{"--nats-cluster-password-file", lf.password}, "needs --nats-cluster-addr", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlags("t", "t", &bytes.Buffer{})
			n := addNATSServerFlags(f)
			addr := f.String("nats-addr", "127.0.0.1:4222", "")
			cluster := f.String("nats-cluster-addr", "", "")
			leaf := f.String("nats-leaf-addr", "", "")
			remotes := f.String("nats-leaf-remotes", "", "")
			if err := f.parse(tc.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			cfg := embedded.NATSConfig{LeafRemotes: splitList(*remotes)}
			cfg.Host, cfg.Port, _ = splitHostPort(*addr)
			if *cluster != "" {
				cfg.ClusterName = "r"
				cfg.ClusterHost, cfg.ClusterPort, _ = splitHostPort(*cluster)
			}
			if *leaf != "" {
				cfg.LeafHost, cfg.LeafPort, _ = splitHostPort(*leaf)
			}
			warnings, err := n.apply(&cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if got := strings.Join(warnings, "\n"); (tc.warn == "") != (got == "") || !strings.Contains(got, tc.warn) {
				t.Fatalf("warnings = %q, want %q", got, tc.warn)
			}
			if err == nil && strings.Contains(fmt.Sprint(warnings), "s3cret") {
				t.Fatal("a password in a warning")
			}
		})
	}
}
