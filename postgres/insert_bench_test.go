package postgres_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/postgres"
)

// benchStore opens a store on a fresh database of the test PostgreSQL
// (NATTER_TEST_DATABASE_URL, set by scripts/services env), dropped after.
func benchStore(b *testing.B) *postgres.Store {
	b.Helper()
	base := os.Getenv("NATTER_TEST_DATABASE_URL")
	if base == "" {
		b.Fatal("NATTER_TEST_DATABASE_URL is not set: start PostgreSQL with scripts/services start, then eval \"$(scripts/services env)\"")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatalf("connect %s: %v", base, err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	s, err := postgres.Open(ctx, postgres.Config{URL: strings.Replace(base, "/natter?", "/"+name+"?", 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// BenchmarkInsertBatch measures the persister's write: one idempotent
// insert of a batch of 2,000 new messages (its default batch size) into a
// growing table. rows/s is the figure to compare with the persister target.
func BenchmarkInsertBatch(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	gen := natter.NewIDGen(nil)
	const batch = 2000
	msgs := make([]natter.Message, batch)
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		b.StopTimer()
		for i := range msgs {
			id := gen.Next()
			msgs[i] = natter.Message{ID: id.String(), Room: fmt.Sprintf("room-%d", i%50), User: "bench", Body: body,
				TS: id.Time().UnixMilli(), Region: "local", CID: "c-" + id.String()}
		}
		b.StartTimer()
		n, err := s.Insert(ctx, msgs)
		if err != nil || n != batch {
			b.Fatalf("insert: %d rows, %v", n, err)
		}
		rows += batch
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkInsertReplayedBatch measures a batch that is already stored, as
// after a persister restart replays from its last committed offset.
func BenchmarkInsertReplayedBatch(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	gen := natter.NewIDGen(nil)
	msgs := make([]natter.Message, 2000)
	for i := range msgs {
		id := gen.Next()
		msgs[i] = natter.Message{ID: id.String(), Room: "lobby", User: "bench", Body: "hello", TS: id.Time().UnixMilli(), Region: "local"}
	}
	if _, err := s.Insert(ctx, msgs); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if n, err := s.Insert(ctx, msgs); err != nil || n != 0 {
			b.Fatalf("replay inserted %d rows, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "rows/s")
}
