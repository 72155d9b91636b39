// Tests for the in-process NATS server: in-process clients, a two-node
// route cluster, and the start-up errors a user can run into.

package embedded

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func startNATS(t *testing.T, cfg NATSConfig) *NATS {
	t.Helper()
	n, err := StartNATS(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	t.Cleanup(func() { mustNotErr(t, "close nats", n.Close()) })
	return n
}

func connectNATS(t *testing.T, n *NATS, name string) *nats.Conn {
	t.Helper()
	nc, err := n.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestNATSInProcessConnectionsPublishAndSubscribe(t *testing.T) {
	n := startNATS(t, NATSConfig{ServerName: "solo", DontListen: true})
	if u := n.ClientURL(); u != "" {
		t.Errorf("ClientURL with DontListen = %q, want empty", u)
	}
	subConn := connectNATS(t, n, "sub")
	sub, err := subConn.SubscribeSync("room.lobby")
	if err != nil {
		t.Fatal(err)
	}
	// Flush: the server must have the subscription before another
	// connection publishes.
	if err := subConn.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := connectNATS(t, n, "pub")
	if err := pub.Publish("room.lobby", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no message: %v", err)
	}
	if string(msg.Data) != "hello" {
		t.Errorf("got %q, want hello", msg.Data)
	}
}

func TestNATSRouteClusterDeliversAcrossNodes(t *testing.T) {
	a := startNATS(t, NATSConfig{ServerName: "a", ClusterName: "natter-test"})
	b := startNATS(t, NATSConfig{ServerName: "b", ClusterName: "natter-test", Routes: []string{a.ClusterURL()}})
	if !strings.HasPrefix(a.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL = %q, want a 127.0.0.1 URL", a.ClientURL())
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a.srv.NumRoutes() == 0 || b.srv.NumRoutes() == 0 {
			return fmt.Errorf("routes: a=%d b=%d", a.srv.NumRoutes(), b.srv.NumRoutes())
		}
		return nil
	})

	onB := connectNATS(t, b, "sub-on-b")
	sub, err := onB.SubscribeSync("room.far")
	if err != nil {
		t.Fatal(err)
	}
	if err := onB.Flush(); err != nil {
		t.Fatal(err)
	}
	// Interest crosses the route asynchronously; a message published on A
	// before A knows of B's subscriber would be dropped, as NATS does.
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !a.srv.GlobalAccount().SubscriptionInterest("room.far") {
			return errors.New("node a has no interest in room.far yet")
		}
		return nil
	})

	// Publish over TCP this time, to cover the client listener too.
	onA, err := nats.Connect(a.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer onA.Close()
	if err := onA.Publish("room.far", []byte("across")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("message published on a did not arrive on b: %v", err)
	}
	if string(msg.Data) != "across" {
		t.Errorf("got %q, want across", msg.Data)
	}
}

// Links names the server at the other end of each route, and drops a
// route when its server goes.
func TestNATSLinksFollowTheRoutes(t *testing.T) {
	a := startNATS(t, NATSConfig{ServerName: "a", ClusterName: "natter-test", ClusterAdvertise: "127.0.0.1:1"})
	b := startNATS(t, NATSConfig{ServerName: "b", ClusterName: "natter-test", Routes: []string{a.ClusterURL()}})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		la, erra := a.Links()
		lb, errb := b.Links()
		if erra != nil || errb != nil || len(la) == 0 || len(lb) == 0 {
			return fmt.Errorf("links: a=%v b=%v", la, lb)
		}
		for _, l := range la {
			if l.Remote != "b" || !strings.HasPrefix(l.ID, "route:") {
				return fmt.Errorf("a's link %+v: want a route to b", l)
			}
		}
		for _, l := range lb {
			if l.Remote != "a" {
				return fmt.Errorf("b's link %+v: want a route to a", l)
			}
		}
		return nil
	})
	b.Close()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if la, err := a.Links(); err != nil || len(la) != 0 {
			return fmt.Errorf("a still lists %v after b closed", la)
		}
		return nil
	})
}

func TestNATSRejectsConfigsItCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  NATSConfig
		want string
	}{
		{"cluster without client listener", NATSConfig{DontListen: true, ClusterName: "c"}, "DontListen must be false"},
		{"routes without cluster name", NATSConfig{Routes: []string{"nats://127.0.0.1:6222"}}, "need ClusterName"},
		{"route that is not a URL", NATSConfig{ClusterName: "c", Routes: []string{"127.0.0.1:6222"}}, "not a nats://host:port URL"},
		{"advertise that is not host:port", NATSConfig{ClusterName: "c", ClusterAdvertise: "nats://proxy"}, "not host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := StartNATS(tc.cfg, testLogger(t))
			if err == nil {
				n.Close()
				t.Fatal("StartNATS succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestNATSReportsTakenPortInOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	n, err := StartNATS(NATSConfig{Port: port}, testLogger(t))
	if err == nil {
		n.Close()
		t.Fatal("StartNATS succeeded on a taken port")
	}
	var inUse *PortInUseError
	if !errors.As(err, &inUse) || inUse.Addr != ln.Addr().String() {
		t.Errorf("error = %v, want a PortInUseError for %s", err, ln.Addr())
	}
}

func TestNATSCloseIsIdempotent(t *testing.T) {
	n, err := StartNATS(NATSConfig{DontListen: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Connect("late"); err == nil {
		t.Error("Connect after Close succeeded")
	}
}

func TestNATSLeafNodeReachesHubBothWays(t *testing.T) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	hub := startNATS(t, NATSConfig{ServerName: "hub", LeafPort: port})
	leafURL := fmt.Sprintf("nats-leaf://127.0.0.1:%d", port)
	edge := startNATS(t, NATSConfig{ServerName: "edge", DontListen: true, LeafRemotes: []string{leafURL}})
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if hub.srv.NumLeafNodes() == 0 {
			return errors.New("edge has not connected to the hub yet")
		}
		return nil
	})
	onHub := connectNATS(t, hub, "on-hub")
	onEdge := connectNATS(t, edge, "on-edge")
	fromEdge, err := onHub.SubscribeSync("room.up")
	if err != nil {
		t.Fatal(err)
	}
	fromHub, err := onEdge.SubscribeSync("room.down")
	if err != nil {
		t.Fatal(err)
	}
	_ = onHub.Flush()
	_ = onEdge.Flush()
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if !edge.srv.GlobalAccount().SubscriptionInterest("room.up") || !hub.srv.GlobalAccount().SubscriptionInterest("room.down") {
			return errors.New("interest has not crossed the leaf connection yet")
		}
		return nil
	})
	if err := onEdge.Publish("room.up", []byte("up")); err != nil {
		t.Fatal(err)
	}
	if err := onHub.Publish("room.down", []byte("down")); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[*nats.Subscription]string{fromEdge: "up", fromHub: "down"} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != want {
			t.Fatalf("leaf message %q: %v, %v", want, m, err)
		}
	}
}
