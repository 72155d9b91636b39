// A worker runs one slice of a plan's connections in this process: it
// opens them, publishes its publishers' share of the schedule (in the soak
// scenario also closing and reopening connections), waits for late
// deliveries and sums up what its members received.

package bench

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/natter-chat/natter"
)

const histShards = 16

type worker struct {
	cfg    *Config
	plan   *plan
	lo, hi int

	clients []*client // index i-lo; nil where opening failed
	hists   [histShards]Hist
	readers sync.WaitGroup
	senders sync.WaitGroup
	churner sync.WaitGroup

	delivered, distinct, dups, acks, sent, sendErrs atomic.Int64
	skipped, reconnects, reconnectErrs              atomic.Int64
	connected                                       atomic.Int64
	closing, churnStop                              atomic.Bool
	pubSent                                         []atomic.Int64 // by publisher index

	mu             sync.Mutex
	errCodes       map[string]int64
	connectErrs    int
	connectErr     string
	disconnects    int
	disconnectErr  string
	reconnectErr   string
	expected       int64 // deliveries this slice's members should get
	start, sendEnd time.Time
	atEnd          int64 // delivered when publishing ended
	cpu0           float64
}

func newWorker(cfg *Config, p *plan, i, n int) *worker {
	lo, hi := slice(cfg.Conns, i, n)
	w := &worker{cfg: cfg, plan: p, lo: lo, hi: hi, clients: make([]*client, hi-lo),
		errCodes: map[string]int64{}, pubSent: make([]atomic.Int64, len(p.pubs))}
	for c := lo; c < hi; c++ {
		if r := p.conns[c].room; r >= 0 {
			for _, pub := range p.rooms[r].pubs {
				w.expected += p.sentBy(pub)
			}
		}
	}
	return w
}

// connect opens every connection of the slice, DialConcurrency at a time.
func (w *worker) connect(ctx context.Context) {
	raiseFileLimit()
	sem := make(chan struct{}, w.cfg.DialConcurrency)
	var wg sync.WaitGroup
	for i := w.lo; i < w.hi; i++ {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.open(ctx, i)
		}()
	}
	wg.Wait()
}

func (w *worker) open(ctx context.Context, i int) {
	cp := w.plan.conns[i]
	u := w.cfg.URLs[cp.url]
	c := &client{w: w, idx: i, d: dialer(sourceAddr(u, i, w.cfg.SourceAddrs)), url: u,
		user: fmt.Sprintf("b%s-%d", w.cfg.RunID, i), hist: &w.hists[i%histShards]}
	if cp.room >= 0 {
		c.room = w.plan.rooms[cp.room].name
		c.seen = make([][]uint64, len(w.plan.rooms[cp.room].pubs))
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.open(ctx, ""); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		w.mu.Lock()
		w.connectErrs++
		if w.connectErr == "" {
			w.connectErr = err.Error()
		}
		w.mu.Unlock()
		return
	}
	w.mu.Lock() // held() reads the slots while connections open
	w.clients[i-w.lo] = c
	w.mu.Unlock()
	w.connected.Add(1)
	c.startReader()
}

// publish starts the senders at t0; each takes some of the slice's
// publishers and sends their messages at their scheduled times.
func (w *worker) publish(t0 time.Time) {
	w.mu.Lock()
	w.start = t0
	w.cpu0 = cpuSeconds()
	w.mu.Unlock()
	var local []int
	for pub, ci := range w.plan.pubs {
		if ci >= w.lo && ci < w.hi && w.clients[ci-w.lo] != nil {
			local = append(local, pub)
		}
	}
	if w.cfg.Churn > 0 {
		w.churner.Add(1)
		go func() { defer w.churner.Done(); w.churn(t0) }()
	}
	nsend := min(8, len(local))
	for s := 0; s < nsend; s++ {
		var mine []int
		for j := s; j < len(local); j += nsend {
			mine = append(mine, local[j])
		}
		w.senders.Add(1)
		go func() { defer w.senders.Done(); w.sendLoop(t0, mine) }()
	}
}

