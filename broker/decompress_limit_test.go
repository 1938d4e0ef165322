package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-log/gregor/broker/record"
)

// TestDecompressBoundRefusedAsInvalidRecord produces a batch of 3 MB of
// zeros, which zstd and gzip shrink past the broker's decompression bound.
// It is answered INVALID_RECORD, which clients do not retry, with a message
// naming the bound, not CORRUPT_MESSAGE, which librdkafka retried until its
// delivery timeout and then reported only as a timeout; nothing is
// appended, and an ordinary batch after it is taken.
func TestDecompressBoundRefusedAsInvalidRecord(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "bomb", 1, nil)
	zeros := make([]byte, 3_000_000)
	for _, c := range []record.Codec{record.CodecZstd, record.CodecGzip} {
		rb := record.NewBuilder()
		if err := rb.SetCodec(c); err != nil {
			t.Fatal(err)
		}
		rb.Add(nil, zeros, nil, time.Now().UnixMilli())
		batch := rb.Build()
		if limit := record.DecompressLimit(len(batch)); limit >= len(zeros) {
			t.Fatalf("%s: a %d-byte batch may decompress to %d bytes; the test needs it under the bound", c, len(batch), limit)
		}
		p := rawProduce(t, cl, "bomb", 0, batch)
		if p.ErrorCode != kerr.InvalidRecord.Code {
			t.Fatalf("%s: error code %d, want INVALID_RECORD (%d)", c, p.ErrorCode, kerr.InvalidRecord.Code)
		}
		if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "decompresses to more than") || !strings.Contains(*p.ErrorMessage, "512 times its size") {
			t.Fatalf("%s: error message %v does not name the bound", c, p.ErrorMessage)
		}
	}
	rb := record.NewBuilder()
	rb.Add(nil, []byte("ordinary"), nil, time.Now().UnixMilli())
	if p := rawProduce(t, cl, "bomb", 0, rb.Build()); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("ordinary batch after the refused ones: code %d, base offset %d; want 0, 0", p.ErrorCode, p.BaseOffset)
	}
}
