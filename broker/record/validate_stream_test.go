package record

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// bigRecords are records of which some are longer than the streaming
// window: a long value, a long key, a header with a long value, a long
// header key, each among ordinary ones.
func bigRecords(rng *rand.Rand) []testRecord {
	recs := makeRecords(rng, 40, 120)
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(8))
		}
		return b
	}
	recs[3].value = fill(300 << 10)
	recs[10].key = fill(70 << 10)
	recs[11].headers = []RecordHeader{{Key: "small", Value: []byte("v")}, {Key: "big", Value: fill(100 << 10)}, {Key: "null"}}
	recs[20].headers = []RecordHeader{{Key: string(fill(streamBufSize + 1)), Value: fill(3)}}
	recs[39].value = fill(1 << 20)
	return recs
}

func TestValidateStreamBigRecords(t *testing.T) {
	t.Parallel()
	recs := bigRecords(rand.New(rand.NewPCG(30, 31)))
	want := recs[0].ts
	for _, r := range recs {
		want = max(want, r.ts)
	}
	for _, c := range allCodecs[1:] {
		for name, batch := range map[string][]byte{"builder": buildBatch(t, c, recs), "kmsg": kmsgBatch(t, c, recs)} {
			h, maxTs, err := ValidateMaxTimestamp(batch)
			if err != nil {
				t.Fatalf("%v %s: %v", c, name, err)
			}
			if maxTs != want {
				t.Errorf("%v %s: max timestamp %d, want %d", c, name, maxTs, want)
			}
			checkRecords(t, h, batch, recs)
		}
	}
}

// streamAgrees validates comp, a records section declaring n records
// compressed with c, both streaming and whole, and fails unless the two
// reach the same verdict.
func streamAgrees(t *testing.T, c Codec, comp []byte, n int32, what string) {
	t.Helper()
	limit := DecompressLimit(len(comp) + HeaderSize)
	sd, serr := validateCompressed(c, comp, n, limit)
	wd, werr := validateWhole(c, comp, n, limit, false)
	if category(serr) != category(werr) || (serr == nil && sd != wd) {
		t.Fatalf("%v %s: streaming %v (max delta %d), whole %v (max delta %d)", c, what, serr, sd, werr, wd)
	}
}

// TestValidateStreamAgreesWithWhole breaks records sections (short ones,
// ones with records longer than the window, bad framings) byte by byte,
// compresses them with each streamed codec, and checks that the streaming
// walk reaches the whole walk's verdict on each; and on truncated and
// corrupted compressed data.
func TestValidateStreamAgreesWithWhole(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(32, 33))
	type section struct {
		raw []byte
		n   int32
	}
	var sections []section
	small := buildBatch(t, CodecNone, makeRecords(rng, 12, 30))
	sections = append(sections, section{small[HeaderSize:], 12})
	big := bigRecords(rng)[:22] // through the long header key
	sections = append(sections, section{buildBatch(t, CodecNone, big)[HeaderSize:], int32(len(big))})
	// A long record with a header count past its length.
	long := okRecord(1)
	long.valueLen, long.value = streamBufSize*2, bytes.Repeat([]byte{'x'}, streamBufSize*2)
	long.headerCount = 1 << 20
	sections = append(sections, section{append(okRecord(0).encode(), long.encode()...), 2})
	// Junk within a long record's length, and after the records.
	long = okRecord(1)
	long.valueLen, long.value = streamBufSize, bytes.Repeat([]byte{'y'}, streamBufSize)
	long.trailer = []byte{1, 2, 3}
	sections = append(sections, section{append(okRecord(0).encode(), long.encode()...), 2})
	sections = append(sections, section{append(okRecord(0).encode(), 9, 9), 1})

	// Positions tried per section; fewer under the race detector, which
	// makes each compression 10-20 times slower.
	rawTries, compTries := 61, 23
	if raceEnabled {
		rawTries, compTries = 13, 7
	}
	for si, s := range sections {
		for _, c := range []Codec{CodecGzip, CodecLZ4, CodecZstd} {
			check := func(raw []byte, n int32, what string) {
				comp, err := Compress(c, nil, raw)
				if err != nil {
					t.Fatal(err)
				}
				streamAgrees(t, c, comp, n, fmt.Sprintf("section %d, %s", si, what))
			}
			check(s.raw, s.n, "as built")
			check(s.raw, s.n+1, "one more record declared")
			check(s.raw, s.n-1, "one fewer record declared")
			check(s.raw, 1<<30, "absurd count")
			step := max(1, len(s.raw)/rawTries)
			for i := 0; i < len(s.raw); i += step {
				m := bytes.Clone(s.raw)
				m[i] ^= byte(1 + rng.IntN(255))
				check(m, s.n, fmt.Sprintf("byte %d flipped", i))
				check(s.raw[:i], s.n, fmt.Sprintf("cut at %d", i))
			}
			comp, _ := Compress(c, nil, s.raw)
			for i := 0; i < len(comp); i += max(1, len(comp)/compTries) {
				m := bytes.Clone(comp)
				m[i] ^= 0x5a
				streamAgrees(t, c, m, s.n, fmt.Sprintf("section %d, compressed byte %d flipped", si, i))
				streamAgrees(t, c, comp[:i], s.n, fmt.Sprintf("section %d, compressed data cut at %d", si, i))
			}
		}
	}
}

