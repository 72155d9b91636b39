// natter replay rebuilds PostgreSQL from the Kafka log, idempotently.

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func dumpMessages(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id || '|' || room || '|' || sender || '|' || coalesce(cid, '') || '|' || body || '|' || ts || '|' || region FROM messages ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReplayRebuildsTheDatabaseIdempotently(t *testing.T) {
	kafka := service(t, "NATTER_TEST_KAFKA_BROKERS")
	db := freshDatabase(t)
	topic := fmt.Sprintf("e2e.replay.%d", time.Now().UnixNano())
	p := startNatter(t, "--database-url", db, "--data-dir", t.TempDir(), "--kafka-brokers", kafka, "--kafka-topic", topic, "--kafka-group", "g-"+topic,
		"--rate-per-conn", "0", "--rate-per-user", "0")
	c := dial(t, p)
	c.connect("writer")
	c.join("a", "")
	c.join("b", "")
	const n = 600
	for k := 0; k < n; k++ {
		room := "a"
		if k%3 == 0 {
			room = "b"
		}
		c.sendJSON(map[string]any{"op": "send", "room": room, "cid": fmt.Sprint(k), "body": fmt.Sprintf("m %d <b>'\"", k)})
	}
	for k := 0; k < n; k++ {
		c.expect("ack")
	}
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		a, _ := pgCount(t, db, "a")
		b, _ := pgCount(t, db, "b")
		if a+b != n {
			return fmt.Errorf("%d rows", a+b)
		}
		return nil
	})
	p.stop()
	before := dumpMessages(t, db)

	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `DROP TABLE messages; DELETE FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())

	replay := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(natterBin, append([]string{"replay", "--kafka-brokers", kafka, "--kafka-topic", topic}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("natter replay %v: %v\n%s", args, err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	_, progress := replay("--database-url", db, "--from-offset", "0")
	if !strings.Contains(progress, fmt.Sprintf("%d/%d records", n, n)) || !strings.Contains(progress, fmt.Sprintf("%d new rows", n)) {
		t.Errorf("progress output does not report %d records and rows:\n%s", n, progress)
	}
	assertSameIDs(t, "rows after replay", dumpMessages(t, db), before)
	_, progress = replay("--database-url", db)
	if !strings.Contains(progress, "0 new rows") {
		t.Errorf("second replay changed rows:\n%s", progress)
	}
	assertSameIDs(t, "rows after a second replay", dumpMessages(t, db), before)

	printed, _ := replay("--room", "b", "--print")
	lines := strings.Split(strings.TrimSpace(printed), "\n")
	if len(lines) != n/3 {
		t.Fatalf("printed %d lines for room b, want %d", len(lines), n/3)
	}
	for _, l := range lines {
		if !strings.Contains(l, `"room":"b"`) {
			t.Fatalf("printed a message of another room: %s", l)
		}
	}
}
