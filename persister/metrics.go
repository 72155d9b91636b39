// Prometheus metrics of the persister.

package persister

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rows, duplicates, malformed, errors prometheus.Counter
	batchSize, batchSeconds             prometheus.Histogram
	lag                                 *prometheus.GaugeVec
}

func newMetrics() *metrics {
	return &metrics{
		rows:         prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_persister_rows_total", Help: "Rows inserted into PostgreSQL."}),
		duplicates:   prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_persister_duplicates_total", Help: "Records skipped because their message was already stored."}),
		malformed:    prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_persister_malformed_total", Help: "Records skipped because they are not valid messages."}),
		errors:       prometheus.NewCounter(prometheus.CounterOpts{Name: "natter_persister_insert_errors_total", Help: "Failed batch inserts (retried)."}),
		batchSize:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_persister_batch_size", Help: "Records per batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "natter_persister_batch_seconds", Help: "Time to insert one batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		lag:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "natter_persister_lag", Help: "Records of a partition not yet stored, after the last batch."}, []string{"partition"}),
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.rows, m.duplicates, m.malformed, m.errors, m.batchSize, m.batchSeconds, m.lag}
}
