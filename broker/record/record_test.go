package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestBuilderRoundTripKmsg builds batches of every codec with Builder and
// reads them back with kmsg and kgo's decompressor.
func TestBuilderRoundTripKmsg(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	recs := makeRecords(rng, 200, 100)
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			batch := buildBatch(t, c, recs)
			rb, got := readBack(t, batch)
			if rb.Magic != 2 || rb.NumRecords != int32(len(recs)) || rb.LastOffsetDelta != int32(len(recs)-1) {
				t.Fatalf("header: magic %d records %d lastOffsetDelta %d", rb.Magic, rb.NumRecords, rb.LastOffsetDelta)
			}
			if rb.ProducerID != 42 || rb.ProducerEpoch != 3 || rb.FirstSequence != 100 || int8(rb.Attributes&7) != int8(c) {
				t.Fatalf("header: producer %d/%d/%d attrs %x", rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence, rb.Attributes)
			}
			if rb.FirstTimestamp != recs[0].ts {
				t.Fatalf("base timestamp %d, want %d", rb.FirstTimestamp, recs[0].ts)
			}
			var maxTs int64
			for _, r := range recs {
				maxTs = max(maxTs, r.ts)
			}
			if rb.MaxTimestamp != maxTs {
				t.Fatalf("max timestamp %d, want %d", rb.MaxTimestamp, maxTs)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i, r := range got {
				w := recs[i]
				if r.OffsetDelta != int32(i) || rb.FirstTimestamp+r.TimestampDelta64 != w.ts ||
					!bytesEqualNull(r.Key, w.key) || !bytesEqualNull(r.Value, w.value) || len(r.Headers) != len(w.headers) {
					t.Fatalf("record %d: got %+v, want %+v", i, r, w)
				}
				for j, h := range r.Headers {
					if h.Key != w.headers[j].Key || !bytesEqualNull(h.Value, w.headers[j].Value) {
						t.Fatalf("record %d header %d: got %+v, want %+v", i, j, h, w.headers[j])
					}
				}
			}
			if _, err := Validate(batch); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func bytesEqualNull(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// TestValidateKmsgBatches validates batches encoded by kmsg and compressed by
// franz-go's compressor, and checks Records yields what went in.
func TestValidateKmsgBatches(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	recs := makeRecords(rng, 150, 100)
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			batch := kmsgBatch(t, c, recs)
			h, err := Validate(batch)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Codec() != c || h.NumRecords != int32(len(recs)) {
				t.Fatalf("header codec %v records %d", h.Codec(), h.NumRecords)
			}
			checkRecords(t, h, batch, recs)
		})
	}
}

