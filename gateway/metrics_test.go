package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
	"github.com/natter-chat/natter/postgres"
)

type noLog struct{}

func (noLog) Mark(context.Context, string, natter.ID) (LogTail, error) {
	return nil, errors.New("none")
}

// natter_ready says what /readyz says, with one natter_ready_check per
// check.
func TestReadinessMetricsFollowTheChecks(t *testing.T) {
	kafkaErr := errors.New("kafka: no brokers")
	var kafkaDown bool
	g, err := New(Config{NATS: natstest.Conn(t), History: (*postgres.Store)(nil), DurableLog: noLog{}, Open: true,
		Checks: map[string]func(context.Context) error{
			"postgres": func(context.Context) error { return nil },
			"kafka": func(context.Context) error {
				if kafkaDown {
					return kafkaErr
				}
				return nil
			},
		}})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReadyCollector(g)
	want := func(ready, kafka string) string {
		return `
# HELP natter_ready 1 when the gateway is ready (/readyz answers 200), checked at each scrape.
# TYPE natter_ready gauge
natter_ready ` + ready + `
# HELP natter_ready_check 1 when the readiness check passes, by check.
# TYPE natter_ready_check gauge
natter_ready_check{check="gateway"} 1
natter_ready_check{check="kafka"} ` + kafka + `
natter_ready_check{check="nats"} 1
natter_ready_check{check="postgres"} 1
`
	}
	if err := testutil.CollectAndCompare(rc, strings.NewReader(want("1", "1"))); err != nil {
		t.Error(err)
	}
	kafkaDown = true
	if err := testutil.CollectAndCompare(rc, strings.NewReader(want("0", "0"))); err != nil {
		t.Error(err)
	}
}
