package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/kgoopt"
)

// Topics whose max.message.bytes is below producer.batch-max-bytes. The
// producer batches a topic's lines up to batch-max-bytes, and the broker
// refuses a whole batch over the topic's limit (MESSAGE_TOO_LARGE), though
// every line in it would fit alone. Such records are not dropped: the
// shipper looks the topic's limit up, and from then on produces that
// topic through a client whose batches fit it (one client per limit).
// Only a record refused by such a client, too large alone, is dropped.

// limitLookupTimeout bounds one lookup of a topic's max.message.bytes.
const limitLookupTimeout = 10 * time.Second

// minBatchBytes is the smallest batch size franz-go accepts as a client's
// default; a topic's may be smaller.
const minBatchBytes = 512

// clientFor returns the client to produce topic's records through and
// the batch size it was made for (0: the main client).
func (s *shipper) clientFor(topic string) (*kgo.Client, int32) {
	s.small.Lock()
	defer s.small.Unlock()
	lim, ok := s.small.limits[topic]
	if !ok {
		return s.cl, 0
	}
	return s.small.clients[lim], lim
}

// allClients returns the main client and the small-batch ones.
func (s *shipper) allClients() []*kgo.Client {
	s.small.Lock()
	defer s.small.Unlock()
	out := []*kgo.Client{s.cl}
	for _, lim := range slices.Sorted(maps.Keys(s.small.clients)) {
		out = append(out, s.small.clients[lim])
	}
	return out
}

// fitTopics handles records the main client had refused as too large:
// it looks up each of their topics' max.message.bytes and produces the
// records again through a client whose batches fit, or drops them for
// good when no smaller batch can help (the record is too large alone).
// Records of topics whose limit cannot be looked up now come back later.
func (s *shipper) fitTopics(ctx context.Context, recs []*kgo.Record) {
	byTopic := map[string][]*kgo.Record{}
	for _, r := range recs {
		byTopic[r.Topic] = append(byTopic[r.Topic], r)
	}
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		trs := byTopic[topic]
		lctx, cancel := context.WithTimeout(ctx, limitLookupTimeout)
		lim64, err := kgoopt.MaxMessageBytes(lctx, s.cl, topic)
		cancel()
		lim := int32(min(lim64, math.MaxInt32))
		if errors.Is(err, kgoopt.ErrNoMaxMessageBytes) {
			lim, err = 0, nil // the cluster does not tell: no smaller batch to try
		}
		if err != nil {
			if ctx.Err() != nil {
				return // stopping: unacknowledged, read again after the restart
			}
			s.a.log.Warn("records refused as too large: cannot look up the topic's max.message.bytes; trying again",
				zap.String("topic", topic), zap.Int("records", len(trs)), zap.Error(err))
			s.retryLater(trs, true)
			continue
		}
		if lim <= 0 || lim >= s.batchMax {
			// The batches were no larger than the topic takes: each
			// record is too large alone.
			for _, r := range trs {
				s.drop(r, kerr.MessageTooLarge)
			}
			continue
		}
		cl, batch, err := s.smallClient(topic, lim)
		if err != nil {
			s.a.log.Error("cannot make a producer for the topic's max.message.bytes; trying again", zap.String("topic", topic), zap.Error(err))
			s.retryLater(trs, true)
			continue
		}
		for _, r := range trs {
			r.Context.(*recRef).limit = batch
			cl.Produce(ctx, r, s.promise)
		}
	}
}

// smallClient records topic's limit and returns the client for it,
// making it the first time, and the batch size it was made for (the
// limit).
func (s *shipper) smallClient(topic string, lim int32) (*kgo.Client, int32, error) {
	s.small.Lock()
	defer s.small.Unlock()
	batch := max(lim, 1)
	cl := s.small.clients[batch]
	if cl == nil {
		// franz-go checks only the size for no topic against its
		// smallest (minBatchBytes); a topic's may be smaller.
		fn := func(topic string) int32 {
			if topic == "" {
				return max(batch, minBatchBytes)
			}
			return batch
		}
		var err error
		cl, err = kgo.NewClient(append(slices.Clone(s.opts), kgo.ProducerBatchMaxBytesFn(fn))...)
		if err != nil {
			return nil, 0, fmt.Errorf("create producer: %w", err)
		}
		if s.small.clients == nil {
			s.small.clients, s.small.limits = map[int32]*kgo.Client{}, map[string]int32{}
		}
		s.small.clients[batch] = cl
	}
	if s.small.limits[topic] != batch {
		s.small.limits[topic] = batch
		s.a.log.Warn("the topic's max.message.bytes is below producer.batch-max-bytes; producing it in smaller batches",
			zap.String("topic", topic), zap.Int32("max.message.bytes", lim), zap.Int32("batch-max-bytes", s.batchMax))
	}
	return cl, batch, nil
}
