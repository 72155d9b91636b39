// The soak: natter bench's soak scenario against a gateway, a bridge and a
// persister as separate processes on real Kafka and PostgreSQL, for
// NATTER_SOAK (3 minutes by default; docs/performance.md has the hour-long
// run). The bench judges the footprint; this test adds the audit of
// PostgreSQL.
//
// The servers are built without the race detector: its runtime's own
// memory grows by megabytes a second under this load while natter's heap
// stays flat, so the RSS check would measure the detector, not natter.

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/natter-chat/natter/bench"
)

// soakDuration is NATTER_SOAK, or 3 minutes.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("NATTER_SOAK")
	if v == "" {
		return 3 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("NATTER_SOAK=%q: want a duration of 30s or more, like 3m or 1h", v)
	}
	return d
}

// plainNatter builds natter without the race detector.
func plainNatter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(natterBin), "natter-plain")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/natter").CombinedOutput(); err != nil {
		t.Fatalf("build natter: %v\n%s", err, out)
	}
	return bin
}

func TestSoakKeepsFootprintFlatAndLosesNothing(t *testing.T) {
	d := soakDuration(t)
	bin := plainNatter(t)
	kafka := service(t, "NATTER_TEST_KAFKA_BROKERS")
	db := freshDatabase(t)
	uniq := fmt.Sprint(time.Now().UnixNano())
	common := []string{"--kafka-brokers", kafka, "--kafka-topic", "e2e." + uniq}
	natsAddr := freeAddr(t)
	gw := startBin(t, bin, "127.0.0.1", "/readyz", append([]string{"gateway", "--open", "--id", "soak-gw",
		"--nats-addr", natsAddr, "--database-url", db, "--kafka-group", "e2e-" + uniq}, common...)...)
	br := startBin(t, bin, "127.0.0.1", "/readyz", append([]string{"bridge", "--nats-url", "nats://" + natsAddr}, common...)...)
	ps := startBin(t, bin, "127.0.0.1", "/readyz", append([]string{"persister", "--database-url", db, "--kafka-group", "e2e-" + uniq}, common...)...)

	runID := "soak" + uniq[len(uniq)-6:]
	cfg := bench.Config{
		URLs:        []string{"ws://" + gw.addr + "/ws"},
		MetricsURLs: []string{gw.url("/metrics"), br.url("/metrics"), ps.url("/metrics")},
		Scenario:    bench.ScenarioSoak, Conns: 500, Rate: 20, Churn: 2, Duration: d, RunID: runID,
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("natter bench --scenario soak: %v", err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("soak report:\n%s", text.String())
	for _, f := range rep.Soak.Failures {
		t.Errorf("soak: %s", f)
	}
	if rep.Soak.Reconnects == 0 || rep.Sent == 0 {
		t.Errorf("soak did no work: %d reopens, %d sent", rep.Soak.Reconnects, rep.Sent)
	}

	// Every acked message is in PostgreSQL, once.
	checkFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		conn, err := pgx.Connect(context.Background(), db)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var rows, distinct int64
		if err := conn.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT id) FROM messages WHERE room LIKE $1`,
			"bench-"+runID+"-%").Scan(&rows, &distinct); err != nil {
			return err
		}
		if rows != rep.Acks || distinct != rows {
			return fmt.Errorf("postgres holds %d rows (%d distinct ids) of the soak's rooms; %d messages were acked", rows, distinct, rep.Acks)
		}
		return nil
	})
}
