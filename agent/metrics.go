package agent

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	linesRead, shipped, truncated, parseErrors, dropped, retried *prometheus.CounterVec

	filesOpen        prometheus.Gauge
	filesKnown       prometheus.Gauge
	fileErrors       *prometheus.CounterVec
	truncations      prometheus.Counter
	eventOverflows   prometheus.Counter
	checkpointWrites prometheus.Counter
	checkpointErrors prometheus.Counter
	checkpointDamage prometheus.Counter
}

// inputMetrics are one input's counters, resolved once.
type inputMetrics struct {
	linesRead, shipped, truncated, parseErrors, dropped, retried prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"agent": a.cfg.Name}
	f := func(name, help string, vl ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gregor_agent_" + name, Help: help, ConstLabels: labels}, vl)
		reg.MustRegister(v)
		return v
	}
	c := func(name, help string) prometheus.Counter {
		v := prometheus.NewCounter(prometheus.CounterOpts{Name: "gregor_agent_" + name, Help: help, ConstLabels: labels})
		reg.MustRegister(v)
		return v
	}
	g := func(name, help string) prometheus.Gauge {
		v := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gregor_agent_" + name, Help: help, ConstLabels: labels})
		reg.MustRegister(v)
		return v
	}
	m := &metrics{
		reg:              reg,
		linesRead:        f("lines_read_total", "Lines read from files.", "topic"),
		shipped:          f("records_shipped_total", "Records the broker acknowledged.", "topic"),
		truncated:        f("lines_truncated_total", "Lines longer than max-line-bytes, shipped cut to that size.", "topic"),
		parseErrors:      f("parse_errors_total", "Lines the parser rejected (shipped raw with a parse-error header).", "topic"),
		dropped:          f("records_dropped_total", "Records the broker refused for good (too large, invalid); logged and skipped.", "topic"),
		retried:          f("records_retried_total", "Records produced again after a failure.", "topic"),
		filesOpen:        g("files_watched", "Files open for tailing."),
		filesKnown:       g("files_known", "Files with a checkpoint (open, closed or orphaned)."),
		fileErrors:       f("file_errors_total", "Failures to stat, open or read a file, by operation.", "op"),
		truncations:      c("file_truncations_total", "Files found truncated (copytruncate) and read again from the start."),
		eventOverflows:   c("event_overflows_total", "Overflows of the file-system event queue (each causes a rescan)."),
		checkpointWrites: c("checkpoint_writes_total", "Checkpoint files written."),
		checkpointErrors: c("checkpoint_errors_total", "Failed checkpoint writes."),
		checkpointDamage: c("checkpoint_damage_total", "Damaged parts found when loading the checkpoint."),
	}
	reg.MustRegister(&behindCollector{a: a, desc: prometheus.NewDesc("gregor_agent_file_bytes_behind",
		"Bytes of a file not yet acknowledged by the broker (size minus checkpoint).", []string{"path", "inode"}, labels)})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gregor_agent_buffered_bytes", Help: "Record bytes produced and not yet acknowledged.", ConstLabels: labels,
	}, func() float64 {
		if a.ship == nil {
			return 0
		}
		return float64(a.ship.cl.BufferedProduceBytes())
	}))
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) forInput(in *input) inputMetrics {
	return inputMetrics{
		linesRead:   m.linesRead.WithLabelValues(in.topic),
		shipped:     m.shipped.WithLabelValues(in.topic),
		truncated:   m.truncated.WithLabelValues(in.topic),
		parseErrors: m.parseErrors.WithLabelValues(in.topic),
		dropped:     m.dropped.WithLabelValues(in.topic),
		retried:     m.retried.WithLabelValues(in.topic),
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// behindCollector reports bytes behind per open or closed file at scrape
// time, so finished files disappear from the metrics with no bookkeeping.
type behindCollector struct {
	a    *Agent
	desc *prometheus.Desc
}

func (c *behindCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *behindCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fs := range c.a.Status() {
		if fs.State == StateOrphan || fs.Behind < 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(fs.Behind), fs.Path, strconv.FormatUint(fs.Ino, 10))
	}
}