func (w *worker) sendLoop(t0 time.Time, pubs []int) {
	P := int64(len(w.plan.pubs))
	for round := int64(0); ; round++ {
		for _, pub := range pubs {
			k := round*P + int64(pub)
			if k >= w.plan.messages {
				return
			}
			if w.closing.Load() {
				return
			}
			at := t0.Add(due(k, w.cfg.Rate))
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			c := w.clients[w.plan.pubs[pub]-w.lo]
			room := w.plan.rooms[w.plan.conns[w.plan.pubs[pub]].room].name
			if err := c.send(room, int64(pub), round, at.UnixNano(), w.cfg.BodyBytes); errors.Is(err, errDown) {
				w.skipped.Add(1)
				continue
			} else if err != nil {
				w.sendErrs.Add(1)
				continue
			}
			w.pubSent[pub].Add(1)
			w.sent.Add(1)
		}
	}
}

// churn closes and reopens the slice's share of Config.Churn connections
// a second, from t0 until publishing ends, at most 8 at once. A client
// resumes its room from the newest message it received.
func (w *worker) churn(t0 time.Time) {
	rate := w.cfg.Churn * float64(w.hi-w.lo) / float64(w.cfg.Conns)
	if rate <= 0 {
		return
	}
	order := rand.New(rand.NewPCG(uint64(w.lo), 7)).Perm(w.hi - w.lo)
	since := natter.MinIDAt(t0.Add(-time.Second)).String()
	// Reopens under way are let finish (dial and handshake have their
	// own timeouts), so the drain starts with every client connected.
	ctx := context.Background()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	defer wg.Wait()
	end := t0.Add(w.cfg.Duration)
	for k := int64(0); ; k++ {
		at := t0.Add(time.Duration(float64(k+1) / rate * float64(time.Second)))
		if !at.Before(end) {
			return
		}
		for d := time.Until(at); d > 0; d = time.Until(at) {
			if w.churnStop.Load() || w.closing.Load() {
				return
			}
			time.Sleep(min(d, 100*time.Millisecond))
		}
		c := w.clients[order[int(k%int64(len(order)))]]
		if c == nil || !c.alive.Load() || !c.reopening.CompareAndSwap(false, true) {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			c.reopening.Store(false)
			continue // eight reopens under way: the server is slow, do not pile up
		}
		wg.Add(1)
		go func() {
			defer func() { c.reopening.Store(false); <-sem; wg.Done() }()
			if err := c.reopen(ctx, since); err != nil {
				w.reconnectErrs.Add(1)
				w.mu.Lock()
				if w.reconnectErr == "" {
					w.reconnectErr = err.Error()
				}
				w.mu.Unlock()
				return
			}
			w.reconnects.Add(1)
		}()
	}
}

