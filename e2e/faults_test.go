// The fault-injection suite: a steady chat load on a two-region topology,
// one fault at a time, recovery, then an audit of every acked id against
// PostgreSQL and against what each member received.

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/natter-chat/natter"
)

// chatter is a client that behaves like a good application: it sends at a
// steady rate, keeps an outbox of unacked messages, reconnects to any
// gateway of its region when its connection breaks, resumes every room
// with a small overlap and resends the outbox with retry. Its first join
// asks for everything since the load started, as an application does
// that shows a conversation from a point in time: a join without since
// means "from now on", and the other chatters start sending at once.
type chatter struct {
	t     *testing.T
	name  string
	rooms []string
	gws   []*proc
	start time.Time // the load's start: the first join's since

	mu       sync.Mutex
	seq      int
	outbox   map[string]outMsg    // cid → message
	acked    map[string]string    // cid → id
	got      map[string]bool      // ids received
	gotBody  map[string]time.Time // bodies (each its cid) received, when first
	refused  map[string]bool      // cids a send of which was refused with an error
	errs     map[string]int       // error frames by code
	dupConn  int                  // an id delivered twice on one connection
	newestTS int64
	sending  bool
	conns    int
	joined   int // joined frames received, over all connections
}

type outMsg struct {
	room, body       string
	sentAt, resendAt time.Time
}

func newChatter(t *testing.T, name string, rooms []string, gws []*proc, start time.Time) *chatter {
	return &chatter{t: t, name: name, rooms: rooms, gws: gws, start: start, outbox: map[string]outMsg{}, acked: map[string]string{}, got: map[string]bool{},
		gotBody: map[string]time.Time{}, refused: map[string]bool{}, errs: map[string]int{}, sending: true}
}

// run keeps the chatter connected and talking until ctx ends.
func (c *chatter) run(ctx context.Context, every time.Duration) {
	for i := 0; ctx.Err() == nil; i++ {
		gw := c.gws[i%len(c.gws)]
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.addr+"/ws", nil)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		c.session(ctx, ws, every)
		ws.Close()
	}
}

func (c *chatter) session(ctx context.Context, ws *websocket.Conn, every time.Duration) {
	c.mu.Lock()
	c.conns++
	since := natter.MinIDAt(c.start).String()
	if c.newestTS > 0 {
		// Overlap 10 s: other gateways' messages may arrive out of id order.
		since = natter.MinIDAt(time.UnixMilli(c.newestTS - 10_000)).String()
	}
	c.mu.Unlock()
	var wmu sync.Mutex
	write := func(v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return ws.WriteJSON(v)
	}
	if write(map[string]any{"op": "connect", "user": c.name}) != nil {
		return
	}
	for _, r := range c.rooms {
		if write(map[string]any{"op": "join", "room": r, "since": since}) != nil {
			return
		}
	}
	// Resend everything unacked, marked as a retry.
	c.mu.Lock()
	resend := map[string]outMsg{}
	for cid, m := range c.outbox {
		resend[cid] = m
	}
	c.mu.Unlock()
	for cid, m := range resend {
		if write(map[string]any{"op": "send", "room": m.room, "cid": cid, "body": m.body, "retry": true}) != nil {
			return
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				ws.Close()
				return
			case now := <-t.C:
				c.mu.Lock()
				var msgs []map[string]any
				if c.sending {
					c.seq++
					cid := fmt.Sprintf("%s-%d", c.name, c.seq)
					room := c.rooms[c.seq%len(c.rooms)]
					c.outbox[cid] = outMsg{room: room, body: cid, sentAt: now, resendAt: now.Add(5 * time.Second)}
					msgs = append(msgs, map[string]any{"op": "send", "room": room, "cid": cid, "body": cid})
				}
				// A message refused as unavailable is tried again later.
				for cid, m := range c.outbox {
					if now.After(m.resendAt) {
						m.resendAt = now.Add(5 * time.Second)
						c.outbox[cid] = m
						msgs = append(msgs, map[string]any{"op": "send", "room": m.room, "cid": cid, "body": m.body, "retry": true})
					}
				}
				c.mu.Unlock()
				for _, m := range msgs {
					if write(m) != nil {
						return
					}
				}
			}
		}
	}()
	// A member gives up on a connection only when the gateway goes
	// silent: no frame and no ping for longer than its ping interval
	// (30 s). An idle member must not reconnect, for a reconnect resumes
	// and would hide what live delivery missed.
	const silence = 75 * time.Second
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(silence))
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	onConn := map[string]bool{}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(silence))
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			var f frame
			if json.Unmarshal([]byte(line), &f) != nil {
				continue
			}
			c.mu.Lock()
			switch f.Op {
			case "msg":
				if onConn[f.ID] {
					c.dupConn++
				}
				onConn[f.ID] = true
				c.got[f.ID] = true
				if _, ok := c.gotBody[f.Body]; !ok {
					c.gotBody[f.Body] = time.Now()
				}
				if f.TS > c.newestTS {
					c.newestTS = f.TS
				}
			case "joined":
				c.joined++
			case "ack":
				c.acked[f.CID] = f.ID
				delete(c.outbox, f.CID)
			case "error":
				c.errs[f.Code]++
				if _, ok := c.outbox[f.Ref]; ok {
					c.refused[f.Ref] = true
				}
			}
			c.mu.Unlock()
		}
	}
}

