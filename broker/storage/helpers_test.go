package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// fsCase is a file system a table test runs over.
type fsCase struct {
	name string
	make func(t *testing.T) (vfs.FS, string)
}

var fsCases = []fsCase{
	{"os", func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() }},
	{"mem", func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data" }},
}

// forEachFS runs test over the real and the in-memory file system.
func forEachFS(t *testing.T, test func(t *testing.T, fsys vfs.FS, dir string)) {
	t.Helper()
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fsys, dir := c.make(t)
			test(t, fsys, filepath.Join(dir, "topic-0"))
		})
	}
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type logOpt func(*Options)

func withNow(c *clock) logOpt { return func(o *Options) { o.Now = c.Now } }

func openLog(t testing.TB, fsys vfs.FS, dir string, cfg Config, opts ...logOpt) *Log {
	t.Helper()
	o := Options{FS: fsys, Dir: dir, Topic: "topic", Partition: 0, Config: cfg}
	if tt, ok := t.(*testing.T); ok {
		o.Logger = zaptest.NewLogger(tt)
	}
	for _, f := range opts {
		f(&o)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// batchSpec describes a test batch.
type batchSpec struct {
	n         int   // records
	valueSize int   // bytes per value
	ts        int64 // timestamp of the first record (ms); records step by 1
	pid       int64 // producer id, -1 for none
	epoch     int16
	seq       int32
	codec     record.Codec
	tag       string // value prefix
}

func makeBatch(t testing.TB, s batchSpec) []byte {
	t.Helper()
	b := record.NewBuilder()
	if s.pid >= 0 {
		b.SetProducer(s.pid, s.epoch, s.seq)
	}
	if s.codec != record.CodecNone {
		if err := b.SetCodec(s.codec); err != nil {
			t.Fatal(err)
		}
	}
	if s.n == 0 {
		s.n = 1
	}
	if s.ts == 0 {
		s.ts = 1_700_000_000_000
	}
	for i := range s.n {
		v := []byte(fmt.Sprintf("%s-%d", s.tag, i))
		if len(v) < s.valueSize {
			v = append(v, make([]byte, s.valueSize-len(v))...)
		}
		b.Add([]byte("k"), v, nil, s.ts+int64(i))
	}
	return b.Build()
}

// plain returns an n-record batch with no producer, values "<tag>-<i>".
func plain(t testing.TB, tag string, n int) []byte {
	return makeBatch(t, batchSpec{n: n, pid: -1, tag: tag})
}

func mustAppend(t testing.TB, l *Log, batch []byte) AppendResult {
	t.Helper()
	res, err := l.Append(batch, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// rec is a record read back.
type rec struct {
	offset int64
	ts     int64
	value  string
}

// readAll reads every record from offset to the high watermark, checking
// that every chunk starts at a batch boundary at or before the offset
// asked for.
func readAll(t testing.TB, l *Log, from int64) []rec {
	t.Helper()
	var out []rec
	next := from
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
		progressed := false
		err = record.Batches(buf, func(_ int, batch []byte, h record.Header) error {
			if err := record.CheckCRC(batch, &h); err != nil {
				return err
			}
			return record.Records(h, batch, func(r *record.Record) error {
				off := h.BaseOffset + int64(r.OffsetDelta)
				if off >= next {
					out = append(out, rec{offset: off, ts: h.BaseTimestamp + r.TimestampDelta, value: string(trimZeros(r.Value))})
					next = off + 1
					progressed = true
				}
				return nil
			})
		})
		if err != nil && !errors.Is(err, record.ErrShort) {
			t.Fatalf("parse chunk at %d: %v", next, err)
		}
		if !progressed {
			t.Fatalf("read at %d made no progress", next)
		}
	}
	return out
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// checkSequential verifies records are offsets from..from+len-1 in order.
func checkSequential(t testing.TB, recs []rec, from int64) {
	t.Helper()
	for i, r := range recs {
		if r.offset != from+int64(i) {
			t.Fatalf("record %d has offset %d, want %d", i, r.offset, from+int64(i))
		}
	}
}

func headerFor(t testing.TB, batch []byte) record.Header {
	t.Helper()
	h, err := record.ParseHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var errNotExist = os.ErrNotExist
