// The load generator against a real natter: a short run in the normal
// suite, checking that every delivery is counted once (the figures are
// docs/performance.md's business, never asserted here).

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/natter-chat/natter/bench"
)

func TestBenchAgainstNatterLosesAndDuplicatesNothing(t *testing.T) {
	p, _ := startCore(t, brokers()[0])
	url := "ws://" + p.addr + "/ws"
	for _, cfg := range []bench.Config{
		{Scenario: bench.ScenarioFanout, Conns: 100, Publishers: 5, Rate: 100, Duration: 2 * time.Second},
		{Scenario: bench.ScenarioRooms, Conns: 100, RoomSize: "2-20", Rate: 100, Duration: time.Second},
		{Scenario: bench.ScenarioIdle, Conns: 100, Duration: time.Second},
	} {
		cfg.URLs = []string{url}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rep, err := bench.Run(ctx, cfg)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", cfg.Scenario, err)
		}
		if rep.Held != cfg.Conns || rep.Disconnects != 0 || rep.Lost != 0 || rep.Duplicated != 0 ||
			rep.Delivered != rep.Expected || rep.SendErrors != 0 {
			t.Errorf("%s: held %d, dropped %d (%s), delivered %d of %d, lost %d, duplicated %d, send errors %d", cfg.Scenario,
				rep.Held, rep.Disconnects, rep.DisconnectError, rep.Delivered, rep.Expected, rep.Lost, rep.Duplicated, rep.SendErrors)
		}
		if cfg.Rate > 0 && (rep.Sent != int64(cfg.Rate*cfg.Duration.Seconds()) || rep.Expected == 0) {
			t.Errorf("%s: sent %d, expected %d deliveries", cfg.Scenario, rep.Sent, rep.Expected)
		}
		if len(rep.Errors) > 0 {
			t.Errorf("%s: error frames %v", cfg.Scenario, rep.Errors)
		}
		if s := rep.Servers[0]; s.Err != "" || s.RSSEnd == 0 || s.GoroutinesEnd == 0 {
			t.Errorf("%s: server metrics %+v", cfg.Scenario, s)
		}
	}
}
