package storage

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// storedCodecs lists the codec of every batch stored in the log.
func storedCodecs(t *testing.T, l *Log) []record.Codec {
	t.Helper()
	l.SetHighWatermark(l.LogEndOffset())
	c, err := l.Read(l.LogStartOffset(), l.HighWatermark(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	buf := make([]byte, c.Size)
	if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
		t.Fatal(err)
	}
	var codecs []record.Codec
	if err := record.Batches(buf, func(_ int, _ []byte, h record.Header) error {
		codecs = append(codecs, h.Codec())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return codecs
}

// TestRecompressOnAppend: with compression.type set to a codec, every
// batch is stored with it, whatever the producer used; records, offsets
// and idempotent-producer duplicates are unaffected; a batch that grows
// past max.message.bytes is refused.
func TestRecompressOnAppend(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "/data/topic-0", Config{Recompress: true, RecompressTo: record.CodecZstd})
	defer l.Close()
	var want []string
	for i, c := range []record.Codec{record.CodecNone, record.CodecGzip, record.CodecSnappy, record.CodecLZ4, record.CodecZstd} {
		b := makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: 7, seq: int32(10 * i), codec: c, tag: fmt.Sprint("c", i)})
		res := mustAppend(t, l, b)
		if res.BaseOffset != int64(10*i) {
			t.Fatalf("batch %d at offset %d", i, res.BaseOffset)
		}
		for j := range 10 {
			want = append(want, fmt.Sprintf("c%d-%d", i, j))
		}
	}
	// A retried batch is still known by its sequence.
	dup := makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: 7, seq: 10, codec: record.CodecGzip, tag: "c1"})
	if res := mustAppend(t, l, dup); !res.Duplicate || res.BaseOffset != 10 {
		t.Fatalf("retried batch: %+v", res)
	}
	for i, c := range storedCodecs(t, l) {
		if c != record.CodecZstd {
			t.Fatalf("batch %d stored with %v", i, c)
		}
	}
	recs := readAll(t, l, 0)
	checkSequential(t, recs, 0)
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if len(r.value) < len(want[i]) || r.value[:len(want[i])] != want[i] {
			t.Fatalf("record %d is %q, want %q...", i, r.value, want[i])
		}
	}

	// To none: a compressible batch under the limit compressed, over it
	// uncompressed, is too large.
	l2 := openLog(t, vfs.NewMem(), "/data/topic-1", Config{Recompress: true, RecompressTo: record.CodecNone, MaxMessageBytes: 4000})
	defer l2.Close()
	mustAppend(t, l2, makeBatch(t, batchSpec{n: 10, valueSize: 100, pid: -1, codec: record.CodecGzip, tag: "s"}))
	if got := storedCodecs(t, l2); len(got) != 1 || got[0] != record.CodecNone {
		t.Fatalf("stored %v, want one uncompressed batch", got)
	}
	big := makeBatch(t, batchSpec{n: 100, valueSize: 100, pid: -1, codec: record.CodecGzip, tag: "b"})
	if len(big) >= 4000 {
		t.Fatalf("test batch of %d bytes is not under the limit compressed", len(big))
	}
	if _, err := l2.Append(big, 0); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("append growing past max.message.bytes: %v", err)
	}
}
