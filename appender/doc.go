// Package appender ships an application's logs to a gregor (or any Kafka)
// topic: a zapcore.Core (NewCore) and an slog.Handler (NewHandler) in front
// of one asynchronous shipper (Shipper) built on franz-go's kgo.
//
//	h, err := appender.NewHandler(appender.WithBrokers("127.0.0.1:9092"), appender.WithTopic("logs"))
//	if err != nil { ... }              // only a bad configuration fails; the broker may be down
//	defer h.Close(ctx)                 // ctx with a deadline: ships what is buffered, reports what was not delivered
//	log := slog.New(h)
//
//	core, err := appender.NewCore(appender.WithConfig(cfg)) // cfg: an appender.Config, built or decoded by the app
//	logger := zap.New(zapcore.NewTee(appCore, core))
//
// # What a log call does
//
// It encodes the record as JSON into a pooled buffer, exactly as zap's JSON
// encoder (the zap core uses it) or slog.JSONHandler (the slog handler
// reproduces it byte for byte, except where slog would emit invalid JSON)
// would, and hands it to the shipper through a
// lock-free queue. It never waits on the network. The record's key can be
// taken from a field (Config.KeyField), its timestamp is the log time, and
// the service, host and level travel as headers (HeaderService,
// HeaderHost, HeaderLevel).
//
// Memory is bounded (Config.BufferBytes, Config.BufferRecords): records
// queued, in flight to the broker, and waiting to be written to a spill
// file all count. When the bound is reached the configured policy applies:
// drop and count (the default), block up to Config.BlockTimeout, or spill
// to local files (see spill.go for their format) that are replayed in
// order, before anything newer, once the broker takes records again. A log
// call never waits for the disk: the spill writer's in-memory share is a
// quarter of BufferBytes, it may borrow the in-memory queue's idle share
// while a stalled disk holds it up, and only beyond that are records
// dropped (and counted). A failed spill write (a full disk) loses what it
// held (counted as failed and reported); the spill then takes nothing,
// and records beyond the memory bound are dropped, until what it held is
// replayed and a second has passed, when it tries its files again.
// Records too large for the topic are dropped (or, if logged before the
// topic's limit was learned, failed) and counted, never retried.
//
// Sync waits for what was logged before it; Close stops accepting,
// flushes until its context's deadline, and returns a *DeliveryError
// describing what was not delivered. Stats returns the counters;
// Shipper.Collector exports them to Prometheus. Problems that cannot be
// returned to a log call go to the WithErrorHandler function.
//
// The package owns the encoding, the queue, the spill files and the
// producer client. It does not own the topic: create it beforehand (or let
// the broker auto-create it); records for a missing topic fail and are
// counted.
//
// # Benchmarks
//
// go test -bench . in this directory compares the cost of a log call with
// zap's JSON core and slog's JSONHandler writing to io.Discard, and
// measures sustained throughput into a broker; benchpeer/run.sh runs those
// and the comparison with samber/slog-kafka's transport (a separate module,
// to keep its dependencies out of go.mod).
package appender
