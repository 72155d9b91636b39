package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/natter-chat/natter"
)

// plain is the test broker's plaintext listener.
func plain(t *testing.T) Cluster {
	t.Helper()
	return Cluster{Brokers: []string{service(t, "NATTER_TEST_KAFKA_BROKERS")}}
}

// A resume from the zero id (a client that found the room empty asks
// for all of it) seeks by a time before 1970. Kafka refuses negative
// timestamps other than its own special ones, so the seek must start at
// the first record, not fail: a failed resume refuses the join, and the
// client could never rejoin the room.
func TestReadFromTheZeroIDReturnsTheWholeRoom(t *testing.T) {
	c := plain(t)
	topic := fmt.Sprintf("natter-test-zero-%d", time.Now().UnixNano())
	if err := EnsureTopic(c, topic, 2); err != nil {
		t.Fatal(err)
	}
	prod, err := NewProducer(c, topic, "natter-test")
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	g := natter.NewIDGen(nil)
	want := []string{}
	for i := range 3 {
		id := g.Next()
		m := natter.Message{ID: id.String(), Room: "quiet", User: "erin", Body: fmt.Sprint("m", i), TS: id.Time().UnixMilli()}
		data, _ := json.Marshal(m)
		done := make(chan error, 1)
		prod.Produce(m.Room, data, id.Time(), func(err error) { done <- err })
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	l, err := NewLog(c, topic, "natter-test-zero")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	pos, err := l.Start(ctx, "quiet", natter.ID{})
	if err != nil {
		t.Fatalf("Start from the zero id: %v", err)
	}
	msgs, more, err := l.Read(ctx, pos, "quiet", natter.ID{}, 10)
	if err != nil || more {
		t.Fatalf("Read: more %v, err %v", more, err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	// A replay since a time before 1970 starts at the first record too.
	ranges, err := l.Ranges(-1, time.UnixMilli(-5000))
	if err != nil {
		t.Fatalf("Ranges before 1970: %v", err)
	}
	n := int64(0)
	for _, r := range ranges {
		n += r.To - r.From
	}
	if n != 3 {
		t.Fatalf("ranges before 1970 hold %d records, want 3", n)
	}
}