// finish waits for the end of publishing (or the hold in idle), then for
// late deliveries: until every expected one came, nothing came for a
// second, or Drain passed.
func (w *worker) finish(ctx context.Context) {
	w.mu.Lock()
	t0 := w.start
	w.mu.Unlock()
	end := t0.Add(w.cfg.Duration)
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(end)):
	}
	w.senders.Wait()
	w.churnStop.Store(true)
	w.churner.Wait()
	w.mu.Lock()
	w.atEnd = w.delivered.Load()
	w.sendEnd = time.Now()
	w.mu.Unlock()
	if w.expected == 0 {
		return
	}
	// The soak waits for acks as well: every send must be acked.
	acked := func() bool { return w.cfg.Scenario != ScenarioSoak || w.acks.Load() >= w.sent.Load() }
	limit := time.Now().Add(w.cfg.Drain)
	last, lastChange := w.distinct.Load()+w.acks.Load(), time.Now()
	for time.Now().Before(limit) && ctx.Err() == nil {
		d := w.distinct.Load()
		if d >= w.expected && acked() {
			return
		}
		if n := d + w.acks.Load(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > time.Second {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *worker) noteError(code string) {
	w.mu.Lock()
	w.errCodes[code]++
	w.mu.Unlock()
}

func (w *worker) noteDisconnect(err error) {
	w.mu.Lock()
	w.disconnects++
	if w.disconnectErr == "" {
		w.disconnectErr = err.Error()
	}
	w.mu.Unlock()
}

// snapshot is a part's running totals, reported every second.
type snapshot struct {
	Connected   int64    `json:"connected"`
	ConnectErrs int      `json:"connect_errors"`
	ConnectErr  string   `json:"connect_error,omitempty"`
	Held        int64    `json:"held"`
	Sent        int64    `json:"sent"`
	Delivered   int64    `json:"delivered"`
	Distinct    int64    `json:"distinct"`
	Dups        int64    `json:"dups"`
	Acks        int64    `json:"acks"`
	Hist        histJSON `json:"hist"`
	// Soak: connections reopened, reopens that failed, sends skipped
	// while reopening, and this process's own footprint.
	Reconnects    int64      `json:"reconnects,omitempty"`
	ReconnectErrs int64      `json:"reconnect_errors,omitempty"`
	Skipped       int64      `json:"skipped,omitempty"`
	Self          selfSample `json:"self"`
}

func (w *worker) snapshot() snapshot {
	var h Hist
	for i := range w.hists {
		h.Merge(&w.hists[i])
	}
	w.mu.Lock()
	errs, first := w.connectErrs, w.connectErr
	w.mu.Unlock()
	return snapshot{Connected: w.connected.Load(), ConnectErrs: errs, ConnectErr: first, Held: w.held(), Sent: w.sent.Load(),
		Delivered: w.delivered.Load(), Distinct: w.distinct.Load(), Dups: w.dups.Load(),
		Acks: w.acks.Load(), Hist: h.toJSON(), Reconnects: w.reconnects.Load(), ReconnectErrs: w.reconnectErrs.Load(),
		Skipped: w.skipped.Load(), Self: readSelf()}
}

func (w *worker) held() int64 {
	var n int64
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		if c != nil && c.alive.Load() {
			n++
		}
	}
	return n
}

// partResult is what a part reports at the end.
type partResult struct {
	snapshot
	Conns         int              `json:"conns"`
	Disconnects   int              `json:"disconnects"`
	DisconnectErr string           `json:"disconnect_error,omitempty"`
	ReconnectErr  string           `json:"reconnect_error,omitempty"`
	SendErrs      int64            `json:"send_errors"`
	PubSent       map[int]int64    `json:"pub_sent"`
	PubRecv       map[int]int64    `json:"pub_recv"`
	Errors        map[string]int64 `json:"errors"`
	AtEnd         int64            `json:"delivered_at_end"`
	SendSeconds   float64          `json:"send_seconds"`
	CPUSeconds    float64          `json:"cpu_seconds"`
}

// end waits for finish, closes every connection and sums up the slice.
func (w *worker) end(ctx context.Context) partResult {
	w.finish(ctx)
	held := w.held()
	w.close()
	return w.result(held)
}

// result sums up the slice after close.
func (w *worker) result(held int64) partResult {
	snap := w.snapshot()
	w.mu.Lock()
	defer w.mu.Unlock()
	r := partResult{snapshot: snap, Conns: w.hi - w.lo,
		SendErrs: w.sendErrs.Load(), PubSent: map[int]int64{}, PubRecv: map[int]int64{}, Errors: map[string]int64{},
		AtEnd: w.atEnd, SendSeconds: w.sendEnd.Sub(w.start).Seconds(), CPUSeconds: cpuSeconds() - w.cpu0}
	r.Held = held
	r.Disconnects, r.DisconnectErr, r.ReconnectErr = w.disconnects, w.disconnectErr, w.reconnectErr
	for k, v := range w.errCodes {
		r.Errors[k] = v
	}
	for pub := range w.pubSent {
		if n := w.pubSent[pub].Load(); n > 0 {
			r.PubSent[pub] = n
		}
	}
	for _, c := range w.clients {
		if c == nil || c.seen == nil {
			continue
		}
		pubs := w.plan.rooms[w.plan.conns[c.idx].room].pubs
		for slot, set := range c.seen {
			var n int64
			for _, word := range set {
				n += int64(bits.OnesCount64(word))
			}
			if n > 0 {
				r.PubRecv[pubs[slot]] += n
			}
		}
	}
	return r
}

// close ends every connection and waits for the read loops.
func (w *worker) close() {
	w.closing.Store(true)
	w.senders.Wait()
	w.churner.Wait()
	for _, c := range w.clients {
		if c != nil {
			c.closeWS()
		}
	}
	w.readers.Wait()
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// raiseFileLimit raises the soft open-file limit to the hard limit.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

// fileLimit is the soft open-file limit.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
		return 0
	}
	return rl.Cur
}
