package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded"
)

// twoHubs are two gateways' hubs on one NATS server, each with its own
// connection, as two gateways of a region are.
func twoHubs(t *testing.T, pendingB func(string) []natter.Message) (a, b *hub) {
	t.Helper()
	ns, err := embedded.StartNATS(embedded.NATSConfig{DontListen: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mk := func(id string, pending func(string) []natter.Message) *hub {
		nc, err := ns.Connect(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		h := newHub(oneConn(nc), id, "local", time.Second, pending, log, newMetrics())
		if err := h.listen(); err != nil {
			t.Fatal(err)
		}
		return h
	}
	none := func(string) []natter.Message { return nil }
	b = mk("gw-b", pendingB)
	a = mk("gw-a", none)
	waitFor(t, func() bool { return len(a.peerList()) == 1 && len(b.peerList()) == 1 }, "the hubs to hear of each other")
	return a, b
}

// A resume gets another gateway's messages that are not durable yet,
// however many, even when that gateway has no members it has told about.
func TestFlushReturnsTheOtherGatewaysPendingMessages(t *testing.T) {
	gen := natter.NewIDGen(nil)
	var want []natter.Message
	for range 300 {
		// '<' is 6 bytes in JSON: 300 × 24 KiB encoded, far more than
		// one NATS message may carry.
		want = append(want, natter.Message{ID: gen.Next().String(), Room: "r", User: "bob", Body: strings.Repeat("<", 4<<10), Region: "local"})
	}
	other := natter.Message{ID: gen.Next().String(), Room: "elsewhere", User: "bob", Body: "x"}
	a, _ := twoHubs(t, func(room string) []natter.Message {
		if room == "r" {
			return want
		}
		return []natter.Message{other}
	})
	got, err := a.flush(context.Background(), "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("flush returned %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Body != want[i].Body {
			t.Fatalf("message %d: got %s (%d bytes), want %s", i, got[i].ID, len(got[i].Body), want[i].ID)
		}
	}
}

// With no other gateway in the region, a flush asks nobody.
func TestFlushAloneAsksNobody(t *testing.T) {
	h := newHub(oneConn(nil), "gw", "local", time.Second, nil, nil, newMetrics())
	got, err := h.flush(context.Background(), "r", nil)
	if err != nil || got != nil {
		t.Fatalf("flush alone: %v, %v", got, err)
	}
}

// A gateway silent for three intervals is forgotten.
func TestSilentGatewaysAreForgotten(t *testing.T) {
	a, _ := twoHubs(t, func(string) []natter.Message { return nil })
	a.beat(time.Now().Add(2*time.Second), false)
	if len(a.peerList()) != 1 {
		t.Fatal("a gateway heard from 2 s (two intervals) ago was forgotten")
	}
	a.beat(time.Now().Add(4*time.Second), false)
	if len(a.peerList()) != 0 {
		t.Fatalf("a gateway silent for 4 intervals is still known: %v", a.peerList())
	}
}

// gatedListener forwards TCP connections to target once opened, and
// refuses them before: a route that comes up only after its ends started.
func gatedListener(t *testing.T, target string) (addr string, open func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var opened atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !opened.Load() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), func() { opened.Store(true) }
}

// Two gateways that say hello before the route between their NATS
// servers is up still hear of each other while they wait for peers: the
// hello is said again until answered.
func TestHelloBeforeTheRouteIsUpIsSaidAgain(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(cfg embedded.NATSConfig) *embedded.NATS {
		ns, err := embedded.StartNATS(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ns.Close() })
		return ns
	}
	sa := start(embedded.NATSConfig{ServerName: "a", ClusterName: "natter-test"})
	route, open := gatedListener(t, strings.TrimPrefix(sa.ClusterURL(), "nats://"))
	sb := start(embedded.NATSConfig{ServerName: "b", ClusterName: "natter-test", Routes: []string{"nats://" + route}})
	mk := func(ns *embedded.NATS, id string) *hub {
		nc, err := ns.Connect(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		h := newHub(oneConn(nc), id, "local", time.Hour, nil, log, newMetrics())
		if err := h.listen(); err != nil { // says hello: nobody hears it yet
			t.Fatal(err)
		}
		return h
	}
	a, b := mk(sa, "gw-a"), mk(sb, "gw-b")
	if sa.Routes() != 0 {
		t.Fatal("the route is up before the gate opened")
	}
	open()
	ctx := context.Background()
	done := make(chan struct{})
	go func() { b.awaitPeers(ctx, 30*time.Second); close(done) }()
	a.awaitPeers(ctx, 30*time.Second)
	<-done
	if len(a.peerList()) != 1 || len(b.peerList()) != 1 {
		t.Fatalf("after waiting for peers: a knows %v, b knows %v", a.peerList(), b.peerList())
	}
}
