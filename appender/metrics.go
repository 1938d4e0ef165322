package appender

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a prometheus.Collector exporting the shipper's
// counters, labelled with the topic. Register it on the application's
// registry; it reads Stats at scrape time and holds no other state.
func (s *Shipper) Collector() prometheus.Collector {
	labels := prometheus.Labels{"topic": s.topic}
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("gregor_appender_"+name, help, variable, labels)
	}
	return &collector{
		s:               s,
		records:         d("records_total", "Log records by stage: at the log call enqueued (to memory), spilled or dropped (dropped_too_large: those of dropped too large); from memory sent, failed or kept (written to the spill files at Close); replayed from the spill files to memory.", "outcome"),
		bytes:           d("record_bytes_total", "Key and value bytes of log records by outcome.", "outcome"),
		bufferedRecords: d("buffered_records", "Records held in memory (queued or in flight)."),
		bufferedBytes:   d("buffered_bytes", "Memory charged for the records held."),
		bufferLimit:     d("buffer_limit_bytes", "The configured memory bound (buffer-bytes)."),
		spillBytes:      d("spill_bytes", "Bytes in spill files, pending writes included."),
		spillPending:    d("spill_pending_bytes", "Spilled bytes in memory waiting to be written."),
	}
}

type collector struct {
	s                                                                                     *Shipper
	records, bytes, bufferedRecords, bufferedBytes, bufferLimit, spillBytes, spillPending *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.bufferedRecords, c.bufferedBytes, c.bufferLimit, c.spillBytes, c.spillPending} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	outcome := func(name string, n, b int64) {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(n), name)
		if b >= 0 {
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(b), name)
		}
	}
	outcome("enqueued", st.Enqueued, st.EnqueuedBytes)
	outcome("spilled", st.Spilled, st.SpilledBytes)
	outcome("dropped", st.Dropped, st.DroppedBytes)
	outcome("dropped_too_large", st.DroppedTooLarge, -1)
	outcome("replayed", st.Replayed, st.ReplayedBytes)
	outcome("sent", st.Sent, st.SentBytes)
	outcome("failed", st.Failed, st.FailedBytes)
	outcome("kept", st.Kept, st.KeptBytes)
	ch <- prometheus.MustNewConstMetric(c.bufferedRecords, prometheus.GaugeValue, float64(st.BufferedRecords))
	ch <- prometheus.MustNewConstMetric(c.bufferedBytes, prometheus.GaugeValue, float64(st.BufferedBytes))
	ch <- prometheus.MustNewConstMetric(c.bufferLimit, prometheus.GaugeValue, float64(c.s.cfg.BufferBytes))
	ch <- prometheus.MustNewConstMetric(c.spillBytes, prometheus.GaugeValue, float64(st.SpillBytes))
	ch <- prometheus.MustNewConstMetric(c.spillPending, prometheus.GaugeValue, float64(st.SpillPendingBytes))
}
