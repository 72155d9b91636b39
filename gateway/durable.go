// The gateway's side of the durable hop: every accepted message is sent to
// a bridge as a NATS request and re-sent until a bridge replies that Kafka
// has it; then the sender gets its ack. It also remembers recent
// (user, room, cid) so a client's retry never makes a second message.

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/expiring"
	"github.com/natter-chat/natter/protocol"
)

// errBusy means too many messages are waiting for the durable log.
var errBusy = errors.New("too many messages waiting for the durable log")

const (
	firstRetry = 2 * time.Second
	maxRetry   = 10 * time.Second
	cidTTL     = 15 * time.Minute
	// After a failure reply the message is sent again after errRetry,
	// doubling with each failure in a row up to maxRetry: soon after a
	// hiccup, rarely during a long outage.
	errRetry = 200 * time.Millisecond
	// maxWaiters bounds the acks one pending message collects from
	// clients' retries; the newest are kept (a retry usually comes from
	// the client's newest connection).
	maxWaiters = 8
)

// ackFunc is told the id and ts of a message once it is durable.
type ackFunc func(id string, ts int64)

type pendingSend struct {
	msg     natter.Message
	data    []byte
	sent    time.Time // first send, for the ack latency metric
	next    time.Time // next resend
	backoff time.Duration
	fails   int // failure replies in a row
	waiters []ackFunc
	done    chan struct{}
	// liveAfter: publish live only once durable, and only if the bridge
	// found no earlier message with the same cid (a client's retry).
	liveAfter bool
}

type cidEntry struct {
	id string
	ts int64
	p  *pendingSend // nil once acked
}

type durable struct {
	nats         *natsConns
	reply        string
	log          *slog.Logger
	met          *metrics
	maxPend      int
	maxPendBytes int

	mu        sync.Mutex
	pending   map[string]*pendingSend // by message id
	empty     chan struct{}           // closed while pending is empty
	pendBytes int
	// cids remembers each cid's message for cidTTL, at most 4×maxPending
	// of them. A cid whose message is still pending is kept however old:
	// a client's retry must join it, not make a second message under
	// another id (the store would keep one of the two, and the client
	// could be acked with the other). Pending messages are bounded, so
	// these are too.
	cids *expiring.Set[string, *cidEntry]
}

func newDurable(conns *natsConns, gatewayID string, maxPending, maxPendingBytes int, log *slog.Logger, met *metrics) *durable {
	return &durable{
		nats: conns, reply: "natter.gw." + gatewayID + ".durable", log: log, met: met,
		maxPend: maxPending, maxPendBytes: maxPendingBytes,
		pending: make(map[string]*pendingSend),
		cids:    expiring.New(4*maxPending, func(_ string, e *cidEntry) bool { return e.p != nil }),
		empty:   closedChan(),
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// run receives bridge replies and re-sends unanswered requests until ctx
// ends.
func (d *durable) run(ctx context.Context) error {
	sub, err := d.nats.ctl.Subscribe(d.reply, d.onReply)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe() //nolint:errcheck // connection closes anyway
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		return err
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			d.resend(now)
		}
	}
}

// lookup returns the id of an earlier send with the same cid: if it is
// acked, ack is called at once; if pending, ack is called when it is.
func (d *durable) lookup(key string, ack ackFunc) bool {
	d.mu.Lock()
	e, ok := d.cids.Get(key)
	var acked bool
	var id string
	var ts int64
	if ok {
		if p := e.p; p != nil {
			if len(p.waiters) >= maxWaiters {
				p.waiters = append(p.waiters[:0], p.waiters[len(p.waiters)-maxWaiters+1:]...)
			}
			p.waiters = append(p.waiters, ack)
		} else {
			acked, id, ts = true, e.id, e.ts
		}
	}
	d.mu.Unlock()
	if acked {
		ack(id, ts)
	}
	return ok
}

// reserve records msg as pending, to be acked through ack once durable;
// publish then starts its durable hop. Between the two the caller publishes
// it live, so a message can only reach the log after it went out live.
func (d *durable) reserve(msg natter.Message, ack ackFunc, liveAfter bool) (*pendingSend, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	p := &pendingSend{msg: msg, data: data, sent: now, next: now.Add(firstRetry), backoff: firstRetry, done: make(chan struct{}), liveAfter: liveAfter}
	if ack != nil {
		p.waiters = []ackFunc{ack}
	}
	d.mu.Lock()
	if len(d.pending) >= d.maxPend || d.pendBytes+len(data) > d.maxPendBytes {
		d.mu.Unlock()
		return nil, errBusy
	}
	if len(d.pending) == 0 {
		d.empty = make(chan struct{})
	}
	d.pending[msg.ID] = p
	d.pendBytes += len(data)
	if msg.CID != "" {
		d.cids.ExpireBefore(now.Add(-cidTTL))
		d.cids.Add(natter.CIDKey(msg.User, msg.Room, msg.CID), &cidEntry{id: msg.ID, ts: msg.TS, p: p}, now)
	}
	d.met.pending.Set(float64(len(d.pending)))
	d.mu.Unlock()
	return p, nil
}

