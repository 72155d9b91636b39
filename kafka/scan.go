// Scanning the log from given offsets to its end, for replay.

package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
)

// Range is a part of one partition: [From, To).
type Range struct {
	Partition int32
	From, To  int64
}

// Ranges returns, for every partition of the topic, the range from the
// first offset at or after since (the oldest offset if since is zero),
// or from offset from if it is not negative, to the end of the partition
// now.
func (l *Log) Ranges(from int64, since time.Time) ([]Range, error) {
	parts, err := l.client.Partitions(l.topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: partitions of %s: %w", l.topic, err)
	}
	out := make([]Range, 0, len(parts))
	for _, p := range parts {
		oldest, err := l.client.GetOffset(l.topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("kafka: oldest offset of %s/%d: %w", l.topic, p, err)
		}
		end, err := l.client.GetOffset(l.topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("kafka: newest offset of %s/%d: %w", l.topic, p, err)
		}
		start := oldest
		switch {
		case !since.IsZero():
			if start, err = l.client.GetOffset(l.topic, p, seekTime(since)); err != nil {
				return nil, fmt.Errorf("kafka: offset by time in %s/%d: %w", l.topic, p, err)
			}
			if start < 0 {
				start = end
			}
		case from >= 0:
			start = max(from, oldest)
		}
		out = append(out, Range{Partition: p, From: min(start, end), To: end})
	}
	return out, nil
}

// Record is one record of a scan.
type Record struct {
	Partition int32
	Offset    int64
	Value     []byte
}

// Scan reads every range concurrently and calls fn with each record, one
// call at a time; records of one partition come in offset order.
func (l *Log) Scan(ctx context.Context, ranges []Range, fn func(Record) error) error {
	c, err := sarama.NewConsumerFromClient(l.client)
	if err != nil {
		return fmt.Errorf("kafka: consumer: %w", err)
	}
	defer c.Close()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, r := range ranges {
		if r.From >= r.To {
			continue
		}
		pc, err := c.ConsumePartition(l.topic, r.Partition, r.From)
		if err != nil {
			// Stops the partitions already being read, and is Wait's error.
			g.Go(func() error { return fmt.Errorf("kafka: read %s/%d from %d: %w", l.topic, r.Partition, r.From, err) })
			break
		}
		g.Go(func() error {
			defer pc.AsyncClose()
			for {
				select {
				case <-gctx.Done():
					return nil
				case e := <-pc.Errors():
					return fmt.Errorf("kafka: read %s/%d: %w", l.topic, r.Partition, e)
				case m := <-pc.Messages():
					mu.Lock()
					err := fn(Record{Partition: m.Partition, Offset: m.Offset, Value: m.Value})
					mu.Unlock()
					if err != nil {
						return err
					}
					if m.Offset >= r.To-1 {
						return nil
					}
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
