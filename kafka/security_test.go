package kafka

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/tlsconf"
)

// service returns a variable of scripts/services; the suite needs them.
func service(t *testing.T, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: run the suite with ./scripts/test, which starts Kafka with a SASL_SSL listener", env)
	}
	return v
}

// secured is the test broker's SASL_SSL listener with the right
// credentials and CA.
func secured(t *testing.T, mechanism string) Cluster {
	t.Helper()
	pw, err := os.ReadFile(service(t, "NATTER_TEST_KAFKA_PASSWORD_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tlsconf.Files{CA: filepath.Join(service(t, "NATTER_TEST_TLS_DIR"), "ca.pem")}.Client()
	if err != nil {
		t.Fatal(err)
	}
	return Cluster{Brokers: strings.Split(service(t, "NATTER_TEST_KAFKA_SASL_BROKERS"), ","), TLS: tc,
		SASL: SASL{Mechanism: mechanism, User: service(t, "NATTER_TEST_KAFKA_SASL_USER"), Password: strings.TrimSpace(string(pw))}}
}

// TestSASLOverTLSProducesAndReads writes and reads a message over the
// broker's SASL_SSL listener with each mechanism natter speaks, and with
// a client certificate (mutual TLS) as well.
func TestSASLOverTLSProducesAndReads(t *testing.T) {
	dir := service(t, "NATTER_TEST_TLS_DIR")
	for _, tc := range []struct {
		mechanism string
		clientTLS bool
	}{{MechanismPlain, false}, {MechanismSCRAMSHA256, false}, {MechanismSCRAMSHA512, false}, {MechanismSCRAMSHA512, true}} {
		t.Run(fmt.Sprintf("%s/mTLS=%v", tc.mechanism, tc.clientTLS), func(t *testing.T) {
			c := secured(t, tc.mechanism)
			if tc.clientTLS {
				var err error
				c.TLS, err = tlsconf.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client-key.pem")}.Client()
				if err != nil {
					t.Fatal(err)
				}
			}
			topic := fmt.Sprintf("security-test-%d", time.Now().UnixNano())
			if err := EnsureTopic(c, topic, 1); err != nil {
				t.Fatal(err)
			}
			p, err := NewProducer(c, topic, "security-test")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			p.Produce("room", []byte(`{"id":"x"}`), time.Now(), func(err error) { done <- err })
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			_ = p.Close()
			l, err := NewLog(c, topic, "")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ranges, err := l.Ranges(0, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ranges) != 1 || ranges[0].To != 1 {
				t.Fatalf("ranges = %+v, want one record", ranges)
			}
		})
	}
}

// TestSecuredLinkRefusalsSayWhatFailed connects with a wrong password,
// against an untrusted certificate, and with TLS to a plaintext
// listener, and checks each error names the check that failed.
func TestSecuredLinkRefusalsSayWhatFailed(t *testing.T) {
	other, err := tlsconf.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if err := other.WriteCA(otherDir); err != nil {
		t.Fatal(err)
	}
	untrusting, err := tlsconf.Files{CA: filepath.Join(otherDir, "ca.pem")}.Client()
	if err != nil {
		t.Fatal(err)
	}
	wrongPW := secured(t, MechanismSCRAMSHA256)
	wrongPW.SASL.Password += "-wrong"
	wrongPlain := secured(t, MechanismPlain)
	wrongPlain.SASL.Password = "nope"
	untrusted := secured(t, MechanismSCRAMSHA512)
	untrusted.TLS = untrusting
	tlsToPlain := secured(t, MechanismPlain)
	tlsToPlain.Brokers = strings.Split(service(t, "NATTER_TEST_KAFKA_BROKERS"), ",")
	for _, tc := range []struct {
		name string
		c    Cluster
		want string
	}{
		{"wrong SCRAM password", wrongPW, "SASL authentication failed"},
		{"wrong PLAIN password", wrongPlain, "SASL authentication failed"},
		{"untrusted broker certificate", untrusted, "not signed by a trusted CA"},
		{"TLS to a plaintext listener", tlsToPlain, "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			err := EnsureTopic(c, "never-created", 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if pw := c.SASL.Password; strings.Contains(err.Error(), pw) {
				t.Fatalf("the password is in the error: %v", err)
			}
			if !strings.Contains(err.Error(), c.Brokers[0]) {
				t.Fatalf("the error does not name the broker: %v", err)
			}
		})
	}
}
