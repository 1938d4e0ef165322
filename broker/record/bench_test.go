package record

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkValidate validates 16 KiB batches (uncompressed size) of 100-byte
// records for every codec. MB/s is of uncompressed record data.
func BenchmarkValidate(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	recs := makeRecords(rng, 16<<10/118, 100) // ~118 bytes per encoded record
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			batch := buildBatch(b, c, recs)
			raw := buildBatch(b, CodecNone, recs)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw))/float64(len(batch)), "ratio")
		})
	}
}

// BenchmarkRecords iterates the records of a 16 KiB batch.
func BenchmarkRecords(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	recs := makeRecords(rng, 16<<10/118, 100)
	for _, c := range []Codec{CodecNone, CodecZstd} {
		b.Run(c.String(), func(b *testing.B) {
			batch := buildBatch(b, c, recs)
			h := mustHeader(b, batch)
			b.SetBytes(int64(len(buildBatch(b, CodecNone, recs))))
			b.ReportAllocs()
			for b.Loop() {
				if err := Records(h, batch, func(*Record) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuild builds 16 KiB batches with AppendTo into a reused buffer.
func BenchmarkBuild(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	recs := makeRecords(rng, 16<<10/118, 100)
	bl := NewBuilder()
	var buf []byte
	for b.Loop() {
		bl.Reset()
		for _, r := range recs {
			bl.Add(r.key, r.value, r.headers, r.ts)
		}
		buf = bl.AppendTo(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkValidateUniform validates a batch shaped like the ones
// `gregor perf produce` sends: 442 records of 100 random bytes with no key,
// no headers and one timestamp (the produce benchmark's request size).
func BenchmarkValidateUniform(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	recs := make([]testRecord, 442)
	for i := range recs {
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte(rng.IntN(256))
		}
		recs[i] = testRecord{value: v, ts: 1_700_000_000_000}
	}
	batch := buildBatch(b, CodecNone, recs)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Validate(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/record")
}
