// Prometheus metrics of the bridge.

package bridge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	produced       prometheus.Counter
	produceErrors  prometheus.Counter
	rejected       prometheus.Counter
	retries        prometheus.Counter
	repeats        prometheus.Counter
	busy           prometheus.Counter
	inflight       prometheus.Gauge
	produceSeconds prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		produced:      prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_kafka_produced_total", Help: "Messages acknowledged by Kafka."}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_kafka_produce_errors_total", Help: "Messages Kafka did not accept (the gateway retries)."}),
		rejected:      prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_bridge_rejected_total", Help: "Malformed durable requests dropped."}),
		retries:       prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_bridge_cid_retries_total", Help: "Client retries answered with the id their cid was first written under."}),
		repeats:       prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_bridge_inflight_repeats_total", Help: "Durable requests ignored because the same message was in flight (the gateway resent it)."}),
		busy:          prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_bridge_busy_total", Help: "Durable requests refused because --max-inflight messages were in flight."}),
		inflight:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "natter_bridge_inflight", Help: "Messages handed to the Kafka producer and not yet answered."}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_kafka_produce_seconds", Help: "Time from durable request to Kafka acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
}

// Collectors returns the bridge's metrics for registration.
func (b *Bridge) Collectors() []prometheus.Collector {
	m := b.metrics
	return []prometheus.Collector{m.produced, m.produceErrors, m.rejected, m.retries, m.repeats, m.busy, m.inflight, m.produceSeconds}
}
