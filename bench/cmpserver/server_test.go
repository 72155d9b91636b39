package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/natter-chat/natter/bench"
)

// TestBenchCountsEveryDelivery drives the comparison server with the load
// generator: every member gets every message once.
func TestBenchCountsEveryDelivery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	url := "ws://" + ln.Addr().String() + "/ws"
	for _, cfg := range []bench.Config{
		{URLs: []string{url}, Scenario: bench.ScenarioFanout, Conns: 60, Publishers: 3, Rate: 200, Duration: time.Second},
		{URLs: []string{url}, Scenario: bench.ScenarioRooms, Conns: 60, RoomSize: "2-9", Rate: 200, Duration: time.Second},
	} {
		rep, err := bench.Run(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", cfg.Scenario, err)
		}
		if rep.Held != cfg.Conns || rep.Sent != 200 || rep.Lost != 0 || rep.Duplicated != 0 ||
			rep.Expected == 0 || rep.Delivered != rep.Expected || rep.Acks != rep.Sent {
			t.Errorf("%s: held %d sent %d acked %d, delivered %d of %d, lost %d, dup %d", cfg.Scenario,
				rep.Held, rep.Sent, rep.Acks, rep.Delivered, rep.Expected, rep.Lost, rep.Duplicated)
		}
		if rep.Servers[0].RSSEnd == 0 || rep.Servers[0].GoroutinesEnd == 0 {
			t.Errorf("server metrics not scraped: %+v", rep.Servers[0])
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
