// Package benchpeer benchmarks the appender against an existing Go Kafka
// log shipper, samber/slog-kafka, which is built on segmentio/kafka-go. It
// is a module of its own so that those dependencies stay out of gregor's
// go.mod.
//
// Run it with ./run.sh (or: cd appender/benchpeer && go test -bench .).
// The slog-kafka benchmark itself is behind the build tag "slogkafka"
// (go test -tags slogkafka -bench .) because the module proxy this project
// uses does not serve github.com/samber/slog-kafka; without it, the
// kafka-go benchmark measures the transport slog-kafka uses, with slog's
// own JSON encoding in front, a lower bound on slog-kafka's cost.
package benchpeer
