package broker

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// metrics are the broker's Prometheus metrics, on a registry of its own so
// several brokers can live in one test process.
type metrics struct {
	reg           *prometheus.Registry
	connections   prometheus.Gauge
	requests      *prometheus.CounterVec
	requestErrors *prometheus.CounterVec
	// connectionsRefused counts connections closed as soon as they were
	// accepted, by reason (per_ip_limit, open_files).
	connectionsRefused *prometheus.CounterVec
	handlerPanics      prometheus.Counter
	requestSeconds     *prometheus.HistogramVec
	bytesIn            prometheus.Counter
	bytesOut           prometheus.Counter
	producedRecords    prometheus.Counter
	producedBytes      prometheus.Counter
	fetchedBytes       prometheus.Counter
	partitionErrors    *prometheus.CounterVec
	txnEnded           *prometheus.CounterVec
	// openTxns counts the transactions open, set by the transaction
	// coordinator once it runs.
	openTxns atomic.Pointer[func() int]

	// byAPI caches each API's series of requests and requestSeconds, so
	// that a request costs no label lookup; filled on first use.
	byAPI [apiMetricsKeys]atomic.Pointer[apiMetrics]
}

// apiMetricsKeys bounds the API keys whose series are cached.
const apiMetricsKeys = 128

// apiMetrics are one API's request counter and latency histogram.
type apiMetrics struct {
	requests prometheus.Counter
	seconds  prometheus.Observer
}

// api returns key's series. Keys outside the cache, which no registered
// API has, get uncached series.
func (m *metrics) api(key int16) *apiMetrics {
	if key < 0 || int(key) >= len(m.byAPI) {
		return m.newAPIMetrics(key)
	}
	if a := m.byAPI[key].Load(); a != nil {
		return a
	}
	a := m.newAPIMetrics(key)
	m.byAPI[key].Store(a) // racing stores store the same series
	return a
}

func (m *metrics) newAPIMetrics(key int16) *apiMetrics {
	name := kmsg.NameForKey(key)
	return &apiMetrics{requests: m.requests.WithLabelValues(name), seconds: m.requestSeconds.WithLabelValues(name)}
}

// observe records a request of key that took from start until now.
func (m *metrics) observe(key kmsg.Key, start time.Time) {
	m.api(int16(key)).seconds.Observe(time.Since(start).Seconds())
}

// newMetrics makes the metrics; sessions is read for the fetch-session
// gauge, failures for the write-failure gauge.
func newMetrics(sessions *atomic.Int64, failures func() []string, flushLag func() time.Duration) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gregor_connections", Help: "Open client connections."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gregor_requests_total", Help: "Requests handled, by API."}, []string{"api"}),
		connectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gregor_connections_refused_total", Help: "Connections closed as soon as accepted, by reason: per_ip_limit (max.connections.per.ip), open_files (too close to the open-file limit)."}, []string{"reason"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gregor_request_errors_total", Help: "Requests that could not be decoded or were refused, by API."}, []string{"api"}),
		handlerPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_handler_panics_total", Help: "Requests whose handling panicked (a bug; logged with its stack): the connection was closed."}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gregor_request_duration_seconds", Help: "Time from decoding a request to its response being ready, by API (for Produce, from the first records appended, which happens as the request is read).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}}, []string{"api"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_network_received_bytes_total", Help: "Request bytes received."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_network_sent_bytes_total", Help: "Response bytes sent."}),
		producedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_produced_records_total", Help: "Records appended to logs."}),
		producedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_produced_bytes_total", Help: "Record-batch bytes appended to logs."}),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gregor_fetched_bytes_total", Help: "Record-batch bytes served to fetchers."}),
		partitionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gregor_partition_errors_total", Help: "Error codes returned (per partition, group or resource), by API and error name."}, []string{"api", "error"}),
		txnEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gregor_transactions_ended_total", Help: "Transactions ended, by outcome: commit, abort (by the producer, or by a new producer with its id) or timeout (aborted by the broker)."}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.connections, m.connectionsRefused, m.requests, m.requestErrors, m.handlerPanics, m.requestSeconds, m.bytesIn, m.bytesOut,
		m.producedRecords, m.producedBytes, m.fetchedBytes, m.partitionErrors, m.txnEnded,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gregor_transactions_open", Help: "Transactions open (Ongoing, or decided with markers still to write)."},
			func() float64 {
				if f := m.openTxns.Load(); f != nil {
					return float64((*f)())
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gregor_fetch_sessions", Help: "Open fetch sessions (KIP-227)."},
			func() float64 { return float64(sessions.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gregor_flush_lag_seconds", Help: "Age of the oldest acknowledged append not yet fsynced, over all partitions: what a power loss could cost now (flush.ms bounds it on a disk that keeps up)."},
			func() float64 {
				if flushLag == nil {
					return 0
				}
				return flushLag().Seconds()
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gregor_write_failures", Help: "Partition logs (and the metadata store) refusing writes until the broker restarts; /healthz lists them."},
			func() float64 {
				if failures == nil {
					return 0
				}
				return float64(len(failures()))
			}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if b.ctx.Err() != nil {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if problems := b.writeFailures(); len(problems) > 0 {
			const shown = 20
			var sb strings.Builder
			sb.WriteString("unhealthy: writes are refused until the broker restarts\n")
			for i, p := range problems {
				if i == shown {
					fmt.Fprintf(&sb, "and %d more\n", len(problems)-shown)
					break
				}
				sb.WriteString(p + "\n")
			}
			http.Error(w, sb.String(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}

// flushLag is the age of the oldest append not yet fsynced, over all
// partition logs (0 when all are flushed).
func (b *Broker) flushLag() time.Duration {
	if b.logs == nil {
		return 0
	}
	var oldest time.Time
	for _, l := range b.logs.Logs() {
		if t := l.UnflushedSince(); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// writeFailures lists what refuses writes until the broker restarts: the
// metadata store and every partition log whose write side failed (a failed
// fsync, a write error other than a full disk, a directory removed under
// the broker). A full disk is not listed: it refuses writes only while it
// lasts.
func (b *Broker) writeFailures() []string {
	var out []string
	if f, ok := b.store.(interface{ Failed() error }); ok {
		if err := f.Failed(); err != nil {
			out = append(out, "metadata store: "+err.Error())
		}
	}
	if b.logs == nil {
		return out
	}
	if err := b.logs.DataDirError(); err != nil {
		return append(out, err.Error()) // every log, for the same reason
	}
	for _, l := range b.logs.Logs() {
		if err := l.WriteError(); err != nil {
			out = append(out, fmt.Sprintf("%s-%d: %v", l.Topic(), l.Partition(), err))
		}
	}
	return out
}

// countError counts an error code returned by api in
// gregor_partition_errors_total, labelled with the code's name only
// (GROUP_ID_NOT_FOUND), as Kafka's ErrorsPerSec is. Codes that are routine
// steps of a protocol (MEMBER_ID_REQUIRED on a first JoinGroup,
// REBALANCE_IN_PROGRESS on a Heartbeat) are counted too, as in Kafka.
func (m *metrics) countError(api string, code int16) {
	if code == 0 {
		return
	}
	m.partitionErrors.WithLabelValues(api, codeName(code)).Inc()
}

// codeName is an error code's name (INVALID_PARTITIONS), without kerr's
// generic description.
func codeName(code int16) string {
	if ke, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
		return ke.Message
	}
	return "UNKNOWN_" + strconv.Itoa(int(code))
}
