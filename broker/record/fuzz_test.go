package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// seedBatches are small valid batches of every codec plus damaged variants.
func seedBatches(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewPCG(99, 99))
	seeds := map[string][]byte{}
	for _, c := range allCodecs {
		recs := makeRecords(rng, 6, 24)
		b := buildBatch(t, c, recs)
		seeds["valid-"+c.String()] = b
		seeds["kmsg-"+c.String()] = kmsgBatch(t, c, recs)
		seeds["truncated-"+c.String()] = b[:len(b)-len(b)/3]
		flipped := bytes.Clone(b)
		flipped[HeaderSize+(len(b)-HeaderSize)/2] ^= 0x04
		seeds["bitflip-"+c.String()] = flipped
		flippedCRC := bytes.Clone(flipped)
		fixCRC(flippedCRC)
		seeds["bitflip-crcfixed-"+c.String()] = flippedCRC
	}
	one := NewBuilder()
	one.Add(nil, nil, nil, 0)
	seeds["one-null-record"] = one.Build()
	// xerial-framed snappy.
	raw := buildBatch(t, CodecNone, makeRecords(rng, 3, 10))[HeaderSize:]
	block, _ := Compress(CodecSnappy, nil, raw)
	x := append(bytes.Clone(xerialMagic), 0, 0, 0, 1, 0, 0, 0, 1)
	x = binary.BigEndian.AppendUint32(x, uint32(len(block)))
	seeds["xerial"] = kmsgWrap(t, CodecSnappy, 3, 0, append(x, block...))
	return seeds
}

func writeCorpus(t *testing.T, fuzzName string, entries map[string][]any) {
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, args := range entries {
		var buf bytes.Buffer
		buf.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&buf, "[]byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&buf, "bool(%v)\n", v)
			default:
				t.Fatalf("corpus value of type %T", a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteFuzzCorpus regenerates the committed seed corpora when run with
// -update-corpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateCorpus {
		t.Skip("run with -update-corpus to rewrite testdata/fuzz")
	}
	seeds := seedBatches(t)
	validate := map[string][]any{}
	for name, b := range seeds {
		validate[name] = []any{b, false}
		validate[name+"-fixlen"] = []any{b, true}
	}
	writeCorpus(t, "FuzzValidate", validate)
	concat := map[string][]any{}
	var all []byte
	for _, c := range allCodecs {
		all = append(all, seeds["valid-"+c.String()]...)
	}
	concat["all-codecs"] = []any{all}
	concat["torn-tail"] = []any{all[:len(all)-7]}
	concat["zero-tail"] = []any{append(bytes.Clone(all), make([]byte, 70)...)}
	concat["garbage-tail"] = []any{append(bytes.Clone(all), seeds["bitflip-crcfixed-zstd"]...)}
	writeCorpus(t, "FuzzBatches", concat)
}

// walkStrict checks a records section with the walker Records uses, in the
// strict mode, for comparison with validateRecords.
func walkStrict(data []byte, n int32) error {
	if int64(n) > int64(len(data)/minRecordSize) {
		return &CorruptionError{Err: ErrInvalidRecord}
	}
	w := walker{data: data, want: n, strict: true}
	for !w.done() {
		if err := w.skip(); err != nil {
			return err
		}
	}
	return w.finish()
}

func category(err error) error {
	for _, e := range []error{ErrShort, ErrCorrupt, ErrInvalidRecord, ErrUnsupportedCodec} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

// FuzzValidate feeds arbitrary bytes to Validate. With fixLength set, the
// batch length and CRC are made consistent first so that the fuzzer gets
// past them into the decompressors and the record walker.
func FuzzValidate(f *testing.F) {
	for _, b := range seedBatches(f) {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixLength bool) {
		if fixLength && len(data) >= HeaderSize {
			data = bytes.Clone(data)
			binary.BigEndian.PutUint32(data[offLength:], uint32(len(data)-LogOverhead))
			fixCRC(data)
		}
		h, maxTs, err := ValidateMaxTimestamp(data)
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *CorruptionError: %v", err, err)
			}
			if category(err) == err {
				t.Fatalf("error in no category: %v", err)
			}
		}
		// The fast validator and the walker must agree on uncompressed
		// records.
		if len(data) >= HeaderSize && (err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrInvalidRecord)) {
			if ph, perr := ParseHeader(data); perr == nil && ph.Codec() == CodecNone && CheckCRC(data, &ph) == nil &&
				ph.NumRecords > 0 && ph.LastOffsetDelta == ph.NumRecords-1 {
				_, fast := validateRecords(data[HeaderSize:], ph.NumRecords)
				slow := walkStrict(data[HeaderSize:], ph.NumRecords)
				if category(fast) != category(slow) {
					t.Fatalf("validateRecords: %v; walker: %v", fast, slow)
				}
			}
		}
		// Streaming validation of compressed records must reach the
		// verdict of decompressing them whole and walking them.
		if len(data) >= HeaderSize {
			if ph, perr := ParseHeader(data); perr == nil && ph.Codec() != CodecNone && ph.Codec() <= CodecZstd && ph.NumRecords > 0 {
				limit := DecompressLimit(len(data))
				sd, serr := validateCompressed(ph.Codec(), data[HeaderSize:], ph.NumRecords, limit)
				wd, werr := validateWhole(ph.Codec(), data[HeaderSize:], ph.NumRecords, limit, false)
				if category(serr) != category(werr) || (serr == nil && sd != wd) {
					t.Fatalf("streaming: %v (max delta %d); whole: %v (max delta %d)", serr, sd, werr, wd)
				}
			}
		}
		if err != nil {
			return
		}
		if int64(len(data)) != h.Size() || h.NumRecords <= 0 {
			t.Fatalf("accepted batch of %d bytes with header %+v", len(data), h)
		}
		var i int32
		walkMax := int64(math.MinInt64)
		err = Records(h, data, func(r *Record) error {
			if r.OffsetDelta != i {
				return fmt.Errorf("record %d has offset delta %d", i, r.OffsetDelta)
			}
			walkMax = max(walkMax, h.BaseTimestamp+r.TimestampDelta)
			i++
			return nil
		})
		if err != nil || i != h.NumRecords {
			t.Fatalf("Validate accepted, Records: %v after %d of %d records", err, i, h.NumRecords)
		}
		if maxTs != walkMax {
			t.Fatalf("ValidateMaxTimestamp found max timestamp %d, Records %d", maxTs, walkMax)
		}
	})
}

