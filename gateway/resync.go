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

	"golang.org/x/sync/errgroup"

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
	since time.Time
	// lost holds the servers a link to which broke, with the number of
	// links to each before: a server is back once it has that many again
	// (a route pool carries a room's traffic on one of its links).
	lost    map[string]int
	opened  time.Time
	changed time.Time // last loss or return
	synced  time.Time // start of the last resync
}

// resyncJob is one resync the watcher started.
type resyncJob struct {
	since   time.Time
	skip    map[string]struct{} // lost servers: not asked to flush
	started time.Time
	final   bool // close the gap after it, if nothing changed meanwhile
}

// linkWatch runs the resync. Only its own goroutine touches its fields;
// a resync runs on a goroutine of its own, so the links are watched
// throughout.
type linkWatch struct {
	g     *Gateway
	links func() ([]Link, error)
	// reach is how far before a link's loss was noticed a message lost
	// with it may have been sent: the time a dead link can stay open
	// (until pings close it), one poll, and the clock margin.
	reach   time.Duration
	known   map[string]string // link id → remote server
	gap     *gap
	running *resyncJob
}

func newLinkWatch(g *Gateway, links func() ([]Link, error), timeout time.Duration) *linkWatch {
	w := &linkWatch{g: g, links: links, reach: gapReach(timeout), known: make(map[string]string)}
	if ls, err := links(); err == nil {
		for _, l := range ls {
			w.known[l.ID] = l.Remote
		}
	}
	return w
}

// gapReach is how far before a link's loss was noticed a message lost
// with it may have been sent, for links closed after timeout.
func gapReach(timeout time.Duration) time.Duration { return timeout + linkPoll + gapMargin }

// run polls the links until ctx ends.
func (w *linkWatch) run(ctx context.Context) {
	t := time.NewTicker(linkPoll)
	defer t.Stop()
	done := make(chan *resyncJob, 1)
	defer func() {
		if w.running != nil {
			<-done
		}
		w.g.hub.retain(time.Time{})
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-done:
			w.finish(job, time.Now())
		case <-t.C:
			// The time now, not the tick's: after a busy spell the tick
			// may be old, and a gap's start is reckoned from it.
			now := time.Now()
			w.poll(now)
			if job := w.due(now); job != nil {
				go func() {
					w.g.resync(ctx, natter.MinIDAt(job.since), job.skip)
					done <- job
				}()
			}
		}
	}
}

// maybeResync is run's resync step done in line, for tests.
func (w *linkWatch) maybeResync(ctx context.Context, now time.Time) {
	if job := w.due(now); job != nil {
		w.g.resync(ctx, natter.MinIDAt(job.since), job.skip)
		w.finish(job, now)
	}
}

// poll compares the links with the last poll's.
func (w *linkWatch) poll(now time.Time) {
	cur, err := w.links()
	if err != nil {
		w.g.log.Warn("nats links", "err", err)
		return // not a loss: try again at the next poll
	}
	present := make(map[string]struct{}, len(cur))
	count := make(map[string]int, len(cur))
	linked := false
	for _, l := range cur {
		present[l.ID] = struct{}{}
		count[l.Remote]++
		if _, ok := w.known[l.ID]; !ok {
			w.known[l.ID] = l.Remote
			linked = true
		}
	}
	if linked {
		// Gateways behind a new link learn of this one now, and answer
		// (flush.go): a resume asks them from then on, not from their
		// next beat.
		w.g.hub.beat(now, true)
	}
	before := make(map[string]int, len(w.known))
	for _, remote := range w.known {
		before[remote]++
	}
	for id, remote := range w.known {
		if _, ok := present[id]; ok {
			continue
		}
		delete(w.known, id)
		w.lose(remote, before[remote], now)
	}
	if w.gap == nil {
		return
	}
	for remote, want := range w.gap.lost {
		if count[remote] >= want {
			delete(w.gap.lost, remote)
			w.gap.changed = now
			w.g.log.Info("nats link back", "remote", remote)
			// Pending messages may have waited for a bridge on the other
			// side: resend them now, not at their backoff.
			w.g.durable.soon()
		}
	}
}