func checkRecords(t *testing.T, h Header, batch []byte, want []testRecord) {
	t.Helper()
	i := 0
	err := Records(h, batch, func(r *Record) error {
		w := want[i]
		if r.OffsetDelta != int32(i) || h.BaseTimestamp+r.TimestampDelta != w.ts ||
			!bytesEqualNull(r.Key, w.key) || !bytesEqualNull(r.Value, w.value) || len(r.Headers) != len(w.headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, r, w)
		}
		for j, hd := range r.Headers {
			if hd.Key != w.headers[j].Key || !bytesEqualNull(hd.Value, w.headers[j].Value) {
				t.Fatalf("record %d header %d: got %+v, want %+v", i, j, hd, w.headers[j])
			}
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if i != len(want) {
		t.Fatalf("Records yielded %d, want %d", i, len(want))
	}
}

// TestSnappyFramings checks both snappy framings producers use: raw blocks
// and xerial (snappy-java) framing with several blocks.
func TestSnappyFramings(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	recs := makeRecords(rng, 400, 200) // > 64 KiB, several xerial blocks
	raw := buildBatch(t, CodecNone, recs)[HeaderSize:]

	var xerial []byte
	xerial = append(xerial, xerialMagic...)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 32<<10)
		block, err := Compress(CodecSnappy, nil, rest[:n])
		if err != nil {
			t.Fatal(err)
		}
		xerial = binary.BigEndian.AppendUint32(xerial, uint32(len(block)))
		xerial = append(xerial, block...)
		rest = rest[n:]
	}
	rawBlock, err := Compress(CodecSnappy, nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, comp := range map[string][]byte{"xerial": xerial, "raw": rawBlock} {
		batch := kmsgWrap(t, CodecSnappy, len(recs), recs[0].ts, comp)
		h, err := Validate(batch)
		if err != nil {
			t.Fatalf("%s: Validate: %v", name, err)
		}
		checkRecords(t, h, batch, recs)
		out, err := Decompress(CodecSnappy, comp, 1<<20)
		if err != nil || !bytes.Equal(out, raw) {
			t.Fatalf("%s: Decompress: %v", name, err)
		}
	}
	// Truncated xerial framing.
	if _, err := Decompress(CodecSnappy, xerial[:len(xerial)-10], 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated xerial: %v", err)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	src := buildBatch(t, CodecNone, makeRecords(rng, 100, 100))[HeaderSize:]
	for _, c := range allCodecs {
		comp, err := Compress(c, []byte("prefix"), src)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if !bytes.HasPrefix(comp, []byte("prefix")) {
			t.Fatalf("%v: Compress did not append", c)
		}
		out, err := Decompress(c, comp[6:], len(src))
		if err != nil || !bytes.Equal(out, src) {
			t.Fatalf("%v: Decompress: %v", c, err)
		}
		if c != CodecNone {
			if _, err := Decompress(c, comp[6:], len(src)-1); !errors.Is(err, ErrDecompressLimit) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: limit one byte short: %v", c, err)
			}
		}
	}
	if _, err := Compress(Codec(5), nil, src); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("codec 5: %v", err)
	}
	if _, err := Decompress(Codec(7), src, 1<<20); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("codec 7: %v", err)
	}
}

// TestDecompressionBomb checks that highly compressible batches beyond the
// limit are rejected by Validate for every codec that compresses zeros
// that far (lz4 and snappy stay under DecompressRatio), read by Records
// (up to MaxDecompressLimit), and that the limit scales with size.
func TestDecompressionBomb(t *testing.T) {
	t.Parallel()
	zeros := make([]byte, 40<<20) // one record with a 40 MiB value of zeros
	b := NewBuilder()
	for _, c := range allCodecs[1:] {
		if err := b.SetCodec(c); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		b.Add(nil, zeros, nil, 0)
		batch := b.Build()
		if len(batch)*DecompressRatio >= len(zeros) {
			t.Logf("%v: batch of %d bytes is not a bomb", c, len(batch))
			continue
		}
		_, err := Validate(batch)
		if !errors.Is(err, ErrDecompressLimit) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: %d-byte batch of 40 MiB: %v", c, len(batch), err)
		}
		// A log's own batches are read up to MaxDecompressLimit: the
		// broker may have compressed one this far itself
		// (compression.type).
		n := 0
		if err := Records(mustHeader(t, batch), batch, func(r *Record) error { n += len(r.Value); return nil }); err != nil || n != len(zeros) {
			t.Fatalf("%v: Records: %d bytes, %v", c, n, err)
		}
	}
	if DecompressLimit(100) != MinDecompressLimit || DecompressLimit(1<<30) != MaxDecompressLimit || DecompressLimit(100<<10) != 50<<20 {
		t.Fatalf("DecompressLimit: %d %d %d", DecompressLimit(100), DecompressLimit(1<<30), DecompressLimit(100<<10))
	}
}

