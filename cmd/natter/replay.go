// natter replay: rebuild PostgreSQL from the Kafka log, or print a room's
// log.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/postgres"
	"github.com/natter-chat/natter/protocol"
)

// runReplay writes the Kafka log into PostgreSQL again, or prints it
// with --print.
func (m *Main) runReplay(ctx context.Context, args []string) error {
	f := newFlags("natter replay", "natter replay: write the Kafka log into PostgreSQL again (idempotent), or print one room's log", m.Stderr)
	kf := addKafkaFlags(f, "Kafka brokers (host:port,...)")
	topic := f.String("kafka-topic", natter.DefaultTopic, "Kafka topic of the message log")
	db := addDatabaseFlags(f)
	fromOffset := f.Int("from-offset", -1, "start every partition at this offset (-1: the oldest)")
	fromTime := f.String("from-time", "", "start at the first record at or after this RFC 3339 time")
	room := f.String("room", "", "only this room's messages")
	printOnly := f.Bool("print", false, "print messages as JSON lines on stdout instead of writing PostgreSQL")
	batch := f.Int("batch-size", 2000, "rows per transaction")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	need := map[string]string{"--kafka-brokers": *kf.brokers}
	if !*printOnly {
		need["--database-url"] = *db.url
	}
	if err := required(need); err != nil {
		return err
	}
	if *room != "" {
		if err := natter.CheckRoom(*room); err != nil {
			return fmt.Errorf("--room: %w", err)
		}
	}
	since, err := replaySince(*fromTime)
	if err != nil {
		return err
	}
	log, err := m.logger("info")
	if err != nil {
		return err
	}
	cluster, err := kf.cluster()
	if err != nil {
		return err
	}
	var dbc postgres.Config
	if !*printOnly {
		if dbc, err = db.config(); err != nil {
			return err
		}
	}
	klog, err := kafka.NewLog(cluster, *topic, "")
	if err != nil {
		return err
	}
	defer klog.Close()
	ranges, err := klog.Ranges(int64(*fromOffset), since)
	if err != nil {
		return err
	}
	var total int64
	for _, r := range ranges {
		total += r.To - r.From
	}
	r := &replayer{out: m.Stdout, room: *room, print: *printOnly, batchSize: *batch, total: total, log: log, start: time.Now(), progress: m.Stderr}
	if !*printOnly {
		store, err := postgres.Open(ctx, dbc)
		if err != nil {
			return err
		}
		defer store.Close()
		r.store = store
	}
	fmt.Fprintf(m.Stderr, "replay: %d records in %d partitions of %s\n", total, len(ranges), *topic)
	return r.run(ctx, klog, ranges)
}

// replaySince parses --from-time: the zero time when it is empty.
func replaySince(fromTime string) (time.Time, error) {
	if fromTime == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, fromTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("--from-time %q: want RFC 3339, e.g. 2026-11-29T10:00:00Z", fromTime)
	}
	return t, nil
}

type replayer struct {
	out, progress io.Writer
	room          string
	print         bool
	store         *postgres.Store
	batchSize     int
	batch         []natter.Message
	total, done   int64
	matched       int64
	inserted      int64
	skipped       int64
	start         time.Time
	lastReport    time.Time
	log           *slog.Logger
}

// run replays the records of ranges, writes what is left of the last
// batch and prints the final progress line.
func (r *replayer) run(ctx context.Context, klog *kafka.Log, ranges []kafka.Range) error {
	err := klog.Scan(ctx, ranges, r.record)
	if err == nil {
		err = r.flush(ctx)
	}
	r.report(true)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}

func (r *replayer) record(rec kafka.Record) error {
	r.done++
	var msg natter.Message
	if err := json.Unmarshal(rec.Value, &msg); err != nil || natter.CheckRoom(msg.Room) != nil {
		r.skipped++
	} else if r.room == "" || msg.Room == r.room {
		r.matched++
		if r.print {
			b := protocol.Encode(protocol.Msg{Op: protocol.OpMsg, Room: msg.Room, ID: msg.ID, User: msg.User, Body: msg.Body, TS: msg.TS, Region: msg.Region})
			if _, err := fmt.Fprintf(r.out, "%s\n", b); err != nil {
				return err
			}
		} else {
			r.batch = append(r.batch, msg)
			if len(r.batch) >= r.batchSize {
				if err := r.flush(context.Background()); err != nil {
					return err
				}
			}
		}
	}
	if time.Since(r.lastReport) >= time.Second {
		r.report(false)
	}
	return nil
}

func (r *replayer) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	n, err := r.store.Insert(ctx, r.batch)
	if err != nil {
		return err
	}
	r.inserted += n
	r.batch = r.batch[:0]
	return nil
}

// report prints a progress line: records done/left, rate and ETA.
func (r *replayer) report(final bool) {
	r.lastReport = time.Now()
	el := time.Since(r.start).Seconds()
	rate := float64(r.done) / max(el, 1e-3)
	left := r.total - r.done
	eta := "-"
	if rate > 0 && left > 0 {
		eta = (time.Duration(float64(left)/rate) * time.Second).Round(time.Second).String()
	}
	what := fmt.Sprintf("%d new rows", r.inserted)
	if r.print {
		what = fmt.Sprintf("%d printed", r.matched)
	}
	fmt.Fprintf(r.progress, "replay: %d/%d records (%d left), %.0f/s, ETA %s, %s, %d skipped\n", r.done, r.total, left, rate, eta, what, r.skipped)
	if final {
		fmt.Fprintf(r.progress, "replay: done in %s\n", time.Since(r.start).Round(time.Millisecond))
	}
}