// lose opens (or widens) the gap for a link to remote that is gone, which
// had links links before. A link can die silently and stay open until
// pings close it, and what the other side sent into it meanwhile is lost:
// the gap reaches back that far.
func (w *linkWatch) lose(remote string, links int, now time.Time) {
	since := now.Add(-w.reach)
	if w.gap == nil {
		w.gap = &gap{since: since, lost: make(map[string]int), opened: now}
		w.g.met.linkGaps.Inc()
		w.g.hub.retain(since)
	}
	w.gap.changed = now
	w.gap.lost[remote] = max(w.gap.lost[remote], links)
	w.g.log.Warn("nats link lost; will resync its rooms from the log", "remote", remote, "since", w.gap.since.Format(time.RFC3339Nano))
}

// due returns the resync to start now, if any: when the gap has settled
// with every lost server back, again every gapRetry while one stays away,
// and a last one once the gap is gapMax old.
func (w *linkWatch) due(now time.Time) *resyncJob {
	gp := w.gap
	if gp == nil || w.running != nil {
		return nil
	}
	back := len(gp.lost) == 0
	expired := now.Sub(gp.opened) >= gapMax
	last := gp.opened
	if gp.synced.After(last) {
		last = gp.synced
	}
	settled := back && now.Sub(gp.changed) >= gapSettle
	retry := !back && now.Sub(last) >= gapRetry
	if !settled && !retry && !expired {
		return nil
	}
	skip := make(map[string]struct{}, len(gp.lost))
	for remote := range gp.lost {
		skip[remote] = struct{}{}
	}
	w.running = &resyncJob{since: gp.since, skip: skip, started: now, final: back || expired}
	return w.running
}

// finish records a resync's end, and closes the gap after a final one if
// no link was lost or came back while it ran.
func (w *linkWatch) finish(job *resyncJob, now time.Time) {
	w.running = nil
	gp := w.gap
	if gp == nil {
		return
	}
	gp.synced = job.started
	if !job.final || gp.changed.After(job.started) {
		return
	}
	if len(gp.lost) > 0 {
		w.g.log.Warn("nats link gap closed without the server's return", "lost", len(gp.lost), "open", now.Sub(gp.opened).Round(time.Second))
	}
	w.gap = nil
	w.g.hub.retain(time.Time{})
}

// resync reads every room with local members from the log since since and
// delivers what the room has not delivered; the gateways in skip are not
// asked for their pending messages (they are cut off).
func (g *Gateway) resync(ctx context.Context, since natter.ID, skip map[string]struct{}) {
	start := time.Now()
	rooms := g.hub.names()
	sort.Strings(rooms)
	var (
		mu        sync.Mutex
		delivered int
		failed    int
		each      errgroup.Group
	)
	each.SetLimit(resyncParallel)
	for _, name := range rooms {
		each.Go(func() error {
			n, err := g.resyncRoom(ctx, name, since, skip)
			mu.Lock()
			delivered += n
			if err != nil {
				failed++
				g.log.Warn("resync", "room", name, "err", err)
			}
			mu.Unlock()
			return nil // a room that failed does not stop the others
		})
	}
	_ = each.Wait()
	g.met.resyncSeconds.Observe(time.Since(start).Seconds())
	g.log.Info("resynced rooms after a nats link loss", "rooms", len(rooms), "failed", failed, "delivered", delivered,
		"since", since.Time().Format(time.RFC3339Nano), "took", time.Since(start).Round(time.Millisecond))
}

// resyncRoom delivers room's messages after since that it has not
// delivered, page by page.
func (g *Gateway) resyncRoom(ctx context.Context, name string, since natter.ID, skip map[string]struct{}) (int, error) {
	n := 0
	for {
		msgs, more, err := g.resume(ctx, name, since, skip)
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
