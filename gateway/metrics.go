// Prometheus metrics of the gateway. Every drop has a reason label.

package gateway

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	connections    prometheus.Gauge
	rooms          prometheus.Gauge
	pending        prometheus.Gauge
	messagesIn     prometheus.Counter
	deliveries     prometheus.Counter
	frames         prometheus.Counter
	errors         *prometheus.CounterVec
	disconnects    *prometheus.CounterVec
	durableRetries prometheus.Counter
	ackSeconds     prometheus.Histogram
	resumeSeconds  prometheus.Histogram
	fanoutSeconds  prometheus.Histogram

	linkGaps        prometheus.Counter
	resyncDelivered prometheus.Counter
	resyncSeconds   prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		connections:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "natter_connections", Help: "Open WebSocket connections."}),
		rooms:          prometheus.NewGauge(prometheus.GaugeOpts{Name: "natter_rooms", Help: "Rooms with at least one local member."}),
		pending:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "natter_durable_pending", Help: "Messages sent live but not yet acknowledged by Kafka."}),
		messagesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_messages_in_total", Help: "Messages accepted from clients and the HTTP API."}),
		deliveries:     prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_deliveries_total", Help: "Server objects queued to connections."}),
		frames:         prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_frames_out_total", Help: "WebSocket frames written (each may carry several objects)."}),
		errors:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "natter_client_errors_total", Help: "Error frames sent, by code."}, []string{"code"}),
		disconnects:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "natter_disconnects_total", Help: "Closed connections, by reason."}, []string{"reason"}),
		durableRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_durable_retries_total", Help: "Durable requests sent again."}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_ack_seconds", Help: "Time from accepting a message to its ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		resumeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_resume_seconds", Help: "Time to answer a join with since.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_fanout_latency_seconds",
			Help:    "From a message's acceptance (its ts, any gateway or region) to its fan-out here, in whole milliseconds.",
			Buckets: []float64{0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}}),
		linkGaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_nats_link_gaps_total",
			Help: "Times a NATS route or leaf-node link of the embedded server broke, opening a gap the gateway resyncs from the log."}),
		resyncDelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_resync_delivered_total",
			Help: "Messages delivered by a resync after a NATS link gap: missed live, read from the log."}),
		resyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_resync_seconds", Help: "Time to resync every room after a NATS link gap.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.rooms, m.pending, m.messagesIn, m.deliveries, m.frames, m.errors,
		m.disconnects, m.durableRetries, m.ackSeconds, m.resumeSeconds, m.fanoutSeconds, m.linkGaps, m.resyncDelivered, m.resyncSeconds}
}

// readyCollector exports /readyz as metrics, running its checks at each
// scrape: natter_ready is 1 when /readyz would answer 200, and
// natter_ready_check{check} is 1 for each check that passes (nats, the
// configured ones, and gateway, which fails while draining).
type readyCollector struct {
	g            *Gateway
	ready, check *prometheus.Desc
}

func newReadyCollector(g *Gateway) *readyCollector {
	return &readyCollector{g: g,
		ready: prometheus.NewDesc("natter_ready", "1 when the gateway is ready (/readyz answers 200), checked at each scrape.", nil, nil),
		check: prometheus.NewDesc("natter_ready_check", "1 when the readiness check passes, by check.", []string{"check"}, nil),
	}
}

func (r *readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- r.ready; ch <- r.check }

func (r *readyCollector) Collect(ch chan<- prometheus.Metric) {
	ok, res := r.g.ready(context.Background())
	ch <- prometheus.MustNewConstMetric(r.ready, prometheus.GaugeValue, b2f(ok))
	if _, draining := res["gateway"]; !draining {
		res["gateway"] = "ok"
	}
	for name, v := range res {
		ch <- prometheus.MustNewConstMetric(r.check, prometheus.GaugeValue, b2f(v == "ok"), name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