// sparseRecords returns a records section of n 1 MiB records, each 2 KiB
// of random bytes then zeros: it compresses about 500 times, near the
// ratio bound.
func sparseRecords(rng *rand.Rand, n int) []byte {
	var raw []byte
	for i := range n {
		v := make([]byte, 1<<20)
		for j := range 2 << 10 {
			v[j] = byte(rng.Uint32())
		}
		raw = append(raw, rawRecord{length: -1, offsetDelta: int64(i), keyLen: -1, valueLen: int64(len(v)), value: v}.encode()...)
	}
	return raw
}

// zstdStreamed compresses src as a streaming encoder with a 1 MiB window
// does (the Java client's frames): a frame that does not name its content
// size.
func zstdStreamed(t *testing.T, src []byte) []byte {
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithWindowSize(1<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	for p := 0; p < len(src); p += 1 << 20 {
		if _, err := enc.Write(src[p:min(p+1<<20, len(src))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if w := zstdWindow(out.Bytes()); w > streamMaxWindow {
		t.Fatalf("zstd frame declares a %d-byte window", w)
	}
	return out.Bytes()
}

// TestValidateStreamMemory validates batches that decompress to 64 MiB on
// eight goroutines at once. Decompressed whole, each held 64 MiB;
// streamed, all of them together allocate a few MiB.
func TestValidateStreamMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation figures are meaningless under the race detector")
	}
	const records, goroutines = 64, 8
	raw := sparseRecords(rand.New(rand.NewPCG(34, 35)), records)
	for _, c := range []Codec{CodecGzip, CodecLZ4, CodecZstd} {
		comp := zstdStreamed(t, raw)
		if c != CodecZstd {
			var err error
			if comp, err = Compress(c, nil, raw); err != nil {
				t.Fatal(err)
			}
		}
		batch := kmsgWrap(t, c, records, 0, comp)
		if DecompressLimit(len(batch)) < len(raw) {
			t.Fatalf("%v: %d bytes compressed: over the ratio bound", c, len(comp))
		}
		run := func() {
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					if _, err := Validate(batch); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		run() // fill the pools
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		run()
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%v: %d bytes compressed, %d MiB decompressed, %d at once: %.1f MiB allocated",
			c, len(comp), len(raw)>>20, goroutines, float64(alloc)/(1<<20))
		if alloc > 48<<20 {
			t.Errorf("%v: %.1f MiB allocated validating %d batches of %d MiB at once", c, float64(alloc)/(1<<20), goroutines, len(raw)>>20)
		}
	}
}

// TestValidateZstdLargeFrame: a frame naming a content size past
// streamMaxWindow (franz-go's and librdkafka's one-shot frame of a large
// batch) is validated whole, and accepted.
func TestValidateZstdLargeFrame(t *testing.T) {
	t.Parallel()
	const records = 12
	var raw []byte
	for i := range records {
		v := bytes.Repeat(fmt.Appendf(nil, "line %d ", i), (1<<20)/7)
		raw = append(raw, rawRecord{length: -1, offsetDelta: int64(i), keyLen: -1, valueLen: int64(len(v)), value: v}.encode()...)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithSingleSegment(true), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	comp := enc.EncodeAll(raw, nil)
	if w := zstdWindow(comp); w <= streamMaxWindow {
		t.Fatalf("frame declares %d bytes, want more than %d", w, streamMaxWindow)
	}
	if _, err := Validate(kmsgWrap(t, CodecZstd, records, 0, comp)); err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(kmsgWrap(t, CodecZstd, records+1, 0, comp)); category(err) != ErrInvalidRecord {
		t.Fatalf("one record short: %v", err)
	}
}
