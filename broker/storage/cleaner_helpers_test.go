package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gregor-log/gregor/broker/record"
)

// kv is one keyed record of a compaction test; tomb marks a tombstone
// (null value) and noKey a record without a key.
type kv struct {
	key   string
	value string
	tomb  bool
	noKey bool
}

// keyedSpec describes a test batch of keyed records.
type keyedSpec struct {
	recs  []kv
	codec record.Codec
	pid   int64 // -1 for none
	epoch int16
	seq   int32
	ts    int64 // first record's timestamp; 0 for a default
	lat   bool  // LogAppendTime
}

func keyedBatch(t testing.TB, s keyedSpec) []byte {
	t.Helper()
	b := record.NewBuilder()
	if s.pid >= 0 {
		b.SetProducer(s.pid, s.epoch, s.seq)
	}
	if err := b.SetCodec(s.codec); err != nil {
		t.Fatal(err)
	}
	b.SetLogAppendTime(s.lat)
	if s.ts == 0 {
		s.ts = 1_700_000_000_000
	}
	for i, r := range s.recs {
		var key, value []byte
		if !r.noKey {
			key = []byte(r.key)
		}
		if !r.tomb {
			value = []byte(r.value)
		}
		b.Add(key, value, []record.RecordHeader{{Key: "h", Value: []byte(r.key)}}, s.ts+int64(i))
	}
	return b.Build()
}

// model remembers what was appended at each offset.
type model struct {
	recs map[int64]kv
}

func newModel() *model { return &model{recs: map[int64]kv{}} }

