// Resync after a broken NATS link. A gateway's embedded NATS server is
// linked to the region's other servers by routes (or leaf-node
// connections). When one breaks, whatever the other side published on it
// since this side last read from it is gone: NATS does not resend, and
// this gateway's members never see those messages live. The link watcher
// notices the loss, and once the other side is back (or after a while, if
// it stays away) reads each of its rooms from the durable log since just
// before the loss and delivers what the room has not delivered yet. The
// rooms remember every id delivered since the loss for as long as the gap
// is open, so nothing is delivered twice.

package gateway

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/natter-chat/natter"
)

// Link is one connection of the gateway's embedded NATS server to another
// NATS server of the region: a route or a leaf-node connection.
type Link struct {
	// ID names the connection uniquely for the server's lifetime.
	ID string
	// Remote names the server at the other end.
	Remote string
}

const (
	// linkPoll is how often the watcher lists the links.
	linkPoll = 250 * time.Millisecond
	// gapMargin is taken off a gap's start: the other side's clock may be
	// behind this one's, and it stamps a message a little before the
	// message reaches the wire.
	gapMargin = 5 * time.Second
	// gapSettle is how long the links must stay unchanged, every lost
	// server back, before the resync: the other side resends its pending
	// messages at once and its bridge needs a moment for them.
	gapSettle = time.Second
	// gapRetry is how often the resync runs while a lost server stays
	// away: what its side made durable meanwhile is in the log.
	gapRetry = 10 * time.Second
	// gapMax closes a gap whose server has not come back: it is taken to
	// be gone for good, and its clients to have resent elsewhere. The
	// rooms' memory of delivered ids grows with the gap, so it is bounded.
	gapMax = 2 * time.Minute
	// resyncParallel bounds the rooms read from the log at once.
	resyncParallel = 4
	// defaultLinkTimeout is Config.LinkTimeout's default.
	defaultLinkTimeout = 10 * time.Second
)

// gap is an open loss: messages since since may have missed this gateway.
type gap struct {
	since   time.Time
	lost    map[string]struct{} // servers whose link broke and is not back
	opened  time.Time
	changed time.Time // last loss or return
	synced  time.Time // last resync
}

// linkWatch runs the resync. Only its own goroutine touches its fields.
type linkWatch struct {
	g     *Gateway
	links func() []Link
	// reach is how far before a link's loss was noticed a message lost
	// with it may have been sent: the time a dead link can stay open
	// (until pings close it), one poll, and the clock margin.
	reach time.Duration
	known map[string]string // link id → remote server
	gap   *gap
}

func newLinkWatch(g *Gateway, links func() []Link, timeout time.Duration) *linkWatch {
	w := &linkWatch{g: g, links: links, reach: timeout + linkPoll + gapMargin, known: make(map[string]string)}
	for _, l := range links() {
		w.known[l.ID] = l.Remote
	}
	return w
}

// run polls the links until ctx ends.
func (w *linkWatch) run(ctx context.Context) {
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.g.hub.retain(time.Time{})
			return
		case now := <-t.C:
			w.poll(now)
			w.maybeResync(ctx, now)
		}
	}
}

// poll compares the links with the last poll's.
func (w *linkWatch) poll(now time.Time) {
	cur := w.links()
	present := make(map[string]struct{}, len(cur))
	up := make(map[string]struct{}, len(cur))
	for _, l := range cur {
		present[l.ID] = struct{}{}
		up[l.Remote] = struct{}{}
		if _, ok := w.known[l.ID]; ok {
			continue
		}
		w.known[l.ID] = l.Remote
		if w.gap != nil {
			if _, lost := w.gap.lost[l.Remote]; lost {
				delete(w.gap.lost, l.Remote)
				w.gap.changed = now
				w.g.log.Info("nats link back", "remote", l.Remote)
				// Pending messages may have waited for a bridge on the
				// other side: resend them now, not at their backoff.
				w.g.durable.soon()
			}
		}
	}
	for id, remote := range w.known {
		if _, ok := present[id]; ok {
			continue
		}
		delete(w.known, id)
		_, stillUp := up[remote]
		w.lose(remote, stillUp, now)
	}
}

// lose opens (or widens) the gap for a link to remote that is gone. A
// link can die silently and stay open until pings close it, and what the
// other side sent into it meanwhile is lost: the gap reaches back that
// far. A server with another link still up (route pools hold several) is
// not lost, but its broken link may still have dropped messages.
func (w *linkWatch) lose(remote string, stillUp bool, now time.Time) {
	since := now.Add(-w.reach)
	if w.gap == nil {
		w.gap = &gap{since: since, lost: make(map[string]struct{}), opened: now}
		w.g.met.linkGaps.Inc()
	}
	w.gap.changed = now
	if !stillUp {
		w.gap.lost[remote] = struct{}{}
	}
	w.g.hub.retain(w.gap.since)
	w.g.log.Warn("nats link lost; will resync its rooms from the log", "remote", remote, "since", w.gap.since.Format(time.RFC3339Nano))
}

// maybeResync resyncs when the gap has settled, or again while a lost
// server stays away, and closes the gap when it may.
func (w *linkWatch) maybeResync(ctx context.Context, now time.Time) {
	gp := w.gap
	if gp == nil {
		return
	}
	back := len(gp.lost) == 0
	expired := now.Sub(gp.opened) >= gapMax
	due := back && now.Sub(gp.changed) >= gapSettle
	last := gp.opened
	if gp.synced.After(last) {
		last = gp.synced
	}
	retry := !back && now.Sub(last) >= gapRetry
	if !due && !retry && !expired {
		return
	}
	w.g.resync(ctx, natter.MinIDAt(gp.since))
	gp.synced = time.Now()
	if back || expired {
		if !back {
			w.g.log.Warn("nats link gap closed without the server's return", "lost", len(gp.lost), "open", now.Sub(gp.opened).Round(time.Second))
		}
		w.gap = nil
		w.g.hub.retain(time.Time{})
	}
}

// resync reads every room with local members from the log since since and
// delivers what the room has not delivered.
func (g *Gateway) resync(ctx context.Context, since natter.ID) {
	start := time.Now()
	rooms := g.hub.names()
	sort.Strings(rooms)
	var (
		mu        sync.Mutex
		delivered int
		failed    int
		wg        sync.WaitGroup
		sem       = make(chan struct{}, resyncParallel)
	)
	for _, name := range rooms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			n, err := g.resyncRoom(ctx, name, since)
			mu.Lock()
			delivered += n
			if err != nil {
				failed++
				g.log.Warn("resync", "room", name, "err", err)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	g.met.resyncSeconds.Observe(time.Since(start).Seconds())
	g.log.Info("resynced rooms after a nats link loss", "rooms", len(rooms), "failed", failed, "delivered", delivered,
		"since", since.Time().Format(time.RFC3339Nano), "took", time.Since(start).Round(time.Millisecond))
}

// resyncRoom delivers room's messages after since that it has not
// delivered, page by page.
func (g *Gateway) resyncRoom(ctx context.Context, name string, since natter.ID) (int, error) {
	n := 0
	for {
		msgs, more, err := g.resume(ctx, name, since)
		if err != nil {
			return n, err
		}
		n += g.hub.redeliver(name, msgs)
		if !more || len(msgs) == 0 {
			return n, nil
		}
		if since, err = natter.ParseID(msgs[len(msgs)-1].ID); err != nil {
			return n, err
		}
	}
}
