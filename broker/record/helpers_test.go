package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// testRecord is what a test puts into a batch and expects back.
type testRecord struct {
	key, value []byte
	headers    []RecordHeader
	ts         int64
}

// makeRecords returns n records with keys, values and headers of varied
// shapes (null, empty, long) and values of about valueSize bytes of
// log-like, moderately compressible text.
func makeRecords(rng *rand.Rand, n, valueSize int) []testRecord {
	words := []string{"GET", "POST", "/api/v1/users", "200", "404", "user=", "latency_ms=", "host=web-", "trace=", "ok", "error"}
	recs := make([]testRecord, n)
	for i := range recs {
		r := &recs[i]
		switch i % 4 {
		case 0: // null key
		case 1:
			r.key = []byte{}
		default:
			r.key = fmt.Appendf(nil, "key-%d", rng.IntN(1000))
		}
		var v []byte
		for len(v) < valueSize {
			v = append(v, words[rng.IntN(len(words))]...)
			v = fmt.Appendf(v, "%d ", rng.IntN(100000))
		}
		r.value = v[:valueSize]
		if i%7 == 3 {
			r.value = nil
		}
		if i%3 == 0 {
			r.headers = []RecordHeader{{Key: "h1", Value: []byte("v1")}, {Key: "", Value: nil}, {Key: "h3", Value: []byte{}}}
		}
		r.ts = 1_700_000_000_000 + int64(i*3) - int64(i%5) // not monotonic: deltas may be negative
	}
	return recs
}

func buildBatch(t testing.TB, c Codec, recs []testRecord) []byte {
	t.Helper()
	b := NewBuilder()
	if err := b.SetCodec(c); err != nil {
		t.Fatal(err)
	}
	b.SetProducer(42, 3, 100)
	for _, r := range recs {
		b.Add(r.key, r.value, r.headers, r.ts)
	}
	return b.Build()
}

// kgoCompressor compresses the way franz-go's producer does for codec c.
func kgoCompress(t testing.TB, c Codec, src []byte) []byte {
	t.Helper()
	var codec kgo.CompressionCodec
	switch c {
	case CodecGzip:
		codec = kgo.GzipCompression()
	case CodecSnappy:
		codec = kgo.SnappyCompression()
	case CodecLZ4:
		codec = kgo.Lz4Compression()
	case CodecZstd:
		codec = kgo.ZstdCompression()
	default:
		return src
	}
	comp, err := kgo.DefaultCompressor(codec)
	if err != nil {
		t.Fatal(err)
	}
	out, used := comp.Compress(new(bytes.Buffer), src)
	if int8(used) != int8(c) {
		t.Fatalf("kgo compressed with codec %d, want %d", used, c)
	}
	return bytes.Clone(out)
}

// kmsgBatch builds a batch with kmsg's encoders and kgo's compressor,
// independently of Builder.
func kmsgBatch(t testing.TB, c Codec, recs []testRecord) []byte {
	t.Helper()
	var raw []byte
	for i, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.ts - recs[0].ts,
			OffsetDelta:      int32(i),
			Key:              r.key,
			Value:            r.value,
		}
		for _, h := range r.headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1) // AppendTo with Length 0 writes one length byte
		raw = kr.AppendTo(raw)
	}
	return kmsgWrap(t, c, len(recs), recs[0].ts, kgoCompress(t, c, raw))
}

// kmsgWrap wraps an already encoded (and maybe compressed) records section
// in a batch header made by kmsg, with a correct CRC.
func kmsgWrap(t testing.TB, c Codec, n int, ts int64, records []byte) []byte {
	t.Helper()
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           int16(c),
		LastOffsetDelta:      int32(n - 1),
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(n),
		Records:              records,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	fixCRC(b)
	return b
}

// fixCRC recomputes the CRC of a batch after a test edited it.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// readBack decodes a batch with kmsg and kgo's decompressor.
func readBack(t testing.TB, batch []byte) (kmsg.RecordBatch, []kmsg.Record) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		t.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
	}
	raw, err := kgo.DefaultDecompressor().Decompress(rb.Records, kgo.CompressionCodecType(rb.Attributes&7))
	if err != nil {
		t.Fatalf("kgo decompress: %v", err)
	}
	var recs []kmsg.Record
	for len(raw) > 0 {
		var r kmsg.Record
		length, n := binary.Varint(raw)
		if n <= 0 {
			t.Fatalf("bad record length")
		}
		end := n + int(length)
		if err := r.ReadFrom(raw[:end]); err != nil {
			t.Fatalf("kmsg.Record.ReadFrom: %v", err)
		}
		recs = append(recs, r)
		raw = raw[end:]
	}
	return rb, recs
}
