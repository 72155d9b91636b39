// Federation: regions exchange their locally originated messages and
// presence/typing events over Redis pub/sub. A message is federated only
// once Kafka has acknowledged it (the bridge calls Forward from its
// produce callback), so whatever another region delivers live is already
// in the log that a resuming client there reads: a resume can never miss
// a message that arrived live just before the client subscribed but was
// not yet durable. Presence and typing events, which are not logged, go
// out as they happen. Each region publishes on its
// own channel (natter.FederationChannel) and every bridge subscribes to all
// of them (a firehose; docs/scaling.md says up to what size that is fine).
//
// Redis pub/sub is at-most-once, so every envelope carries the publishing
// bridge's id and a sequence number, and each bridge sends a heartbeat with
// its latest sequence every second: a receiver sees a gap as a jump in the
// sequence. Gaps are repaired from Kafka by Repair; the sequence makes them
// visible (natter_federation_gaps_total) and bounds how long one goes
// unnoticed.

package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/expiring"
	"github.com/natter-chat/natter/protocol"
)

// envelopeKind says what an envelope carries.
type envelopeKind string

const (
	kindMsg       envelopeKind = "msg" // a message (Data: its msg frame)
	kindEvent     envelopeKind = "evt" // a room's presence or typing event (Data: as on NATS)
	kindHeartbeat envelopeKind = "hb"  // the sender's latest Seq, so gaps show when idle
)

