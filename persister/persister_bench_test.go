package persister_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/postgres"
)

// need returns a service variable set by `scripts/services env`, failing
// the benchmark clearly when it is missing.
func need(b *testing.B, env string) string {
	b.Helper()
	v := os.Getenv(env)
	if v == "" {
		b.Fatalf("%s is not set: start the services with scripts/services start, then eval \"$(scripts/services env)\"", env)
	}
	return v
}

// BenchmarkPersisterFromKafka measures the persister end to end: b.N
// messages already in a Kafka topic (4 partitions, 50 rooms) are read by
// the consumer group and written into an empty PostgreSQL database;
// msgs/s is the sustained rate. Run it with a fixed count, e.g.
// -benchtime 100000x.
func BenchmarkPersisterFromKafka(b *testing.B) {
	brokers := strings.Split(need(b, "NATTER_TEST_KAFKA_BROKERS"), ",")
	base := need(b, "NATTER_TEST_DATABASE_URL")
	ctx := context.Background()
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE bench_p"+uniq); err != nil {
		b.Fatal(err)
	}
	admin.Close(ctx)
	b.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS bench_p"+uniq+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	store, err := postgres.Open(ctx, postgres.Config{URL: strings.Replace(base, "/natter?", "/bench_p"+uniq+"?", 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	topic := "bench.persister." + uniq
	if err := kafka.EnsureTopic(kafka.Cluster{Brokers: brokers}, topic, 4); err != nil {
		b.Fatal(err)
	}

	// Fill the topic.
	prod, err := kafka.NewProducer(kafka.Cluster{Brokers: brokers}, topic, "bench-producer")
	if err != nil {
		b.Fatal(err)
	}
	gen := natter.NewIDGen(nil)
	body := strings.Repeat("x", 100)
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	for i := 0; i < b.N; i++ {
		id := gen.Next()
		m := natter.Message{ID: id.String(), Room: fmt.Sprintf("room-%d", i%50), User: "bench", Body: body,
			TS: id.Time().UnixMilli(), Region: "local", CID: "c-" + id.String()}
		v, _ := json.Marshal(m)
		wg.Add(1)
		prod.Produce(m.Room, v, id.Time(), func(err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	_ = prod.Close()
	if perr != nil {
		b.Fatal(perr)
	}

	// Drain it into PostgreSQL.
	p, err := persister.New(persister.Config{Brokers: brokers, Topic: topic, Group: "bench-" + uniq, Store: store,
		Sarama: kafka.NewConfig("bench-persister"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := store.Pool().QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages stored after 5 minutes", n, b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
