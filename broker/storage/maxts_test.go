package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestStoredMaxTimestampFromRecords: the log stores a batch's largest
// record timestamp, not the producer's header claim (-1 from old sarama,
// 0 or a value from some records only elsewhere), so retention does not
// delete new records, lookups by time find them, and an idempotent
// producer's state is not expired as if it were ancient.
func TestStoredMaxTimestampFromRecords(t *testing.T) {
	for _, claimed := range []int64{-1, 0, 1_000} {
		clk := newClock()
		now := clk.Now().UnixMilli()
		cfg := Config{SegmentBytes: 512, RetentionMs: (24 * time.Hour).Milliseconds()}
		l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
		lie := func(b []byte) []byte {
			h, err := record.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			record.SetMaxTimestamp(b, &h, claimed)
			return b
		}
		for i := range 8 {
			mustAppend(t, l, lie(makeBatch(t, batchSpec{n: 2, ts: now - 10, pid: 9, seq: int32(2 * i), valueSize: 60})))
		}
		if len(l.segments()) < 3 {
			t.Fatalf("%d segments", len(l.segments()))
		}
		l.SetHighWatermark(l.LogEndOffset())
		for _, b := range storedHeaders(t, l) {
			if b.MaxTimestamp != now-9 {
				t.Fatalf("header max %d: stored max %d, want %d", claimed, b.MaxTimestamp, now-9)
			}
		}
		if err := l.Maintain(); err != nil {
			t.Fatal(err)
		}
		if start := l.LogStartOffset(); start != 0 {
			t.Fatalf("header max %d: retention moved the log start to %d", claimed, start)
		}
		if off, _, err := l.OffsetForTimestamp(now - 60_000); err != nil || off != 0 {
			t.Fatalf("header max %d: offset for a minute ago %d, %v; want 0", claimed, off, err)
		}
		if res := mustAppend(t, l, lie(makeBatch(t, batchSpec{n: 2, ts: now - 10, pid: 9, seq: 14, valueSize: 60}))); !res.Duplicate {
			t.Fatalf("header max %d: a repeated batch after retention ran is not a duplicate: %+v", claimed, res)
		}
		l.Close()
	}
}

// storedHeaders returns the header of every batch in l, as stored.
func storedHeaders(t *testing.T, l *Log) []record.Header {
	t.Helper()
	var out []record.Header
	for _, s := range l.segments() {
		_, size := s.end()
		buf := make([]byte, size)
		if _, err := s.log.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		if err := record.Batches(buf, func(_ int, _ []byte, h record.Header) error {
			out = append(out, h)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestTimestampLimits: message.timestamp.{before,after}.max.ms refuse a
// batch holding any record outside the window around the broker's clock
// (ErrInvalidTimestamp, nothing appended), and LogAppendTime topics are not
// checked.
func TestTimestampLimits(t *testing.T) {
	clk := newClock()
	now := clk.Now().UnixMilli()
	cfg := Config{TimestampBeforeMaxMs: 60_000, TimestampAfterMaxMs: 1_000}
	l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
	defer l.Close()
	batch := func(tss ...int64) []byte {
		b := record.NewBuilder()
		for _, ts := range tss {
			b.Add(nil, []byte("v"), nil, ts)
		}
		return b.Build()
	}
	for _, c := range []struct {
		tss []int64
		ok  bool
	}{
		{[]int64{now}, true},
		{[]int64{now - 59_000, now + 900}, true},
		{[]int64{now, now + 2_000}, false},       // one record too far ahead
		{[]int64{now, now - 61_000, now}, false}, // one record too old
		{[]int64{now - 61_000 + 100_000_000}, false},
		// -1 is "no timestamp": no limit applies to it (Kafka), but the
		// other records of its batch are still checked.
		{[]int64{-1, -1}, true},
		{[]int64{-1, now}, true},
		{[]int64{-1, now - 61_000}, false},
		{[]int64{-2}, false},
	} {
		leo := l.LogEndOffset()
		_, err := l.Append(batch(c.tss...), 0)
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrInvalidTimestamp)) {
			t.Fatalf("timestamps %v (now %d): %v", c.tss, now, err)
		}
		if !c.ok && l.LogEndOffset() != leo {
			t.Fatalf("refused batch appended: LEO %d, was %d", l.LogEndOffset(), leo)
		}
	}
	l.SetConfig(Config{TimestampBeforeMaxMs: 60_000, TimestampAfterMaxMs: 1_000, LogAppendTime: true})
	mustAppend(t, l, batch(now-1_000_000))
}

// TestProducerLogAppendTimeRefused: a batch whose producer set the
// LogAppendTime timestamp type is refused with ErrInvalidTimestamp on
// CreateTime and LogAppendTime topics alike, as Kafka refuses it; stored,
// it made consumers of a CreateTime topic see every record at the batch's
// largest timestamp.
func TestProducerLogAppendTimeRefused(t *testing.T) {
	clk := newClock()
	now := clk.Now().UnixMilli()
	for _, cfg := range []Config{{}, {LogAppendTime: true}} {
		l := openLog(t, vfs.NewMem(), "/d/t-0", cfg, withNow(clk))
		b := record.NewBuilder()
		b.SetLogAppendTime(true)
		b.Add(nil, []byte("v"), nil, now-3_000)
		b.Add(nil, []byte("v"), nil, now-1_000)
		if _, err := l.Append(b.Build(), 0); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("LogAppendTime %v: producer's LogAppendTime batch: %v", cfg.LogAppendTime, err)
		}
		if l.LogEndOffset() != 0 {
			t.Errorf("LogAppendTime %v: refused batch appended", cfg.LogAppendTime)
		}
		l.Close()
	}
}

// TestDuplicateKeepsLogAppendTime: an idempotent producer's retry of a
// batch on a LogAppendTime log is answered with the time the original was
// stamped with (Kafka's behaviour), not -1, also after a restart.
func TestDuplicateKeepsLogAppendTime(t *testing.T) {
	clk := newClock()
	fsys := vfs.NewMem()
	cfg := Config{LogAppendTime: true, SegmentBytes: 1024}
	l := openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	var stamped []int64
	var batches [][]byte
	for i := range 6 {
		b := makeBatch(t, batchSpec{n: 4, valueSize: 100, pid: 7, seq: int32(4 * i), ts: 1_600_000_000_000})
		batches = append(batches, b)
		res := mustAppend(t, l, append([]byte(nil), b...))
		stamped = append(stamped, res.LogAppendTime)
		clk.Advance(time.Second)
	}
	retry := func(l *Log) {
		t.Helper()
		for i := 1; i < 6; i++ { // the last five are remembered
			res, err := l.Append(append([]byte(nil), batches[i]...), 0)
			if err != nil || !res.Duplicate || res.LogAppendTime != stamped[i] {
				t.Fatalf("retry of batch %d: %+v, %v; want duplicate stamped %d", i, res, err, stamped[i])
			}
		}
	}
	retry(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, fsys, "/d/t-0", cfg, withNow(clk))
	defer l.Close()
	retry(l)
}