func mustHeader(t testing.TB, b []byte) Header {
	t.Helper()
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// rawRecord encodes one record by hand, so tests can break its framing.
type rawRecord struct {
	length      int64 // -1: compute
	offsetDelta int64
	keyLen      int64 // written as is; key bytes follow if >= 0
	key         []byte
	valueLen    int64
	value       []byte
	headerCount int64
	headers     []byte // raw header bytes
	trailer     []byte // junk inside the record's length
}

func (r rawRecord) encode() []byte {
	var body []byte
	body = append(body, 0)
	body = binary.AppendVarint(body, 5)
	body = binary.AppendVarint(body, r.offsetDelta)
	body = binary.AppendVarint(body, r.keyLen)
	body = append(body, r.key...)
	body = binary.AppendVarint(body, r.valueLen)
	body = append(body, r.value...)
	body = binary.AppendVarint(body, r.headerCount)
	body = append(body, r.headers...)
	body = append(body, r.trailer...)
	l := r.length
	if l == -1 {
		l = int64(len(body))
	}
	return append(binary.AppendVarint(nil, l), body...)
}

func okRecord(delta int64) rawRecord {
	return rawRecord{length: -1, offsetDelta: delta, keyLen: 1, key: []byte("k"), valueLen: 2, value: []byte("vv")}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	good := buildBatch(t, CodecNone, makeRecords(rand.New(rand.NewPCG(9, 9)), 10, 20))

	// withRecords wraps hand-made records in a batch declaring n records.
	withRecords := func(n int, c Codec, recs ...rawRecord) []byte {
		var raw []byte
		for _, r := range recs {
			raw = append(raw, r.encode()...)
		}
		comp, err := Compress(c, nil, raw)
		if err != nil {
			t.Fatal(err)
		}
		return kmsgWrap(t, c, n, 0, comp)
	}
	edit := func(f func(b []byte) []byte) []byte {
		b := f(bytes.Clone(good))
		return b
	}
	editCRC := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		fixCRC(b)
		return b
	}
	hdrBytes := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	vi := func(v int64) []byte { return binary.AppendVarint(nil, v) }

	tests := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"empty", nil, ErrShort},
		{"short length field", good[:11], ErrShort},
		{"short header", good[:40], ErrShort},
		{"truncated", good[:len(good)-1], ErrShort},
		{"extra byte", append(bytes.Clone(good), 0), ErrCorrupt},
		{"length below header", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 10); return b }), ErrCorrupt},
		{"negative length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0xffffffff); return b }), ErrCorrupt},
		{"magic 1", editCRC(func(b []byte) { b[offMagic] = 1 }), ErrCorrupt},
		{"crc flip", edit(func(b []byte) []byte { b[len(b)-3] ^= 0x10; return b }), ErrCorrupt},
		{"crc field flip", edit(func(b []byte) []byte { b[offCRC] ^= 1; return b }), ErrCorrupt},
		{"codec 5", editCRC(func(b []byte) { b[offAttributes+1] |= 5 }), ErrUnsupportedCodec},
		{"codec 7", editCRC(func(b []byte) { b[offAttributes+1] |= 7 }), ErrUnsupportedCodec},
		{"zero records", withRecords(0, CodecNone), ErrInvalidRecord},
		{"count too high", editCRC(func(b []byte) {
			binary.BigEndian.PutUint32(b[offRecordCount:], 11)
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 10)
		}), ErrInvalidRecord},
		{"count absurd", editCRC(func(b []byte) {
			binary.BigEndian.PutUint32(b[offRecordCount:], 1<<30)
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 1<<30-1)
		}), ErrInvalidRecord},
		{"count too low", editCRC(func(b []byte) {
			binary.BigEndian.PutUint32(b[offRecordCount:], 9)
			binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 8)
		}), ErrInvalidRecord},
		{"last offset delta", editCRC(func(b []byte) { binary.BigEndian.PutUint32(b[offLastOffsetDelta:], 10) }), ErrInvalidRecord},
		{"offset delta gap", withRecords(2, CodecNone, okRecord(0), okRecord(2)), ErrInvalidRecord},
		{"offset delta starts at 1", withRecords(1, CodecNone, okRecord(1)), ErrInvalidRecord},
		{"offset delta gap zstd", withRecords(2, CodecZstd, okRecord(0), okRecord(2)), ErrInvalidRecord},
		{"fewer records zstd", withRecords(3, CodecZstd, okRecord(0), okRecord(1)), ErrInvalidRecord},
		{"more records lz4", withRecords(1, CodecLZ4, okRecord(0), okRecord(1)), ErrInvalidRecord},
		{"trailing byte", kmsgWrap(t, CodecNone, 1, 0, append(okRecord(0).encode(), 0)), ErrInvalidRecord},
		{"record length past end", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.length = 100; return r }()), ErrCorrupt},
		{"record length negative", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.length = -5; return r }()), ErrCorrupt},
		{"record length short", withRecords(2, CodecNone, func() rawRecord { r := okRecord(0); r.length = 6; return r }(), okRecord(1)), ErrCorrupt},
		{"junk inside record", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.trailer = []byte{1, 2}; return r }()), ErrCorrupt},
		{"key length past record", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.keyLen = 50; return r }()), ErrCorrupt},
		{"key length -2", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.keyLen, r.key = -2, nil; return r }()), ErrCorrupt},
		{"value length huge", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.valueLen = 1 << 40; return r }()), ErrCorrupt},
		{"header count negative", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.headerCount = -1; return r }()), ErrCorrupt},
		{"header count absurd", withRecords(1, CodecNone, func() rawRecord { r := okRecord(0); r.headerCount = 1 << 30; return r }()), ErrCorrupt},
		{"header key negative", withRecords(1, CodecNone, func() rawRecord {
			r := okRecord(0)
			r.headerCount, r.headers = 1, hdrBytes(vi(-1), vi(-1))
			return r
		}()), ErrCorrupt},
		{"header value past end", withRecords(1, CodecNone, func() rawRecord {
			r := okRecord(0)
			r.headerCount, r.headers = 1, hdrBytes(vi(1), []byte("a"), vi(9), []byte("b"))
			return r
		}()), ErrCorrupt},
		{"missing headers", withRecords(1, CodecNone, func() rawRecord {
			r := okRecord(0)
			r.headerCount, r.headers = 2, hdrBytes(vi(1), []byte("a"), vi(-1))
			return r
		}()), ErrCorrupt},
		{"overlong varint", kmsgWrap(t, CodecNone, 1, 0, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}), ErrCorrupt},
		{"varint over int32", kmsgWrap(t, CodecNone, 1, 0, append([]byte{0xfe, 0xff, 0xff, 0xff, 0x1f}, make([]byte, 10)...)), ErrCorrupt},
		{"gzip garbage", kmsgWrap(t, CodecGzip, 1, 0, []byte("definitely not gzip")), ErrCorrupt},
		{"snappy garbage", kmsgWrap(t, CodecSnappy, 1, 0, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}), ErrCorrupt},
		{"lz4 garbage", kmsgWrap(t, CodecLZ4, 1, 0, []byte("definitely not lz4")), ErrCorrupt},
		{"zstd garbage", kmsgWrap(t, CodecZstd, 1, 0, []byte("definitely not zstd")), ErrCorrupt},
		{"zstd truncated", func() []byte {
			comp, _ := Compress(CodecZstd, nil, okRecord(0).encode())
			return kmsgWrap(t, CodecZstd, 1, 0, comp[:len(comp)-2])
		}(), ErrCorrupt},
		{"gzip truncated", func() []byte {
			comp, _ := Compress(CodecGzip, nil, okRecord(0).encode())
			return kmsgWrap(t, CodecGzip, 1, 0, comp[:len(comp)-2])
		}(), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(tt.batch)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate: %v, want %v", err, tt.want)
			}
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("not a *CorruptionError: %T", err)
			}
		})
	}
}

func TestValidateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	rng := rand.New(rand.NewPCG(10, 11))
	recs := makeRecords(rng, 150, 100)
	for _, c := range allCodecs {
		batch := buildBatch(t, c, recs)
		if _, err := Validate(batch); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := Validate(batch); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%v: %.1f allocs per Validate", c, allocs)
		limit := 3.0
		if c == CodecNone {
			limit = 0
		}
		if allocs > limit {
			t.Errorf("%v: %.1f allocs per Validate, want <= %v", c, allocs, limit)
		}
	}
}

func TestRecordsLenient(t *testing.T) {
	t.Parallel()
	// A compacted batch: offset deltas 0, 3, 7 with LastOffsetDelta 9.
	b := NewBuilder()
	for _, d := range []int32{0, 3, 7} {
		if err := b.AddWithOffsetDelta(d, []byte("k"), []byte("v"), nil, 1000+int64(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AddWithOffsetDelta(7, nil, nil, nil, 0); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("repeated offset delta: %v", err)
	}
	b.SetLastOffsetDelta(9)
	batch := b.Build()
	h := mustHeader(t, batch)
	if h.LastOffsetDelta != 9 || h.NumRecords != 3 {
		t.Fatalf("header %+v", h)
	}
	if err := CheckCRC(batch, &h); err != nil {
		t.Fatal(err)
	}
	var deltas []int32
	if err := Records(h, batch, func(r *Record) error { deltas = append(deltas, r.OffsetDelta); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(deltas) != 3 || deltas[0] != 0 || deltas[1] != 3 || deltas[2] != 7 {
		t.Fatalf("deltas %v", deltas)
	}
	// Validate holds produce batches to consecutive deltas.
	if _, err := Validate(batch); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Validate compacted batch: %v", err)
	}
	// fn's error is returned as is.
	stop := errors.New("stop")
	if err := Records(h, batch, func(*Record) error { return stop }); err != stop {
		t.Fatalf("Records: %v", err)
	}
	if err := Records(h, batch[:len(batch)-1], func(*Record) error { return nil }); !errors.Is(err, ErrShort) {
		t.Fatalf("Records short: %v", err)
	}
}

func TestBatches(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(12, 13))
	var all []byte
	var sizes []int
	for i, c := range allCodecs {
		b := buildBatch(t, c, makeRecords(rng, 5+i, 50))
		SetBaseOffset(b, int64(i*100))
		all = append(all, b...)
		sizes = append(sizes, len(b))
	}
	var pos []int
	err := Batches(all, func(p int, batch []byte, h Header) error {
		if len(batch) != int(h.Size()) || h.BaseOffset != int64(len(pos)*100) {
			t.Fatalf("batch at %d: %d bytes, header %+v", p, len(batch), h)
		}
		if _, err := Validate(batch); err != nil {
			t.Fatalf("batch at %d: %v", p, err)
		}
		pos = append(pos, p)
		return nil
	})
	if err != nil || len(pos) != len(sizes) {
		t.Fatalf("Batches: %v, %d batches", err, len(pos))
	}
	if err := Batches(nil, func(int, []byte, Header) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
	// A torn tail: every cut inside the last batch is ErrShort at its position.
	last := pos[len(pos)-1]
	for _, cut := range []int{last + 1, last + 11, last + 12, last + 60, len(all) - 1} {
		n := 0
		err := Batches(all[:cut], func(int, []byte, Header) error { n++; return nil })
		var ce *CorruptionError
		if !errors.Is(err, ErrShort) || !errors.As(err, &ce) || ce.Offset != int64(last) || n != len(pos)-1 {
			t.Fatalf("cut at %d: %v after %d batches", cut, err, n)
		}
	}
	// Zeros after the last batch (a preallocated or zero-filled tail).
	err = Batches(append(bytes.Clone(all), make([]byte, 100)...), func(int, []byte, Header) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zero tail: %v", err)
	}
	stop := errors.New("stop")
	if err := Batches(all, func(int, []byte, Header) error { return stop }); err != stop {
		t.Fatalf("fn error: %v", err)
	}
}

func TestBuilderSettings(t *testing.T) {
	t.Parallel()
	b := NewBuilder()
	if err := b.SetCodec(Codec(6)); !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("SetCodec(6): %v", err)
	}
	b.SetBaseOffset(1000).SetPartitionLeaderEpoch(7).SetTransactional(true).SetProducer(9, 1, 5)
	b.Add([]byte("k"), []byte("v"), nil, 123)
	b.Add(nil, nil, nil, 100)
	batch := b.Build()
	h, err := Validate(batch)
	if err != nil {
		t.Fatal(err)
	}
	if h.BaseOffset != 1000 || h.PartitionLeaderEpoch != 7 || !h.Transactional() || h.Control() || h.LogAppendTime() ||
		h.ProducerID != 9 || h.BaseSequence != 5 || h.LastSequence() != 6 || h.BaseTimestamp != 123 || h.MaxTimestamp != 123 {
		t.Fatalf("header %+v", h)
	}
	b.Reset()
	if b.NumRecords() != 0 {
		t.Fatal("Reset kept records")
	}
	b.SetTransactional(false).SetControl(true).SetLogAppendTime(true)
	b.Add(nil, []byte("x"), nil, 5)
	h, err = Validate(b.Build())
	if err != nil || h.Transactional() || !h.Control() || !h.LogAppendTime() || h.NumRecords != 1 || h.BaseTimestamp != 5 {
		t.Fatalf("after Reset: %+v, %v", h, err)
	}
	// AppendTo appends.
	out := b.AppendTo([]byte("xyz"))
	if string(out[:3]) != "xyz" {
		t.Fatal("AppendTo did not append")
	}
	if _, err := Validate(out[3:]); err != nil {
		t.Fatal(err)
	}
}

func TestVarint(t *testing.T) {
	t.Parallel()
	for _, v := range []int64{0, 1, -1, 63, -64, 64, 1 << 20, -(1 << 31), 1<<31 - 1, 1 << 40, -(1 << 62), 1<<63 - 1, -1 << 63} {
		enc := binary.AppendVarint(nil, v)
		got, n := varint64(enc)
		if got != v || n != len(enc) {
			t.Fatalf("varint64(%d) = %d, %d", v, got, n)
		}
		got32, n32 := varint32(enc)
		if v >= -(1<<31) && v < 1<<31 {
			if int64(got32) != v || n32 != len(enc) {
				t.Fatalf("varint32(%d) = %d, %d", v, got32, n32)
			}
		} else if n32 > 0 {
			t.Fatalf("varint32(%d) accepted", v)
		}
		if _, n := varint64(enc[:len(enc)-1]); n > 0 {
			t.Fatalf("truncated varint64(%d) accepted", v)
		}
	}
}

// TestZstdStreamingLargeWindow: streaming producers (the Java client's
// zstd-jni output stream) write frames without a content size that declare
// a window of several MiB, more than the decompression limit of a small
// batch. They must validate.
func TestZstdStreamingLargeWindow(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 21))
	recs := makeRecords(rng, 20, 50)
	raw := buildBatch(t, CodecNone, recs)[HeaderSize:]
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithWindowSize(8<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	// Flushing before the end makes the encoder emit the frame header
	// before it knows the content size.
	if _, err := enc.Write(raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(raw[len(raw)/2:]); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	var fh zstd.Header
	if err := fh.Decode(out.Bytes()); err != nil || fh.HasFCS || fh.WindowSize < 8<<20 {
		t.Fatalf("want a streaming frame with an 8 MiB window: %+v %v", fh, err)
	}
	batch := kmsgWrap(t, CodecZstd, len(recs), recs[0].ts, out.Bytes())
	h, err := Validate(batch)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checkRecords(t, h, batch, recs)
}

// TestValidateFastPathAgreesWithWalker mutates every byte of batches shaped
// for validateRecords' word-at-a-time fast path (and just outside it: long
// keys and values, headers, offsets past 63 and 8191, big timestamp deltas)
// and checks the validator and the reference walker agree on each.
func TestValidateFastPathAgreesWithWalker(t *testing.T) {
	shapes := []struct {
		name            string
		n, keyN, valueN int
		headers         bool
		tsStep          int64
	}{
		{"nil-key-100B", 70, -1, 100, false, 0},
		{"short-key", 70, 5, 20, false, 1},
		{"empty-key-empty-value", 70, 0, 0, false, 0},
		{"nil-value", 20, 3, -1, false, 0},
		{"key-63", 10, 63, 1, false, 0},
		{"key-64", 10, 64, 1, false, 0},
		{"value-8191", 3, -1, 8191, false, 0},
		{"headers", 10, 1, 10, true, 0},
		{"ts-deltas", 10, -1, 10, false, 100_000},
		{"many-records", 8200, -1, 1, false, 0},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			recs := make([]testRecord, sh.n)
			for i := range recs {
				r := &recs[i]
				if sh.keyN >= 0 {
					r.key = bytes.Repeat([]byte{'k'}, sh.keyN)
				}
				if sh.valueN >= 0 {
					r.value = bytes.Repeat([]byte{byte(i)}, sh.valueN)
				}
				if sh.headers {
					r.headers = []RecordHeader{{Key: "h", Value: []byte("v")}}
				}
				r.ts = 1_700_000_000_000 + int64(i)*sh.tsStep
			}
			batch := buildBatch(t, CodecNone, recs)
			h := mustHeader(t, batch)
			if _, err := validateRecords(batch[HeaderSize:], h.NumRecords); err != nil {
				t.Fatalf("valid batch: %v", err)
			}
			data := bytes.Clone(batch[HeaderSize:])
			// Mutate the first and last bytes: the records near the start
			// and (for many-records) those past offset delta 8191.
			var positions []int
			for pos := range len(data) {
				if (pos < 1024 && sh.n < 1000) || pos >= len(data)-64 {
					positions = append(positions, pos)
				}
			}
			for _, pos := range positions {
				orig := data[pos]
				for _, v := range []byte{orig ^ 0x01, orig ^ 0x80, 0x00, 0x7f, 0xff} {
					if v == orig {
						continue
					}
					data[pos] = v
					_, fast := validateRecords(data, h.NumRecords)
					slow := walkStrict(data, h.NumRecords)
					if category(fast) != category(slow) {
						t.Fatalf("byte %d = %#x: validateRecords: %v; walker: %v", pos, v, fast, slow)
					}
				}
				data[pos] = orig
			}
		})
	}
}

