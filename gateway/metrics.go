// Prometheus metrics of the gateway. Every drop has a reason label.

package gateway

import "github.com/prometheus/client_golang/prometheus"

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
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.rooms, m.pending, m.messagesIn, m.deliveries, m.frames, m.errors,
		m.disconnects, m.durableRetries, m.ackSeconds, m.resumeSeconds, m.fanoutSeconds}
}