// conns counts the connections the run's members have opened.
func (fr *faultRun) conns() int {
	n := 0
	for _, c := range fr.chatters {
		c.mu.Lock()
		n += c.conns
		c.mu.Unlock()
	}
	return n
}

func (c *chatter) stopSending() {
	c.mu.Lock()
	c.sending = false
	c.mu.Unlock()
}

func (c *chatter) unacked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.outbox)
}

// faultRun is one fault with its load, recovery and audit.
type faultRun struct {
	top      *topology
	chatters []*chatter
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

func startLoad(t *testing.T, top *topology, rooms []string) *faultRun {
	ctx, cancel := context.WithCancel(context.Background())
	fr := &faultRun{top: top, cancel: cancel}
	start := time.Now()
	for r, gws := range top.gateways {
		for g := range gws {
			// Each chatter prefers its own gateway, then the others of its region.
			order := append(append([]*proc{}, gws[g:]...), gws[:g]...)
			c := newChatter(t, fmt.Sprintf("c%d%d-%d", r, g, time.Now().UnixNano()%100000), rooms, order, start)
			c.sending = false // until every chatter is in every room
			fr.chatters = append(fr.chatters, c)
			fr.done.Add(1)
			go func() { defer fr.done.Done(); c.run(ctx, 50*time.Millisecond) }()
		}
	}
	t.Cleanup(func() { cancel(); fr.done.Wait() })
	// The load starts once every chatter has joined every room.
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		for _, c := range fr.chatters {
			c.mu.Lock()
			n := c.joined
			c.mu.Unlock()
			if n < len(rooms) {
				return fmt.Errorf("%s has joined %d of %d rooms", c.name, n, len(rooms))
			}
		}
		return nil
	})
	for _, c := range fr.chatters {
		c.mu.Lock()
		c.sending = true
		c.mu.Unlock()
	}
	return fr
}