// FuzzBatches feeds arbitrary bytes to Batches, validating each batch.
func FuzzBatches(f *testing.F) {
	seeds := seedBatches(f)
	var all []byte
	for _, c := range allCodecs {
		all = append(all, seeds["valid-"+c.String()]...)
	}
	f.Add(all)
	f.Add(all[:len(all)-5])
	f.Fuzz(func(t *testing.T, data []byte) {
		next := 0
		err := Batches(data, func(pos int, batch []byte, h Header) error {
			if pos != next || int64(len(batch)) != h.Size() || pos+len(batch) > len(data) {
				t.Fatalf("batch at %d (expected %d) of %d bytes, header size %d", pos, next, len(batch), h.Size())
			}
			next = pos + len(batch)
			_, _ = Validate(batch)
			return nil
		})
		if err == nil && next != len(data) {
			t.Fatalf("Batches consumed %d of %d bytes without error", next, len(data))
		}
		var ce *CorruptionError
		if err != nil && (!errors.As(err, &ce) || ce.Offset != int64(next)) {
			t.Fatalf("error %v not at %d", err, next)
		}
	})
}

// FuzzDecompress feeds arbitrary bytes to every decompressor with a small
// limit.
func FuzzDecompress(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 5))
	raw := buildBatch(f, CodecNone, makeRecords(rng, 4, 30))[HeaderSize:]
	for _, c := range allCodecs {
		comp, _ := Compress(c, nil, raw)
		f.Add(byte(c), comp)
	}
	f.Fuzz(func(t *testing.T, codec byte, data []byte) {
		const limit = 64 << 10
		out, err := Decompress(Codec(codec%8), data, limit)
		if err == nil && Codec(codec%8) != CodecNone && len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		if err != nil && category(err) == err {
			t.Fatalf("error in no category: %v", err)
		}
	})
}
