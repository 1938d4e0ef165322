// Command webapp is a small net/http application that ships a log record
// for every request to a gregor (or any Kafka) topic through the appender,
// with the slog handler (the default) or the zap core (-logger zap).
//
//	go run ./examples/webapp -brokers 127.0.0.1:9092 -topic weblogs
//
// Flags fall back to environment variables: GREGOR_BROKERS (comma
// separated), GREGOR_TOPIC, WEBAPP_LISTEN. The app starts even if the
// broker is down; records wait in a bounded buffer (and spill to disk with
// -spill-dir), and the shipper's counters are on /metrics.
//
// With zap, the appender's core goes beside the app's own core:
//
//	core, err := appender.NewCore(appender.WithBrokers(brokers...), appender.WithTopic(topic))
//	logger := zap.New(zapcore.NewTee(consoleCore, core))
//	defer core.Close(ctx)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gregor-log/gregor/appender"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// requestLogger logs one request; the two front ends implement it.
type requestLogger func(r *http.Request, status int, took time.Duration)

func run() error {
	listen := flag.String("listen", envOr("WEBAPP_LISTEN", "127.0.0.1:8080"), "HTTP listen address")
	brokers := flag.String("brokers", envOr("GREGOR_BROKERS", "127.0.0.1:9092"), "comma-separated broker addresses")
	topic := flag.String("topic", envOr("GREGOR_TOPIC", "weblogs"), "topic for the request logs")
	service := flag.String("service", "webapp", "service header of every record")
	which := flag.String("logger", "slog", "front end: slog or zap")
	spillDir := flag.String("spill-dir", "", "spill records to this directory when the buffer is full (default: drop)")
	flag.Parse()

	opts := []appender.Option{
		appender.WithBrokers(strings.Split(*brokers, ",")...),
		appender.WithTopic(*topic),
		appender.WithService(*service),
		appender.WithKeyField("user"),                                               // one user's requests land in one partition
		appender.WithErrorHandler(func(err error) { fmt.Fprintln(os.Stderr, err) }), // errors start "appender:"
	}
	if *spillDir != "" {
		opts = append(opts, appender.WithSpillOnFull(*spillDir, 1<<30))
	}
	sh, err := appender.NewShipper(opts...)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(sh.Collector())

	var logRequest requestLogger
	switch *which {
	case "slog":
		log := slog.New(sh.Handler()).With("app", *service)
		logRequest = func(r *http.Request, status int, took time.Duration) {
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Duration("took", took),
				slog.String("remote", r.RemoteAddr),
				slog.String("user", r.Header.Get("X-User")))
		}
	case "zap":
		console := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
			zapcore.Lock(os.Stderr), zapcore.WarnLevel)
		log := zap.New(zapcore.NewTee(console, sh.Core())).With(zap.String("app", *service))
		logRequest = func(r *http.Request, status int, took time.Duration) {
			log.Info("request",
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.Int("status", status),
				zap.Duration("took", took),
				zap.String("remote", r.RemoteAddr),
				zap.String("user", r.Header.Get("X-User")))
		}
	default:
		return fmt.Errorf("-logger %q: want slog or zap", *which)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", r.URL.Query().Get("name"))
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "it failed, as asked", http.StatusInternalServerError)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	srv := &http.Server{Addr: *listen, Handler: logged(mux, logRequest), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Fprintf(os.Stderr, "webapp: listening on %s, logging to topic %s at %s\n", *listen, *topic, *brokers)

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	// Requests are done: ship what is buffered, then report.
	closeErr := sh.Close(shutdownCtx)
	fmt.Fprintf(os.Stderr, "webapp: appender stats %+v\n", sh.Stats())
	return errors.Join(shutdownErr, closeErr)
}

// logged wraps h so that every request is logged once it is answered.
func logged(h http.Handler, logRequest requestLogger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		logRequest(r, sw.status, time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
