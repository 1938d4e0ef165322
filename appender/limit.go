package appender

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-log/gregor/internal/kgoopt"
)

// Records larger than the topic allows.
//
// A broker rejects a whole record batch larger than the topic's
// max.message.bytes, so one oversized record would fail every record
// batched with it. Before the first record goes to the producer, the
// shipper asks the broker for the topic's max.message.bytes
// (DescribeConfigs). Batches are then capped at that size, and a record
// that could not fit even alone fails by itself (counted as failed, never
// retried) instead of poisoning its neighbours. Log calls made once the
// limit is known drop such records at once (counted as dropped, too
// large).
//
// If the broker cannot say (an old or restricted broker, a missing topic),
// Config.BatchMaxBytes alone applies.

// recordOverhead bounds what a record adds to its key and value in a
// batch of one: the batch header and the record's own framing and
// headers.
func (s *Shipper) recordOverhead() int64 {
	return 61 + 32 + int64(len(HeaderService)+len(s.service)+len(HeaderHost)+len(s.host)+len(HeaderLevel)+16+12)
}

// batchLimit is the batch cap in force: BatchMaxBytes, lowered to the
// topic's max.message.bytes once known.
func (s *Shipper) batchLimit() int64 {
	limit := int64(s.cfg.BatchMaxBytes)
	if t := s.topicLimit.Load(); t > 0 && t < limit {
		limit = t
	}
	return limit
}

// fitsTopic reports whether a record with n key and value bytes can be
// produced to the topic.
func (s *Shipper) fitsTopic(n int64) bool { return n+s.recordOverhead() <= s.batchLimit() }

// limitKnown reports whether discovery has finished (with or without an
// answer).
func (s *Shipper) limitKnown() bool {
	select {
	case <-s.limitDone:
		return true
	default:
		return false
	}
}

// discoverLimit is the goroutine that learns the topic's
// max.message.bytes. It retries while the broker is unreachable and gives
// up on an answer that will not change (unsupported, not allowed, no such
// topic). It ends when it has an answer or ctx (the shipper's) is done.
func (s *Shipper) discoverLimit(ctx context.Context) {
	defer func() {
		close(s.limitDone)
		s.wakeNow()
	}()
	backoff := 50 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		limit, err := kgoopt.MaxMessageBytes(rctx, s.cl, s.topic)
		cancel()
		if err == nil {
			s.topicLimit.Store(limit)
			return
		}
		if ctx.Err() != nil || errors.Is(err, kgoopt.ErrNoMaxMessageBytes) || errors.Is(err, kerr.UnknownTopicOrPartition) {
			return // records for a missing topic fail in kgo, counted
		}
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