// TestRecompress: every codec to every other (and to none) keeps the
// header fields and the records, and makes a batch Validate accepts with
// the new codec.
func TestRecompress(t *testing.T) {
	codecs := []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}
	for _, from := range codecs {
		b := NewBuilder()
		b.SetCodec(from)
		for i := range 50 {
			b.Add([]byte(fmt.Sprint("k", i)), bytes.Repeat([]byte{byte('a' + i%26)}, 200), nil, 1_700_000_000_000+int64(i))
		}
		batch := b.Build()
		h, err := Validate(batch)
		if err != nil {
			t.Fatal(err)
		}
		want := recordsOf(t, h, batch)
		for _, to := range codecs {
			out, nh, err := Recompress(batch, h, to, DefaultLevel)
			if err != nil {
				t.Fatalf("%v to %v: %v", from, to, err)
			}
			vh, err := Validate(out)
			if err != nil {
				t.Fatalf("%v to %v: the result does not validate: %v", from, to, err)
			}
			if vh != nh || vh.Codec() != to || vh.NumRecords != h.NumRecords || vh.BaseTimestamp != h.BaseTimestamp ||
				vh.MaxTimestamp != h.MaxTimestamp || vh.ProducerID != h.ProducerID || vh.BaseSequence != h.BaseSequence {
				t.Fatalf("%v to %v: header %+v from %+v (returned %+v)", from, to, vh, h, nh)
			}
			if got := recordsOf(t, vh, out); got != want {
				t.Fatalf("%v to %v: records differ", from, to)
			}
		}
	}
}