func (d *durable) publish(p *pendingSend) {
	// On the room's connection, after the live copy (accept).
	if err := d.nats.room(p.msg.Room).PublishRequest(natter.SubjectDurable, d.reply, p.data); err != nil {
		d.log.Warn("durable request", "id", p.msg.ID, "err", err)
	}
}

func (d *durable) onReply(m *nats.Msg) {
	var r natter.DurableReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return
	}
	d.mu.Lock()
	p := d.pending[r.ID]
	if p == nil { // a late reply to a retry
		d.mu.Unlock()
		return
	}
	if !r.OK {
		// The bridge could not write to Kafka, or is full: retry soon,
		// not at once, and less often the longer it lasts.
		p.next = time.Now().Add(min(errRetry<<min(p.fails, 10), maxRetry))
		p.fails++
		d.mu.Unlock()
		return
	}
	delete(d.pending, r.ID)
	if len(d.pending) == 0 {
		close(d.empty)
	}
	d.pendBytes -= len(p.data)
	id, ts := p.msg.ID, p.msg.TS
	if r.Canonical != "" {
		if _, err := natter.ParseID(r.Canonical); err == nil {
			id, ts = r.Canonical, r.CanonicalTS
		}
	}
	if p.msg.CID != "" {
		if e, _ := d.cids.Get(natter.CIDKey(p.msg.User, p.msg.Room, p.msg.CID)); e != nil && e.p == p {
			e.p, e.id, e.ts = nil, id, ts
		}
	}
	waiters := p.waiters
	p.waiters = nil
	d.met.pending.Set(float64(len(d.pending)))
	d.mu.Unlock()
	if p.liveAfter {
		// A retry goes out live only now. When the bridge already had its
		// cid, the first message goes out again under its own id: members
		// that saw it drop the repeat (the hub remembers recent ids), and
		// members that never got it (its gateway died between the log and
		// live delivery) get it now.
		live := p.msg
		live.ID, live.TS = id, ts
		if err := d.nats.room(live.Room).Publish(natter.MsgSubject(live.Room), protocol.EncodeMsg(live)); err != nil {
			d.log.Warn("live publish", "room", live.Room, "id", live.ID, "err", err)
		}
	}
	close(p.done)
	d.met.ackSeconds.Observe(time.Since(p.sent).Seconds())
	for _, w := range waiters {
		w(id, ts)
	}
}

// soon makes every pending message due at the next resend, with its
// backoff started again: a NATS link came back, and the messages it held
// up can reach a bridge now.
func (d *durable) soon() {
	now := time.Now()
	d.mu.Lock()
	for _, p := range d.pending {
		p.backoff = firstRetry / 2 // doubled to firstRetry when resent
		p.next = now
	}
	d.mu.Unlock()
}

func (d *durable) resend(now time.Time) {
	var due []*pendingSend
	d.mu.Lock()
	for _, p := range d.pending {
		if now.After(p.next) {
			p.backoff = min(p.backoff*2, maxRetry)
			p.next = now.Add(p.backoff)
			due = append(due, p)
		}
	}
	d.cids.ExpireBefore(now.Add(-cidTTL))
	d.mu.Unlock()
	for _, p := range due {
		d.met.durableRetries.Inc()
		d.publish(p)
	}
}

// pendingMsgs returns room's messages that went out live and are not yet
// durable, by id. Those held back until durable (a client's retry) have
// not gone out and are left out.
func (d *durable) pendingMsgs(room string) []natter.Message {
	d.mu.Lock()
	var out []natter.Message
	for _, p := range d.pending {
		if p.msg.Room == room && !p.liveAfter {
			out = append(out, p.msg)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b natter.Message) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// waitEmpty waits until no message is pending or ctx ends, and returns
// how many still are.
func (d *durable) waitEmpty(ctx context.Context) int {
	d.mu.Lock()
	empty := d.empty
	d.mu.Unlock()
	select {
	case <-empty:
	case <-ctx.Done():
	}
	return d.count()
}

// count returns how many messages are not yet durable.
func (d *durable) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}
