package gateway

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/embedded/natstest"
)

// Joins and leaves of the same rooms from many goroutines: a join that
// returns has its connection in the room the hub holds (never in one that
// emptied meanwhile), and once everyone left, the hub holds no room and
// follows none on NATS.
func TestConcurrentJoinsAndLeavesKeepTheHubExact(t *testing.T) {
	nc := natstest.Conn(t)
	g := testGateway()
	g.hub = newHub(oneConn(nc), "gw-test", "local", time.Second, nil, g.log, g.met)
	before := nc.NumSubscriptions()
	pairs := dialPairs(t, g, 8)
	for i, p := range pairs {
		p.c.user = fmt.Sprintf("u%d", i%3) // some users on two connections
	}
	rooms := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	errs := make(chan error, len(pairs))
	for _, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				name := rooms[i%len(rooms)]
				if _, err := g.hub.join(p.c, name); err != nil {
					errs <- err
					return
				}
				g.hub.mu.Lock()
				r := g.hub.rooms[name]
				g.hub.mu.Unlock()
				r.mu.RLock()
				_, in := r.conns[p.c]
				closed := r.closed
				r.mu.RUnlock()
				if !in || closed {
					errs <- fmt.Errorf("join %d of %s returned, but the hub's room has the conn %v, closed %v", i, name, in, closed)
					return
				}
				g.hub.leave(p.c, name)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(g.hub.names()); n != 0 {
		t.Fatalf("%d rooms left after everyone left: %v", n, g.hub.names())
	}
	if n := nc.NumSubscriptions(); n != before {
		t.Fatalf("%d NATS subscriptions after everyone left, want %d", n, before)
	}
}
