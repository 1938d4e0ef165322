package record

import "testing"

// TestValidateMaxTimestamp: the largest record timestamp comes from the
// records, whatever the header claims, for every codec, with timestamps
// out of order and deltas long enough to miss the one/two-byte fast path.
func TestValidateMaxTimestamp(t *testing.T) {
	const base = 1_700_000_000_000
	tss := []int64{base + 5, base + 90_000_000, base - 3, base + 70, base + 90_000_001, base}
	var recs []testRecord
	for i := range 40 {
		recs = append(recs, testRecord{value: []byte("value of some length, enough for the fast path"), ts: tss[i%len(tss)]})
	}
	want := int64(base + 90_000_001)
	for _, c := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		for _, claimed := range []int64{-1, 0, base, want, want + 1000} {
			batch := buildBatch(t, c, recs)
			h, err := ParseHeader(batch)
			if err != nil {
				t.Fatal(err)
			}
			SetMaxTimestamp(batch, &h, claimed) // a producer's claim, CRC valid
			h, got, err := ValidateMaxTimestamp(batch)
			if err != nil {
				t.Fatalf("%s, header max %d: %v", c, claimed, err)
			}
			if h.MaxTimestamp != claimed || got != want {
				t.Fatalf("%s, header max %d: parsed %d, records' max %d, want %d", c, claimed, h.MaxTimestamp, got, want)
			}
			SetMaxTimestamp(batch, &h, got)
			if h2, err := Validate(batch); err != nil || h2.MaxTimestamp != want {
				t.Fatalf("%s after SetMaxTimestamp: max %d, %v", c, h2.MaxTimestamp, err)
			}
		}
	}
}
