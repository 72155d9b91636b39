// A long Kafka outage under a steady load, with small pending bounds: live
// delivery goes on until the bound, acks pause, sends beyond the bound are
// refused with unavailable, memory stays bounded, and once Kafka is back
// every outbox drains and every acked message is stored once.

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Small bounds, so the outage reaches them within seconds. The gateway
// holds a pending message in about 1-2 KiB (the message, its cid record
// and the acks of retries) besides its bytes, and the Kafka producer a
// message in flight in a few KiB; outageHeapBound is what either process's
// live heap may grow by while Kafka is down: 32 × the pending bytes.
const (
	outageMaxPending      = 2000
	outageMaxPendingBytes = 128 << 10
	outageMaxInflight     = 500
	outageHeapBound       = 32 * outageMaxPendingBytes
)

// outageDuration is NATTER_KAFKA_OUTAGE, or 40 seconds.
func outageDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("NATTER_KAFKA_OUTAGE")
	if v == "" {
		return 40 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 20*time.Second {
		t.Fatalf("NATTER_KAFKA_OUTAGE=%q: want a duration of 20s or more", v)
	}
	return d
}

// scrapeMetrics returns the samples of a Prometheus text page, summed
// over label sets by metric name.
func scrapeMetrics(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, _, _ := strings.Cut(line[:sp], "{")
		out[name] += v
	}
	return out, sc.Err()
}

// memWatch samples metrics of processes every 250 ms until stopped.
type memWatch struct {
	mu      sync.Mutex
	samples map[string]map[string][]float64 // url → metric → samples
	stop    chan struct{}
	done    chan struct{}
}

