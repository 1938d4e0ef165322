//go:build slogkafka

package benchpeer

// Needs github.com/samber/slog-kafka/v2 from a module proxy that serves it:
//
//	go get github.com/samber/slog-kafka/v2 && go test -tags slogkafka -bench SlogKafka .

import (
	"log/slog"
	"testing"

	slogkafka "github.com/samber/slog-kafka/v2"
)

// BenchmarkSlogKafka: samber/slog-kafka itself into a gregor broker.
func BenchmarkSlogKafka(b *testing.B) {
	addr := startBroker(b, "slogkafka")
	w := newKafkaGoWriter(addr, "slogkafka")
	defer w.Close()
	logSlog(b, slog.New(slogkafka.Option{Level: slog.LevelInfo, KafkaWriter: w}.NewKafkaHandler()))
}
