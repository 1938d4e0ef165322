package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-log/gregor/broker/record"
)

// TestProduceRecordErrors: a refused batch names the records at fault
// (KIP-467, Produce v8+): every record without a key in a compacted
// topic, every record outside message.timestamp.after.max.ms, by index
// within the batch; a batch refused as a whole names none.
func TestProduceRecordErrors(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "compacted", 1, map[string]string{"cleanup.policy": "compact"})
	createTopic(t, cl, "ts", 1, map[string]string{"message.timestamp.after.max.ms": "60000"})
	now := time.Now().UnixMilli()

	rb := record.NewBuilder()
	rb.Add([]byte("k0"), []byte("v"), nil, now)
	rb.Add(nil, []byte("v"), nil, now)
	rb.Add([]byte("k2"), []byte("v"), nil, now)
	rb.Add(nil, []byte("v"), nil, now)
	p := rawProduce(t, cl, "compacted", 0, rb.Build())
	if p.ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("null keys in a compacted topic: %v, want INVALID_RECORD", kerr.ErrorForCode(p.ErrorCode))
	}
	if len(p.ErrorRecords) != 2 || p.ErrorRecords[0].RelativeOffset != 1 || p.ErrorRecords[1].RelativeOffset != 3 {
		t.Fatalf("record errors %+v, want indexes 1 and 3", p.ErrorRecords)
	}
	if m := p.ErrorRecords[0].ErrorMessage; m == nil || !strings.Contains(*m, "no key") {
		t.Fatalf("record error message %v", m)
	}
	if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "2 record(s) without a key") {
		t.Fatalf("error message %v", p.ErrorMessage)
	}

	rb = record.NewBuilder()
	rb.Add(nil, []byte("v"), nil, now+3_600_000)
	rb.Add(nil, []byte("v"), nil, now)
	rb.Add(nil, []byte("v"), nil, now+7_200_000)
	p = rawProduce(t, cl, "ts", 0, rb.Build())
	if p.ErrorCode != kerr.InvalidTimestamp.Code {
		t.Fatalf("timestamps ahead: %v, want INVALID_TIMESTAMP", kerr.ErrorForCode(p.ErrorCode))
	}
	if len(p.ErrorRecords) != 2 || p.ErrorRecords[0].RelativeOffset != 0 || p.ErrorRecords[1].RelativeOffset != 2 {
		t.Fatalf("record errors %+v, want indexes 0 and 2", p.ErrorRecords)
	}
	if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "after the broker's clock") {
		t.Fatalf("error message %v", p.ErrorMessage)
	}

	// A damaged batch is refused whole: no record is named.
	bad := rb.Build()
	bad[len(bad)-1] ^= 0xff
	p = rawProduce(t, cl, "ts", 0, bad)
	if p.ErrorCode != kerr.CorruptMessage.Code || len(p.ErrorRecords) != 0 {
		t.Fatalf("damaged batch: %v, record errors %+v", kerr.ErrorForCode(p.ErrorCode), p.ErrorRecords)
	}
}