func watchMetrics(urls []string, metrics []string) *memWatch {
	w := &memWatch{samples: map[string]map[string][]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, u := range urls {
		w.samples[u] = map[string][]float64{}
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			for _, u := range urls {
				m, err := scrapeMetrics(u)
				if err != nil {
					continue
				}
				w.mu.Lock()
				for _, name := range metrics {
					w.samples[u][name] = append(w.samples[u][name], m[name])
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end stops the watch and returns url → metric → samples.
func (w *memWatch) end() map[string]map[string][]float64 {
	close(w.stop)
	<-w.done
	return w.samples
}

// quantile returns the q quantile (0..1) of v.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func TestKafkaOutageBoundsMemoryAndPausesAcks(t *testing.T) {
	outage := outageDuration(t)
	kafka := service(t, "NATTER_TEST_KAFKA_BROKERS")
	db := freshDatabase(t)
	uniq := fmt.Sprint(time.Now().UnixNano())
	common := []string{"--kafka-brokers", kafka, "--kafka-topic", "e2e." + uniq}
	natsAddr := freeAddr(t)
	gw := startProc(t, "127.0.0.1", "/readyz", append([]string{"gateway", "--open", "--id", "outage-gw",
		"--nats-addr", natsAddr, "--database-url", db, "--kafka-group", "e2e-" + uniq,
		"--rate-per-conn", "0", "--rate-per-user", "0",
		"--max-pending", fmt.Sprint(outageMaxPending), "--max-pending-bytes", fmt.Sprint(outageMaxPendingBytes)}, common...)...)
	br := startProc(t, "127.0.0.1", "/readyz", append([]string{"bridge", "--nats-url", "nats://" + natsAddr,
		"--max-inflight", fmt.Sprint(outageMaxInflight)}, common...)...)
	startProc(t, "127.0.0.1", "/readyz", append([]string{"persister", "--database-url", db, "--kafka-group", "e2e-" + uniq}, common...)...)

	// Four clients in two rooms, each sending 20 messages a second.
	rooms := []string{"outage-a", "outage-b"}
	top := &topology{db: db, gateways: [][]*proc{{gw}}}
	ctx, cancel := context.WithCancel(context.Background())
	fr := &faultRun{top: top, cancel: cancel}
	start := time.Now()
	for i := 0; i < 4; i++ {
		c := newChatter(t, fmt.Sprintf("o%d", i), rooms, []*proc{gw}, start)
		fr.chatters = append(fr.chatters, c)
		fr.done.Add(1)
		go func() { defer fr.done.Done(); c.run(ctx, 50*time.Millisecond) }()
	}
	t.Cleanup(func() { cancel(); fr.done.Wait() })
	for _, c := range fr.chatters {
		waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.acked) >= 20 })
	}
	counts := func() (acked, delivered, unavailable int) {
		for _, c := range fr.chatters {
			c.mu.Lock()
			acked += len(c.acked)
			delivered += len(c.gotBody)
			unavailable += c.errs["unavailable"]
			c.mu.Unlock()
		}
		return
	}

	gwMetrics, brMetrics := gw.url("/metrics"), br.url("/metrics")
	const live = "go_gc_heap_live_bytes"
	metrics := []string{live, "natter_durable_pending", "natter_bridge_inflight"}
	before := watchMetrics([]string{gwMetrics, brMetrics}, metrics)
	time.Sleep(3 * time.Second) // the live heap under load, over a few GC cycles
	base := before.end()
	watch := watchMetrics([]string{gwMetrics, brMetrics}, metrics)

	services(t, "kill", "kafka")
	t.Cleanup(func() { services(t, "start") })
	killed := time.Now()
	time.Sleep(2 * time.Second) // acks already on their way may still come
	acked0, delivered0, _ := counts()

	// The bound is reached: sends beyond it are refused, not dropped.
	checkFor(t, outage, 250*time.Millisecond, func() error {
		if _, _, unavailable := counts(); unavailable == 0 {
			return fmt.Errorf("no send refused with unavailable yet")
		}
		return nil
	})
	full := time.Since(killed)
	time.Sleep(time.Until(killed.Add(outage)))
	acked1, delivered1, unavailable1 := counts()
	during := watch.end()

	// Messages accepted during the outage went out live at once. (Those
	// sent in the last seconds may still have their refusal on the way.)
	var liveLate []string
	checked := time.Now()
	for _, c := range fr.chatters {
		c.mu.Lock()
		for cid, m := range c.outbox {
			if c.refused[cid] || m.sentAt.After(checked.Add(-2*time.Second)) {
				continue
			}
			for _, o := range fr.chatters {
				if o == c {
					continue
				}
				o.mu.Lock()
				_, ok := o.gotBody[m.body]
				o.mu.Unlock()
				if !ok {
					liveLate = append(liveLate, fmt.Sprintf("%s to %s", cid, o.name))
				}
			}
		}
		c.mu.Unlock()
	}

	services(t, "start")
	back := time.Now()
	fr.finish(t, rooms) // every outbox drains; every acked id in PostgreSQL once and at every member
	recovered := time.Since(back)

	// The live heap the last GC found, which has no garbage sawtooth: its
	// median under load before, and the 90th percentile of the outage's
	// samples (not one spike).
	heap := func(url string) (before, outage float64) {
		return quantile(base[url][live], 0.5), quantile(during[url][live], 0.9)
	}
	gw0, gw1 := heap(gwMetrics)
	br0, br1 := heap(brMetrics)
	maxPending := slices.Max(during[gwMetrics]["natter_durable_pending"])
	maxInflight := slices.Max(during[brMetrics]["natter_bridge_inflight"])
	mib := func(v float64) float64 { return v / (1 << 20) }
	t.Logf("Kafka down %v. Gateway bound (%d messages, %d KiB) reached after %v at %.0f pending; %d acks and %d live deliveries during the outage; %d sends refused with unavailable; outboxes drained %v after Kafka returned",
		outage.Round(time.Second), outageMaxPending, outageMaxPendingBytes>>10, full.Round(100*time.Millisecond), maxPending,
		acked1-acked0, delivered1-delivered0, unavailable1, recovered.Round(100*time.Millisecond))
	t.Logf("live heap, before → during the outage (90th percentile): gateway %.1f → %.1f MiB (+%.1f), bridge %.1f → %.1f MiB (+%.1f) with at most %.0f messages in flight; bound +%d MiB each",
		mib(gw0), mib(gw1), mib(gw1-gw0), mib(br0), mib(br1), mib(br1-br0), maxInflight, outageHeapBound>>20)

	if acked1 != acked0 {
		t.Errorf("%d acks came while Kafka was down; acks must wait for the log", acked1-acked0)
	}
	if delivered1 == delivered0 {
		t.Errorf("no message was delivered live during the outage")
	}
	if len(liveLate) > 0 {
		t.Errorf("%d accepted messages had not reached a member live by the end of the outage, e.g. %v", len(liveLate), liveLate[:min(3, len(liveLate))])
	}
	if maxPending > outageMaxPending || maxPending == 0 {
		t.Errorf("%.0f messages pending at most, bound %d", maxPending, outageMaxPending)
	}
	if maxInflight > outageMaxInflight {
		t.Errorf("%.0f messages in flight in the bridge, bound %d", maxInflight, outageMaxInflight)
	}
	for name, grew := range map[string]float64{"gateway": gw1 - gw0, "bridge": br1 - br0} {
		if grew > outageHeapBound {
			t.Errorf("the %s's live heap grew by %.1f MiB while Kafka was down, more than %d × max-pending-bytes", name, mib(grew), outageHeapBound/outageMaxPendingBytes)
		}
	}
}
