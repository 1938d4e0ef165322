package broker

import (
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/topicconfig"
)

// errorCode maps an error from storage, meta or this package to the Kafka
// error code a client expects. Unknown errors are KAFKA_STORAGE_ERROR when
// they come from a log and UNKNOWN_SERVER_ERROR otherwise.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrCorruptBatch):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, storage.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrUnsupportedFeature):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, storage.ErrFencedLeaderEpoch):
		return kerr.FencedLeaderEpoch.Code
	case errors.Is(err, storage.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, storage.ErrStorage), errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, meta.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, meta.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, meta.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, meta.ErrStoreUnavailable):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, topicconfig.ErrInvalid):
		return kerr.InvalidConfig.Code
	}
	return kerr.UnknownServerError.Code
}

// errorMessage is the message to send with an error code, or nil.
// The error code already names a *kerr.Error the message wraps, so its
// text is cut from the end: "topic \"t\": TOPIC_ALREADY_EXISTS: Topic with
// this name already exists." goes out as "topic \"t\"", as Kafka's
// messages carry only the detail.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	var ke *kerr.Error
	if errors.As(err, &ke) {
		if cut, ok := strings.CutSuffix(s, ": "+ke.Error()); ok && cut != "" {
			s = cut
		}
	}
	return &s
}