// appendKeyed appends a batch and records it in the model.
func (m *model) appendKeyed(t testing.TB, l *Log, s keyedSpec) AppendResult {
	t.Helper()
	res, err := l.Append(keyedBatch(t, s), 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	l.SetHighWatermark(l.LogEndOffset())
	if res.Duplicate {
		return res
	}
	for i, r := range s.recs {
		m.recs[res.BaseOffset+int64(i)] = r
	}
	return res
}

// forget drops what a truncation removed.
func (m *model) forget(end int64) {
	for off := range m.recs {
		if off >= end {
			delete(m.recs, off)
		}
	}
}

// latestBelow returns, per key, the offset of its last record below end.
func (m *model) latestBelow(end int64) map[string]int64 {
	latest := map[string]int64{}
	for off, r := range m.recs {
		if off >= end || r.noKey {
			continue
		}
		if cur, ok := latest[r.key]; !ok || off > cur {
			latest[r.key] = off
		}
	}
	return latest
}

// keyedRec is a record read back.
type keyedRec struct {
	offset int64
	kv
	ts    int64
	codec record.Codec
}

// readKeyed reads every record from the log start to the high watermark
// and the headers of every batch on the way.
func readKeyed(t testing.TB, l *Log) ([]keyedRec, []record.Header) {
	t.Helper()
	var (
		out  []keyedRec
		hdrs []record.Header
	)
	next := l.LogStartOffset()
	for next < l.HighWatermark() {
		c, err := l.Read(next, l.HighWatermark(), 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", next, err)
		}
		if c.Size == 0 {
			c.Release()
			break
		}
		buf := make([]byte, c.Size)
		if _, err := c.File.ReadAt(buf, c.Pos); err != nil {
			t.Fatalf("ReadAt: %v", err)
		}
		c.Release()
		start := next
		err = record.Batches(buf, func(_ int, batch []byte, h record.Header) error {
			if err := record.CheckCRC(batch, &h); err != nil {
				return err
			}
			if h.LastOffset() < next {
				return nil
			}
			hdrs = append(hdrs, h)
			err := record.Records(h, batch, func(r *record.Record) error {
				off := h.BaseOffset + int64(r.OffsetDelta)
				if off < next {
					return nil
				}
				kr := keyedRec{offset: off, ts: h.BaseTimestamp + r.TimestampDelta, codec: h.Codec()}
				if h.LogAppendTime() {
					kr.ts = h.MaxTimestamp
				}
				kr.key, kr.value = string(r.Key), string(r.Value)
				kr.noKey, kr.tomb = r.Key == nil, r.Value == nil
				out = append(out, kr)
				return nil
			})
			next = h.LastOffset() + 1
			return err
		})
		if err != nil && !errors.Is(err, record.ErrShort) {
			t.Fatalf("parse chunk at %d: %v", start, err)
		}
		if next == start {
			t.Fatalf("read at %d made no progress", start)
		}
	}
	return out, hdrs
}

// checkLog checks what the log holds against the model:
//   - every record is the one appended at its offset, offsets ascend;
//   - the last record of every key is its latest (a key whose latest is a
//     tombstone may instead be gone altogether);
//   - below cleanedTo, every record is the latest of its key below
//     cleanedTo, and no record lacks a key.
//
// It returns the records read.
func checkLog(t testing.TB, l *Log, m *model, cleanedTo int64) []keyedRec {
	t.Helper()
	recs, _ := readKeyed(t, l)
	last := map[string]keyedRec{}
	prev := int64(-1)
	for _, r := range recs {
		if r.offset <= prev {
			t.Fatalf("offset %d after %d", r.offset, prev)
		}
		prev = r.offset
		want, ok := m.recs[r.offset]
		if !ok || want != r.kv {
			t.Fatalf("offset %d holds %+v, appended %+v (%v)", r.offset, r.kv, want, ok)
		}
		if !r.noKey {
			last[r.key] = r
		}
	}
	visible := l.LogStartOffset()
	for key, off := range m.latestBelow(l.HighWatermark()) {
		if off < visible {
			continue
		}
		got, ok := last[key]
		switch {
		case !ok && m.recs[off].tomb:
		case !ok:
			t.Fatalf("key %q is gone; its latest value is at offset %d", key, off)
		case got.offset != off:
			t.Fatalf("key %q ends at offset %d, its latest is at %d", key, got.offset, off)
		}
	}
	if cleanedTo > 0 {
		latest := m.latestBelow(cleanedTo)
		for _, r := range recs {
			if r.offset >= cleanedTo {
				break
			}
			if r.noKey {
				t.Fatalf("record without a key at offset %d below the cleaned offset %d", r.offset, cleanedTo)
			}
			if latest[r.key] != r.offset {
				t.Fatalf("offset %d holds key %q below the cleaned offset %d, whose latest there is %d", r.offset, r.key, cleanedTo, latest[r.key])
			}
		}
	}
	return recs
}

// tombstonesIn returns the offsets of the tombstones in recs below end.
func tombstonesIn(recs []keyedRec, end int64) []int64 {
	var offs []int64
	for _, r := range recs {
		if r.tomb && r.offset < end {
			offs = append(offs, r.offset)
		}
	}
	return offs
}

// fillKeyed appends n batches of 1 to 4 records over nkeys keys, some of
// them tombstones when tombs is set, with the given codec.
func fillKeyed(t testing.TB, l *Log, m *model, rng *rand.Rand, n, nkeys int, codec record.Codec, tombs bool) {
	t.Helper()
	for range n {
		var recs []kv
		for range 1 + rng.IntN(4) {
			k := fmt.Sprintf("k%02d", rng.IntN(nkeys))
			r := kv{key: k, value: fmt.Sprintf("%s@%d-%d", k, l.LogEndOffset(), rng.IntN(1000))}
			if tombs && rng.IntN(8) == 0 {
				r = kv{key: k, tomb: true}
			}
			recs = append(recs, r)
		}
		m.appendKeyed(t, l, keyedSpec{recs: recs, codec: codec, pid: -1})
	}
}

// roll makes the active segment's records cleanable: it appends one record
// in a new segment and flushes, so the recovery point moves past them.
func roll(t testing.TB, l *Log, m *model) {
	t.Helper()
	l.mu.Lock()
	var err error
	if _, size := l.activeLocked().end(); size > 0 {
		_, err = l.rollLocked(l.leo.Load())
	}
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	m.appendKeyed(t, l, keyedSpec{recs: []kv{{key: "filler", value: fmt.Sprint(l.LogEndOffset())}}, pid: -1})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
}

// clean runs one pass and fails the test on error.
func clean(t testing.TB, c *Cleaner, l *Log) CleanResult {
	t.Helper()
	res, err := c.Clean(context.Background(), l)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return res
}

// compactConfig is a compacted log with small segments.
func compactConfig() Config {
	return Config{
		SegmentBytes:       1024,
		IndexIntervalBytes: 128,
		CleanupPolicy:      PolicyCompact,
		RetentionMs:        -1,
		FileDeleteDelayMs:  1,
	}
}
