// Reading the durable log back: the tail of a room not yet in PostgreSQL,
// for resume.

package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/natter-chat/natter"
)

// seekMargin widens a seek by time against clock differences between the
// gateway that stamped an id and the record timestamp.
const seekMargin = 2 * time.Second

// Log reads a topic's records back.
type Log struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	topic  string
	group  string
}

// Position is where a room's tail starts in the log.
type Position struct {
	Partition int32
	Offset    int64
}

// NewLog connects a reader of topic; group is the persister's consumer
// group, whose committed offsets mark what PostgreSQL already holds.
func NewLog(c Cluster, topic, group string) (*Log, error) {
	client, err := sarama.NewClient(c.Brokers, c.Config("natter-log"))
	if err != nil {
		return nil, fmt.Errorf("kafka: log reader for %s: %w", c, Explain(err))
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("kafka: log admin: %w", err)
	}
	return &Log{client: client, admin: admin, topic: topic, group: group}, nil
}

// Close closes the reader.
func (l *Log) Close() error { return l.admin.Close() }

// Ping checks a broker answers for the topic.
func (l *Log) Ping(context.Context) error {
	if err := l.client.RefreshMetadata(l.topic); err != nil {
		return fmt.Errorf("kafka: metadata for %s: %w", l.topic, err)
	}
	return nil
}

// Start returns where the part of room's log that the persister has not
// yet committed begins, skipping records older than since's time. Read it
// before reading PostgreSQL: everything before it is in PostgreSQL then.
func (l *Log) Start(ctx context.Context, room string, since natter.ID) (Position, error) {
	parts, err := l.client.Partitions(l.topic)
	if err != nil {
		return Position{}, fmt.Errorf("kafka: partitions of %s: %w", l.topic, err)
	}
	p, err := partitionOf(l.topic, room, int32(len(parts)))
	if err != nil {
		return Position{}, err
	}
	committed := int64(-1)
	res, err := l.admin.ListConsumerGroupOffsets(l.group, map[string][]int32{l.topic: {p}})
	// A group that never committed is an error on some brokers and -1 on
	// others; either way nothing of this partition is known to be stored.
	if err == nil {
		if b := res.GetBlock(l.topic, p); b != nil && b.Err == sarama.ErrNoError {
			committed = b.Offset
		}
	}
	byTime, err := l.client.GetOffset(l.topic, p, seekTime(since.Time().Add(-seekMargin)))
	if err != nil {
		return Position{}, fmt.Errorf("kafka: offset by time in %s/%d: %w", l.topic, p, err)
	}
	if byTime < 0 { // no record that new: start at the end
		byTime, err = l.client.GetOffset(l.topic, p, sarama.OffsetNewest)
		if err != nil {
			return Position{}, fmt.Errorf("kafka: newest offset of %s/%d: %w", l.topic, p, err)
		}
	}
	return Position{Partition: p, Offset: max(committed, byTime)}, nil
}

// seekTime is t as a timestamp to seek by. Kafka reserves negative
// timestamps for its special offsets (-1 newest, -2 oldest, …) and refuses
// others, so a time before 1970 — the zero id's, "the whole room", less
// seekMargin — seeks from the first record.
func seekTime(t time.Time) int64 { return max(t.UnixMilli(), 0) }

// Read returns room's messages with ids after since from pos up to the end
// of the partition as it is when Read starts, at most limit of them; more
// reports whether the limit cut the result.
func (l *Log) Read(ctx context.Context, pos Position, room string, since natter.ID, limit int) (msgs []natter.Message, more bool, err error) {
	end, err := l.client.GetOffset(l.topic, pos.Partition, sarama.OffsetNewest)
	if err != nil {
		return nil, false, fmt.Errorf("kafka: newest offset of %s/%d: %w", l.topic, pos.Partition, err)
	}
	if pos.Offset >= end {
		return nil, false, nil
	}
	// A consumer per read: sarama allows one consumer of a partition per
	// Consumer, and concurrent resumes may read the same partition.
	c, err := sarama.NewConsumerFromClient(l.client)
	if err != nil {
		return nil, false, fmt.Errorf("kafka: consumer: %w", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(l.topic, pos.Partition, pos.Offset)
	if err != nil {
		return nil, false, fmt.Errorf("kafka: read %s/%d from %d: %w", l.topic, pos.Partition, pos.Offset, err)
	}
	defer pc.AsyncClose()
	sinceStr := since.String()
	for {
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case e := <-pc.Errors():
			return nil, false, fmt.Errorf("kafka: read %s/%d: %w", l.topic, pos.Partition, e)
		case r := <-pc.Messages():
			if string(r.Key) == room {
				var m natter.Message
				if err := json.Unmarshal(r.Value, &m); err == nil && m.Room == room && m.ID > sinceStr {
					if len(msgs) == limit {
						return msgs, true, nil
					}
					msgs = append(msgs, m)
				}
			}
			if r.Offset >= end-1 {
				return msgs, false, nil
			}
		}
	}
}