func recordsOf(t *testing.T, h Header, batch []byte) string {
	t.Helper()
	var sb strings.Builder
	if err := Records(h, batch, func(r *Record) error {
		fmt.Fprintf(&sb, "%d/%d/%s/%s;", r.OffsetDelta, r.TimestampDelta, r.Key, r.Value)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

// TestCompressLevels: every level of Kafka's compression.<codec>.level
// ranges round-trips, the default level is what Compress gives, and the
// levels do what they say on compressible data: a higher level makes a
// smaller (or no larger) result than the fastest one, and the extremes
// differ.
func TestCompressLevels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	words := []string{"GET", "POST", "/api/v1/users", "/static/app.js", "200", "404", "Mozilla/5.0", "curl/8.5"}
	var src []byte
	for len(src) < 256<<10 {
		src = fmt.Appendf(src, "%d %s %s %d %s\n", rng.IntN(1_000_000), words[rng.IntN(2)], words[2+rng.IntN(2)], rng.IntN(5000), words[4+rng.IntN(4)])
	}
	for _, c := range []struct {
		codec        Codec
		levels       []int
		fast, strong int
	}{
		{CodecGzip, []int{-1, 1, 2, 5, 6, 9}, 1, 9},
		{CodecLZ4, []int{1, 2, 8, 9, 10, 17}, 9, 17},
		{CodecZstd, []int{-131072, -5, 0, 1, 3, 6, 9, 10, 22}, 1, 22},
	} {
		sizes := map[int]int{}
		for _, level := range c.levels {
			out, err := CompressLevel(c.codec, level, []byte("prefix"), src)
			if err != nil {
				t.Fatalf("%v level %d: %v", c.codec, level, err)
			}
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatalf("%v level %d: dst not kept", c.codec, level)
			}
			back, err := Decompress(c.codec, out[len("prefix"):], len(src))
			if err != nil || !bytes.Equal(back, src) {
				t.Fatalf("%v level %d: round trip: %v", c.codec, level, err)
			}
			sizes[level] = len(out) - len("prefix")
		}
		def, err := Compress(c.codec, nil, src)
		if err != nil {
			t.Fatal(err)
		}
		if want := sizes[c.levels[0]]; c.codec == CodecGzip && len(def) != want {
			t.Errorf("gzip: Compress gave %d bytes, level -1 %d", len(def), want)
		}
		if c.codec == CodecLZ4 && len(def) != sizes[9] {
			t.Errorf("lz4: Compress gave %d bytes, level 9 (the fast compressor) %d", len(def), sizes[9])
		}
		if c.codec == CodecZstd && (len(def) != sizes[3] || sizes[0] != sizes[3]) {
			t.Errorf("zstd: Compress gave %d bytes, level 3 %d, level 0 %d", len(def), sizes[3], sizes[0])
		}
		if sizes[c.strong] >= sizes[c.fast] {
			t.Errorf("%v: level %d gave %d bytes, level %d %d: want smaller", c.codec, c.strong, sizes[c.strong], c.fast, sizes[c.fast])
		}
		t.Logf("%v: %d bytes in, by level %v", c.codec, len(src), sizes)
	}
	// Snappy and none have no levels.
	for _, codec := range []Codec{CodecNone, CodecSnappy} {
		a, _ := CompressLevel(codec, 9, nil, src)
		b, _ := Compress(codec, nil, src)
		if !bytes.Equal(a, b) {
			t.Errorf("%v: a level changed the output", codec)
		}
	}
}

// TestValidateMaxTimestampCRCChecked: the variant for a caller that has
// checked the CRC itself skips only that check; everything else about the
// batch is still validated.
func TestValidateMaxTimestampCRCChecked(t *testing.T) {
	b := NewBuilder()
	for i := range 10 {
		b.Add(nil, []byte(fmt.Sprint("v", i)), nil, 1_700_000_000_000+int64(i))
	}
	batch := b.Build()
	badCRC := bytes.Clone(batch)
	badCRC[offCRC] ^= 0xff
	if _, _, err := ValidateMaxTimestamp(badCRC); err == nil {
		t.Fatal("ValidateMaxTimestamp took a bad CRC")
	}
	h, maxTs, err := ValidateMaxTimestampCRCChecked(badCRC)
	if err != nil || h.NumRecords != 10 || maxTs != 1_700_000_000_009 {
		t.Fatalf("CRC-checked variant: %v, %d records, max %d", err, h.NumRecords, maxTs)
	}
	// A wrong record count, a short batch and a bad record are still
	// refused.
	wrongCount := bytes.Clone(batch)
	wrongCount[len(wrongCount)-1] = 0x7f // the last record's header count
	short := batch[:len(batch)-1]
	for name, bad := range map[string][]byte{"bad record": wrongCount, "short": short} {
		if _, _, err := ValidateMaxTimestampCRCChecked(bad); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}

// TestRepetitiveLogsNotABomb: a producer's batch of log lines that
// compress far beyond DecompressRatio (JSON padded with spaces, a few MB
// before compression) is valid for every codec.
func TestRepetitiveLogsNotABomb(t *testing.T) {
	t.Parallel()
	line := []byte(`{"level":"info","service":"checkout-api","host":"web-01","msg":"health check ok","path":"/healthz","status":200,"pad":"` +
		strings.Repeat(" ", 300) + `"}`)
	b := NewBuilder()
	for _, c := range allCodecs[1:] {
		if err := b.SetCodec(c); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		for range 20000 {
			b.Add(nil, line, nil, 0)
		}
		batch := b.Build()
		t.Logf("%v: %d records, %d bytes compressed", c, b.NumRecords(), len(batch))
		if _, err := Validate(batch); err != nil {
			t.Fatalf("%v: %d-byte batch of %d log lines: %v", c, len(batch), b.NumRecords(), err)
		}
	}
}