// finish stops sending, waits until everything is acked, in PostgreSQL
// and at every member, and returns how long that took.
func (fr *faultRun) finish(t *testing.T, rooms []string) time.Duration {
	t.Helper()
	start := time.Now()
	for _, c := range fr.chatters {
		c.stopSending()
	}
	checkFor(t, 120*time.Second, 100*time.Millisecond, func() error {
		for _, c := range fr.chatters {
			if n := c.unacked(); n > 0 {
				return fmt.Errorf("%s has %d unacked messages", c.name, n)
			}
		}
		return nil
	})
	ackedAfter := time.Since(start)
	acked := map[string]bool{}
	ackedBy := map[string]string{} // id → chatter/cid, for failure reports
	for _, c := range fr.chatters {
		c.mu.Lock()
		for cid, id := range c.acked {
			acked[id] = true
			ackedBy[id] = cid
		}
		c.mu.Unlock()
	}
	checkFor(t, 120*time.Second, 200*time.Millisecond, func() error {
		stored, dups := storedIDs(t, fr.top.db, rooms)
		if dups > 0 {
			return fmt.Errorf("postgres holds %d duplicate rows", dups)
		}
		missing := 0
		for id := range acked {
			if !stored[id] {
				missing++
			}
		}
		if missing > 0 || len(stored) != len(acked) {
			return fmt.Errorf("postgres: %d of %d acked missing, %d rows", missing, len(acked), len(stored))
		}
		for _, c := range fr.chatters {
			c.mu.Lock()
			var lost []string
			for id := range acked {
				if !c.got[id] {
					lost = append(lost, id+" ("+ackedBy[id]+")")
				}
			}
			c.mu.Unlock()
			if len(lost) > 0 {
				return fmt.Errorf("%s has not received %d of %d acked messages, e.g. %v", c.name, len(lost), len(acked), lost[:min(3, len(lost))])
			}
		}
		return nil
	})
	took := time.Since(start)
	dupConn := 0
	for _, c := range fr.chatters {
		c.mu.Lock()
		dupConn += c.dupConn
		c.mu.Unlock()
	}
	if dupConn > 0 {
		t.Errorf("%d messages delivered twice on one connection", dupConn)
	}
	fr.cancel()
	fr.done.Wait()
	t.Logf("audit: %d acked, %d in PostgreSQL, 0 missing, 0 duplicates; all acked %v and everywhere %v after the fault",
		len(acked), len(acked), ackedAfter.Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	return took
}

func storedIDs(t *testing.T, db string, rooms []string) (map[string]bool, int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return map[string]bool{}, 0 // PostgreSQL may be coming back
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id FROM messages WHERE room = ANY($1)`, rooms)
	if err != nil {
		return map[string]bool{}, 0
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return map[string]bool{}, 0
	}
	out := make(map[string]bool, len(ids))
	dups := 0
	for _, id := range ids {
		if out[id] {
			dups++
		}
		out[id] = true
	}
	return out, dups
}

func services(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../scripts/services", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/services %v: %v\n%s", args, err, out)
	}
}

// TestFaults breaks one component at a time under load and checks that
// nothing acked is lost or duplicated anywhere.
func TestFaults(t *testing.T) {
	top := startRegions(t, 2, 2)
	type fault struct {
		name   string
		inject func(t *testing.T)
	}
	pause := func(p *proc, d time.Duration) func(t *testing.T) {
		return func(t *testing.T) {
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(d) // the fault's duration
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	link := func(px healer, breakIt func(), d time.Duration) func(t *testing.T) {
		return func(t *testing.T) {
			breakIt()
			time.Sleep(d) // the fault's duration
			px.Heal()
			px.Restore()
		}
	}
	killService := func(name string) func(t *testing.T) {
		return func(t *testing.T) {
			services(t, "kill", name)
			t.Cleanup(func() { services(t, "start") })
			time.Sleep(3 * time.Second) // down for a while under load
			services(t, "start")
		}
	}
	// Only these faults break members' connections; under every other
	// one each member must stay on its connection throughout, so what it
	// receives came live or from the gateway's own repair, not from the
	// resume of a reconnect.
	reconnects := map[string]bool{"kill gateway": true, "rolling restart of a gateway": true}
	faults := []fault{
		{"kill gateway", func(t *testing.T) {
			g := top.gateways[0][0]
			g.kill()
			time.Sleep(3 * time.Second)
			g.restart()
		}},
		{"rolling restart of a gateway", func(t *testing.T) {
			g := top.gateways[1][1]
			g.stop() // SIGTERM: drain, tell clients to go elsewhere, exit 0
			g.restart()
		}},
		{"kill bridge", func(t *testing.T) {
			b := top.bridges[0]
			b.kill()
			time.Sleep(3 * time.Second)
			b.restart()
		}},
		{"kill persister", func(t *testing.T) {
			top.persister.kill()
			time.Sleep(3 * time.Second)
			top.persister.restart()
		}},
		{"kill kafka", killService("kafka")},
		{"kill postgres", killService("postgres")},
		{"kill redis", killService("redis")},
		{"pause bridge 20s", pause(top.bridges[1], 20*time.Second)},
		{"pause persister 20s", pause(top.persister, 20*time.Second)},
		{"cut bridge-redis", link(top.redis[0], top.redis[0].Cut, 10*time.Second)},
		{"delay bridge-redis 200ms", link(top.redis[1], top.redis[1].Delay, 10*time.Second)},
		{"blackhole bridge-redis", link(top.redis[0], top.redis[0].Blackhole, 10*time.Second)},
		{"cut gateway NATS route", link(top.routes[0], top.routes[0].Cut, 10*time.Second)},
		{"delay gateway NATS route 200ms", link(top.routes[0], top.routes[0].Delay, 10*time.Second)},
		{"blackhole gateway NATS route", link(top.routes[0], top.routes[0].Blackhole, 10*time.Second)},
		{"cut bridge-kafka", link(top.kafka, top.kafka.Cut, 10*time.Second)},
		{"delay bridge-kafka 200ms", link(top.kafka, top.kafka.Delay, 10*time.Second)},
		{"blackhole bridge-kafka", link(top.kafka, top.kafka.Blackhole, 10*time.Second)},
		{"cut persister-postgres", link(top.pg, top.pg.Cut, 10*time.Second)},
		{"delay persister-postgres 200ms", link(top.pg, top.pg.Delay, 10*time.Second)},
		{"blackhole persister-postgres", link(top.pg, top.pg.Blackhole, 10*time.Second)},
	}
	var report []string
	for i, f := range faults {
		ok := t.Run(f.name, func(t *testing.T) {
			rooms := []string{fmt.Sprintf("fa%d", i), fmt.Sprintf("fb%d", i)}
			fr := startLoad(t, top, rooms)
			for _, c := range fr.chatters {
				waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.acked) >= 10 })
			}
			conns, resynced := fr.conns(), top.resynced(t)
			f.inject(t)
			took := fr.finish(t, rooms)
			if after := fr.conns(); !reconnects[f.name] && after != conns {
				t.Errorf("members reconnected %d times under a fault that leaves gateways alone", after-conns)
			}
			n := 0
			for _, c := range fr.chatters {
				n += len(c.acked)
			}
			// Messages the gateways' resync after a NATS link gap
			// delivered (a restarted gateway's count starts again).
			rs := "-"
			if !reconnects[f.name] {
				rs = fmt.Sprint(top.resynced(t) - resynced)
			}
			report = append(report, fmt.Sprintf("%-32s acked %5d  in PostgreSQL %5d  duplicates 0  resynced %4s  recovered in %v", f.name, n, n, rs, took.Round(100*time.Millisecond)))
		})
		if !ok {
			break // the topology may be broken; later faults would only repeat it
		}
	}
	t.Logf("fault table:\n%s", strings.Join(report, "\n"))
}

// resynced sums the messages every gateway delivered by resync.
func (top *topology) resynced(t *testing.T) int {
	n := 0.0
	for _, p := range top.all() {
		n += metrics(t, p)["natter_resync_delivered_total"]
	}
	return int(n)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if !cond() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