// envelope is what travels on a federation channel.
type envelope struct {
	Region string          `json:"region"`
	Src    string          `json:"src"`
	Seq    uint64          `json:"seq"`
	Kind   envelopeKind    `json:"kind"`
	Room   string          `json:"room,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Config configures a Federation.
type Config struct {
	// Region is this bridge's region; a valid name.
	Region string
	// NATS is the region's NATS connection.
	NATS *nats.Conn
	// Redis is the federation's Redis.
	Redis *redis.Client
	// Heartbeat is how often the latest sequence is announced (1s).
	Heartbeat time.Duration
	Log       *slog.Logger
}

// Federation links a region's NATS with the other regions through Redis.
type Federation struct {
	cfg  Config
	src  string
	seq  uint64 // owned by the publisher goroutine
	out  chan envelope
	log  *slog.Logger
	seen *seenSet
	met  *fedMetrics

	mu   sync.Mutex
	last map[string]uint64 // src → last sequence received

	// injectLocks make "not seen yet → mark → publish" one step per room
	// for both paths into the region (Redis and repair), so a room's
	// messages keep their order when some arrive one way and some the
	// other, and a slow NATS write holds up its own room only.
	injectLocks *natter.RoomLocks
}

// inject publishes another region's message into this region's NATS
// unless it already arrived; it reports whether it did.
func (f *Federation) inject(id, room string, frame []byte) (bool, error) {
	mu := f.injectLocks.Of(room)
	mu.Lock()
	defer mu.Unlock()
	if !f.seen.add(id) {
		return false, nil
	}
	return true, f.cfg.NATS.Publish(natter.MsgSubject(room), frame)
}

// NewFederation returns a federation; Run starts it.
func New(cfg Config) (*Federation, error) {
	if !natter.ValidRoom(cfg.Region) {
		return nil, fmt.Errorf("federation: region %q: use letters, digits, _ and -", cfg.Region)
	}
	if cfg.NATS == nil || cfg.Redis == nil {
		return nil, fmt.Errorf("federation: NATS and Redis are required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Federation{
		cfg: cfg, src: cfg.Region + "-" + hex.EncodeToString(b[:]), log: cfg.Log.With("role", "federation", "region", cfg.Region),
		seen: newSeenSet(10 * time.Minute), met: newFedMetrics(), last: map[string]uint64{}, injectLocks: natter.NewRoomLocks(),
		out: make(chan envelope, 1<<16),
	}, nil
}

// Collectors returns the federation's metrics.
func (f *Federation) Collectors() []prometheus.Collector { return f.met.all() }

// NATSDisconnected must be called when the bridge's NATS connection
// drops: messages injected just before may have died with the server the
// bridge was connected to, so they are forgotten and repair, which runs
// Delay behind, injects them again (gateways drop the ones that did
// arrive).
func (f *Federation) NATSDisconnected(within time.Duration) {
	if n := f.seen.forgetSince(time.Now().Add(-within)); n > 0 {
		f.log.Info("NATS connection lost; recent injections left to repair", "messages", n)
	}
}

// Seen reports whether a message of another region already arrived here.
func (f *Federation) Seen(id string) bool { return f.seen.has(id) }

// Run federates until ctx ends; it returns nil after a cancel.
func (f *Federation) Run(ctx context.Context) error {
	evts, err := f.cfg.NATS.QueueSubscribe("natter.room.*.evt", natter.QueueFederation, f.outboundEvent)
	if err != nil {
		return fmt.Errorf("federation: subscribe: %w", err)
	}
	defer evts.Unsubscribe() //nolint:errcheck // closing anyway
	ps := f.cfg.Redis.PSubscribe(ctx, natter.FederationPattern)
	defer ps.Close()
	in := ps.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	pubDone := make(chan struct{})
	go func() { defer close(pubDone); f.publisher(ctx) }()
	defer func() { <-pubDone }()
	f.log.Info("federation ready", "channel", natter.FederationChannel(f.cfg.Region), "src", f.src)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-in:
			if !ok {
				return nil
			}
			f.inbound(m.Channel, []byte(m.Payload))
		}
	}
}

// publisher is the one goroutine that numbers envelopes and publishes
// them, in pipelined batches: numbering and sending in one place keeps
// the sequence in order on the channel, so a receiver's gaps are real.
func (f *Federation) publisher(ctx context.Context) {
	hb := time.NewTicker(f.cfg.Heartbeat)
	defer hb.Stop()
	batch := make([]envelope, 0, 512)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			batch = append(batch, envelope{Kind: kindHeartbeat})
		case e := <-f.out:
			batch = append(batch, e)
		}
		for len(batch) < cap(batch) {
			select {
			case e := <-f.out:
				batch = append(batch, e)
				continue
			default:
			}
			break
		}
		f.publishBatch(ctx, batch)
	}
}

// Forward publishes a message of this region, which Kafka has
// acknowledged, to the other regions. It never blocks: when Redis is too
// slow or away the message is counted as a publish error, and repair from
// Kafka brings it to the other regions (the sequence shows the gap).
func (f *Federation) Forward(m natter.Message) {
	if m.Region != f.cfg.Region {
		return // not ours to federate: no loops
	}
	f.enqueue(envelope{Kind: kindMsg, Room: m.Room, Data: protocol.EncodeMsg(m)})
}

// outboundEvent publishes local-origin presence and typing events to
// Redis; events injected from other regions are recognised by their
// region and not sent back.
func (f *Federation) outboundEvent(m *nats.Msg) {
	var head struct {
		Region string `json:"region"`
	}
	if json.Unmarshal(m.Data, &head) != nil || head.Region != f.cfg.Region {
		return
	}
	room := strings.TrimSuffix(strings.TrimPrefix(m.Subject, "natter.room."), ".evt")
	f.enqueue(envelope{Kind: kindEvent, Room: room, Data: m.Data})
}

func (f *Federation) enqueue(e envelope) {
	select {
	case f.out <- e:
	default:
		f.met.publishErrors.Inc()
	}
}

// publishBatch numbers and publishes batch in one pipeline.
func (f *Federation) publishBatch(ctx context.Context, batch []envelope) {
	channel := natter.FederationChannel(f.cfg.Region)
	pipe := f.cfg.Redis.Pipeline()
	msgs := 0
	for _, e := range batch {
		if e.Kind == kindHeartbeat {
			e.Seq = f.seq
		} else {
			f.seq++
			e.Seq = f.seq
			msgs++
		}
		e.Region, e.Src = f.cfg.Region, f.src
		data, _ := json.Marshal(e)
		pipe.Publish(ctx, channel, data)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := pipe.Exec(pctx); err != nil {
		f.met.publishErrors.Add(float64(msgs))
		f.log.Debug("redis publish", "err", err)
		return
	}
	f.met.published.Add(float64(msgs))
}

// inbound injects another region's traffic into this region's NATS.
func (f *Federation) inbound(channel string, data []byte) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil || !natter.ValidRoom(e.Region) || channel != natter.FederationChannel(e.Region) {
		f.met.malformed.Inc()
		return
	}
	if e.Region == f.cfg.Region {
		return
	}
	f.checkSeq(e)
	if e.Kind == kindHeartbeat {
		return
	}
	if !natter.ValidRoom(e.Room) {
		f.met.malformed.Inc()
		return
	}
	if e.Kind == kindMsg {
		var head struct {
			ID   string `json:"id"`
			Room string `json:"room"`
			TS   int64  `json:"ts"`
		}
		if json.Unmarshal(e.Data, &head) != nil || head.Room != e.Room {
			f.met.malformed.Inc()
			return
		}
		if _, err := natter.ParseID(head.ID); err != nil {
			f.met.malformed.Inc()
			return
		}
		injected, err := f.inject(head.ID, e.Room, e.Data)
		if err != nil {
			f.log.Warn("inject into NATS", "room", e.Room, "err", err)
		}
		if injected {
			f.met.received.Inc()
			f.met.lag.Observe(max(0, float64(time.Now().UnixMilli()-head.TS)) / 1000)
		}
		return
	} else if e.Kind != kindEvent {
		f.met.malformed.Inc()
		return
	}
	if err := f.cfg.NATS.Publish(natter.EventSubject(e.Room), e.Data); err != nil {
		f.log.Warn("inject into NATS", "room", e.Room, "err", err)
	}
}

// checkSeq counts a gap when e's sequence skips ahead of the last one
// from the same source.
func (f *Federation) checkSeq(e envelope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last, known := f.last[e.Src]
	if e.Kind == kindHeartbeat {
		if known && e.Seq > last {
			f.met.gaps.Add(float64(e.Seq - last))
			f.log.Warn("federation gap: messages lost in transit; repairing from Kafka", "src", e.Src, "missing", e.Seq-last)
			f.last[e.Src] = e.Seq
		} else if !known {
			f.last[e.Src] = e.Seq
		}
		return
	}
	if known && e.Seq > last+1 {
		f.met.gaps.Add(float64(e.Seq - last - 1))
		f.log.Warn("federation gap: messages lost in transit; repairing from Kafka", "src", e.Src, "missing", e.Seq-last-1)
	}
	if e.Seq > last || !known {
		f.last[e.Src] = e.Seq
	}
}

// seenSet remembers ids for ttl.
type seenSet struct {
	mu  sync.Mutex
	ttl time.Duration
	ids expiring.Set[string, struct{}]
}

func newSeenSet(ttl time.Duration) *seenSet { return &seenSet{ttl: ttl} }

// add records id and reports whether it was new.
func (s *seenSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.ids.ExpireBefore(now.Add(-s.ttl))
	return s.ids.Add(id, struct{}{}, now)
}

func (s *seenSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids.Has(id)
}

// forgetSince drops the ids added at or after t.
func (s *seenSet) forgetSince(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids.ForgetSince(t)
}

type fedMetrics struct {
	published, received, publishErrors, malformed, gaps, repaired prometheus.Counter
	lag                                                           prometheus.Histogram
}

func newFedMetrics() *fedMetrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &fedMetrics{
		published:     c("natter_federation_published_total", "Local messages published to Redis."),
		received:      c("natter_federation_received_total", "Other regions' messages received from Redis."),
		publishErrors: c("natter_federation_publish_errors_total", "Redis publishes that failed (repaired from Kafka by the receivers)."),
		malformed:     c("natter_federation_malformed_total", "Envelopes from Redis dropped as malformed."),
		gaps:          c("natter_federation_gaps_total", "Messages detected missing by sequence."),
		repaired:      c("natter_federation_repaired_total", "Other regions' messages injected from Kafka because Redis did not bring them."),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_federation_lag_seconds",
			Help:    "From a message's acceptance in another region to its arrival here through Redis.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}}),
	}
}

func (m *fedMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.published, m.received, m.publishErrors, m.malformed, m.gaps, m.repaired, m.lag}
}
