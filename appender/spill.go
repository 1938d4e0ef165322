package appender

// Spill files.
//
// With the spill policy, records that find the memory buffer full are
// appended to spill files in Config.SpillDir; from then on every new record
// goes to the files too (behind the older ones), until the shipper has
// replayed them all into the producer. Records therefore reach the topic
// in the order they were logged.
//
// Layout of SpillDir, for topic T:
//
//	T.lock                     flock(2) held while an appender uses the files
//	T.<seq, 20 digits>.spill   segments, oldest (lowest seq) replayed first
//	T.<seq, 20 digits>.kept    written by Close: the records still in memory,
//	                           unacknowledged, replayed before seq+1
//	T.spillpos                 written by Close: where replay stopped
//
// A segment is a sequence of frames and nothing else:
//
//	frame   = length uint32 | crc uint32 | payload      (big-endian)
//	length  = bytes of payload
//	crc     = CRC-32C (Castagnoli) of payload
//	payload = timestamp int64 (Unix milliseconds)
//	          | levelLen uint8 | level (the "level" header)
//	          | keyLen uint32 | key | value (the rest)
//
// A log call never touches the disk: it appends the frame to its
// segment's in-memory pending buffer (at most a quarter of
// Config.BufferBytes, up to 16 MiB, for all segments, taken out of the
// memory bound, plus what it can borrow of the memory buffer's free share;
// beyond that the record is dropped and counted, the disk being too slow
// or the writer starved of CPU), and the spill writer goroutine writes pending bytes to the
// files, whole frames at a time. A short or failing frame can therefore
// only come from a crash or a failed write; replay reports it as a
// *SpillCorruptionError and skips the rest of that segment. A segment
// read to its end is deleted once every record read from it has been
// acknowledged (or has failed): until then a crash replays them again.
// Segments are not fsynced on every write: spilling bounds memory, it is
// not a write-ahead log. Close fsyncs them, writes what memory still holds
// unacknowledged to the kept segment just before the replay position, and
// records the position in T.spillpos (see readPos: the replay position,
// then where reading starts in later segments that an earlier run had
// partly replayed), so the next run resumes there; only then are the
// segments read to their end deleted. After a crash the next run replays
// each remaining segment from the positions last recorded, or from its
// start: records may then be shipped twice, never lost.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gregor-log/gregor/internal/vfs"
)

const (
	frameHeaderLen  = 8
	spillFlushAt    = 64 << 10              // pending bytes that wake the writer
	spillFlushEvery = 20 * time.Millisecond // the writer's idle flush period
	spillPosLen     = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errSpillFull is returned by append when the spill files are at
// SpillMaxBytes, or the writer is that far behind; the record is dropped
// and counted.
var errSpillFull = errors.New("appender: spill files full")

// SpillCorruptionError reports a spill segment that could not be read past
// Offset. The rest of the segment is skipped.
type SpillCorruptionError struct {
	Path    string
	Offset  int64
	Skipped int64 // bytes skipped
	Reason  string
}

func (e *SpillCorruptionError) Error() string {
	return fmt.Sprintf("appender: spill segment %s corrupt at offset %d (%s); skipped %d bytes",
		e.Path, e.Offset, e.Reason, e.Skipped)
}

// spillPos is a position in the spill stream.
type spillPos struct {
	seq  uint64
	off  int64
	kept bool // in the kept segment seq, which comes before the spill segment seq
}

func (p spillPos) less(q spillPos) bool {
	if p.seq != q.seq {
		return p.seq < q.seq
	}
	if p.kept != q.kept {
		return p.kept
	}
	return p.off < q.off
}

// posOf is the position off in seg.
func posOf(seg *segment, off int64) spillPos { return spillPos{seq: seg.seq, off: off, kept: seg.kept} }

// segment is one spill file. Its file is created by the writer when the
// first bytes are written.
type segment struct {
	seq     uint64
	path    string
	written atomic.Int64 // bytes in the file, always whole frames

	// Guarded by spill.mu.
	f             vfs.File // nil until first written
	pending       []byte   // frames not yet written
	pendingFrames int64
	writing       int64 // bytes the writer took from pending and is writing

	kept  bool  // a kept segment (see close), named .kept
	start int64 // where the reader starts in it: the stored position's offset

	// Guarded by spill.mu. A segment the reader has finished is retired:
	// its file stays until every record read from it has been
	// acknowledged or has failed (outstanding), so that a crash before
	// then replays them again rather than losing them.
	outstanding int64
	retired     bool
	removed     bool
}

// spill owns the spill files of one topic. Log calls append frames under
// mu; the writer goroutine writes them; the reader (the shipper goroutine)
// reads files without mu, up to each segment's written mark, and takes mu
// to switch and delete segments.
type spill struct {
	fs         vfs.FS
	dir        string
	prefix     string // dir/topic
	maxBytes   int64
	segMax     int64
	maxFrame   int64
	pendingMax int64 // pending bytes beyond which records drop, unless borrowed
	// borrow, if set, lends the spill room from the in-memory buffer's
	// share of the memory bound when its own pending share is full and
	// the writer is busy (a slow or stalled disk): while the spill is
	// active no new record goes to the in-memory queue, so that room would
	// otherwise sit idle while records are dropped.
	borrow borrower
	lock   io.Closer
	onLost func(frames, bytes int64, err error) // frames a failed write lost

	active atomic.Bool  // new records must go to the files
	total  atomic.Int64 // bytes in all segments, pending included

	mu struct {
		sync.Mutex
		segs     []*segment // oldest first
		w        *segment   // being appended to; nil until the first append
		pending  int64      // pending bytes over all segments
		borrowed int64      // of those, bytes beyond pendingMax lent by borrow
		err      error      // sticky write error
		errAt    time.Time  // when err was set
		nextSeq  uint64
		// retired segments waiting for their records' acknowledgements.
		retired []*segment
		closing bool // close has begun: it deletes the retired segments
	}

	wake   chan struct{} // capacity 1: pending bytes to write
	stop   chan struct{}
	done   chan struct{}
	closed bool

	// Reader state, owned by the shipper goroutine.
	r struct {
		seg *segment
		off int64
		hdr [frameHeaderLen]byte
	}
}

// borrower lends bytes of the memory bound.
type borrower interface {
	// take reserves n bytes, or reserves nothing and returns false.
	take(n int64) bool
	// give returns n bytes taken earlier.
	give(n int64)
}

// spillPendingMax is the spill writer's share of the memory bound.
func spillPendingMax(bufferBytes int64) int64 { return min(max(bufferBytes/4, 64<<10), 16<<20) }

func openSpill(fs vfs.FS, dir, topic string, maxBytes int64, maxRecordBytes int, pendingMax int64,
	onLost func(frames, bytes int64, err error)) (*spill, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create spill dir %s: %w", dir, err)
	}
	sp := &spill{
		fs:         fs,
		dir:        dir,
		prefix:     filepath.Join(dir, topic),
		maxBytes:   maxBytes,
		segMax:     min(max(maxBytes/8, 1<<20), 64<<20),
		maxFrame:   int64(maxRecordBytes) + 8 + 1 + 255 + 4,
		pendingMax: pendingMax,
		onLost:     onLost,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	lock, err := vfs.Lock(fs, sp.prefix+".lock")
	if err != nil {
		return nil, fmt.Errorf("spill dir %s: %w", dir, err)
	}
	sp.lock = lock
	if err := sp.load(); err != nil {
		sp.closeFiles()
		lock.Close()
		return nil, err
	}
	go sp.writeLoop()
	return sp, nil
}

// load opens the segments a previous run left and positions the reader.
func (sp *spill) load() error {
	ents, err := sp.fs.ReadDir(sp.dir)
	if err != nil {
		return fmt.Errorf("read spill dir %s: %w", sp.dir, err)
	}
	base := filepath.Base(sp.prefix) + "."
	type found struct {
		seq  uint64
		kept bool
	}
	var segs []found
	for _, de := range ents {
		name := de.Name()
		suffix := ".spill"
		if strings.HasSuffix(name, ".kept") {
			suffix = ".kept"
		}
		if !strings.HasPrefix(name, base) || !strings.HasSuffix(name, suffix) {
			continue
		}
		num := strings.TrimSuffix(strings.TrimPrefix(name, base), suffix)
		if len(num) != 20 {
			continue
		}
		seq, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, found{seq, suffix == ".kept"})
	}
	// By sequence; a kept segment before a spill segment of the same one.
	slices.SortFunc(segs, func(a, b found) int {
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		if a.kept == b.kept {
			return 0
		}
		if a.kept {
			return -1
		}
		return 1
	})
	starts, err := sp.readPos()
	if err != nil {
		return err
	}
	havePos := len(starts) > 0
	var pos spillPos
	if havePos {
		pos = starts[0]
	}
	for _, fd := range segs {
		seq := fd.seq
		path := sp.segPath(seq)
		if fd.kept {
			path = sp.keptPath(seq)
		}
		// Spill segments before the position were replayed. Kept
		// segments go one further: close writes its own just before the
		// position (at seq-1), to be read whole; and after a crash
		// inside close one may lie at the old position's sequence
		// (read whole as well: duplicates, not loss).
		if havePos && (fd.kept && seq+1 < pos.seq || !fd.kept && seq < pos.seq) {
			if err := sp.fs.Remove(path); err != nil {
				return fmt.Errorf("remove replayed spill segment %s: %w", path, err)
			}
			continue
		}
		f, err := sp.fs.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open spill segment %s: %w", path, err)
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return fmt.Errorf("size of spill segment %s: %w", path, err)
		}
		seg := &segment{seq: seq, path: path, f: f, kept: fd.kept}
		seg.written.Store(size)
		for _, st := range starts {
			if st.seq == seq && st.kept == fd.kept {
				seg.start = min(max(st.off, 0), size)
			}
		}
		sp.mu.segs = append(sp.mu.segs, seg)
		sp.total.Add(size)
		sp.mu.nextSeq = max(sp.mu.nextSeq, seq+1)
	}
	for _, st := range starts {
		if st.seq >= sp.mu.nextSeq {
			sp.mu.nextSeq = st.seq + 1
		}
	}
	if sp.mu.nextSeq == 0 {
		// A new spill dir: sequences start high, leaving room below for
		// the kept segments of later Closes.
		sp.mu.nextSeq = firstSeq
	}
	if len(sp.mu.segs) > 0 {
		first := sp.mu.segs[0]
		sp.r.seg, sp.r.off = first, first.start
		sp.active.Store(true) // old records go first
	}
	return nil
}

// firstSeq is the first segment's sequence in a new spill dir.
const firstSeq = 1 << 32

func (sp *spill) keptPath(seq uint64) string {
	return fmt.Sprintf("%s.%020d.kept", sp.prefix, seq)
}

func (sp *spill) segPath(seq uint64) string {
	return fmt.Sprintf("%s.%020d.spill", sp.prefix, seq)
}

func (sp *spill) posPath() string { return sp.prefix + ".spillpos" }

// readPos reads the position file: the replay position first, then where
// reading starts in later segments. Two layouts:
//
//	20 bytes: seq uint64 | off int64 | CRC-32C of the first 16 (one
//	          position, in a spill segment)
//	"GSP2" | n uint16 | n x (seq uint64 | off int64 | kept uint8) | CRC-32C
//	          of everything before it
//
// A torn or damaged file reads as none: everything is replayed
// (duplicates, not loss).
func (sp *spill) readPos() ([]spillPos, error) {
	b, err := vfs.ReadFile(sp.fs, sp.posPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", sp.posPath(), err)
	}
	if len(b) == spillPosLen && crc32.Checksum(b[:16], castagnoli) == binary.BigEndian.Uint32(b[16:]) {
		return []spillPos{{seq: binary.BigEndian.Uint64(b[0:]), off: int64(binary.BigEndian.Uint64(b[8:]))}}, nil
	}
	if len(b) < 10 || string(b[:4]) != "GSP2" {
		return nil, nil
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) != 6+17*n+4 || n == 0 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, nil
	}
	out := make([]spillPos, n)
	for i := range out {
		e := b[6+17*i:]
		out[i] = spillPos{seq: binary.BigEndian.Uint64(e), off: int64(binary.BigEndian.Uint64(e[8:])), kept: e[16] == 1}
	}
	return out, nil
}

// storePos records the positions durably (readPos's second layout): temp
// file, fsync, rename, fsync the directory.
func (sp *spill) storePos(ps []spillPos) error {
	b := append(make([]byte, 0, 6+17*len(ps)+4), "GSP2"...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint64(b, p.seq)
		b = binary.BigEndian.AppendUint64(b, uint64(p.off))
		kept := byte(0)
		if p.kept {
			kept = 1
		}
		b = append(b, kept)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	tmp := sp.posPath() + ".tmp"
	f, err := vfs.Create(sp.fs, tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := sp.fs.Rename(tmp, sp.posPath()); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := sp.fs.SyncDir(sp.dir); err != nil {
		return fmt.Errorf("sync spill dir %s: %w", sp.dir, err)
	}
	return nil
}

// size is the bytes in the spill files, pending included.
func (sp *spill) size() int64 { return sp.total.Load() }

// pendingSizes is the bytes waiting for the writer and how many of them
// were borrowed from the in-memory buffer's share, with held() read at the
// same moment (borrowing changes both under mu).
func (sp *spill) pendingSizes(held func() int64) (pending, borrowed, heldNow int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.mu.pending, sp.mu.borrowed, held()
}

// append queues e as one frame for the writer. It returns errSpillFull at
// SpillMaxBytes or when the writer is pendingMax bytes behind (plus what
// it could borrow from the memory buffer), or the sticky write error. It
// never does I/O: even a write to the page cache can stall for as long as
// the kernel throttles dirty pages (hundreds of milliseconds on a slow
// disk), so a writer that is behind, whether starved of CPU or writing to
// a slow disk, is woken and the record dropped and counted.
func (sp *spill) append(e *entry) error {
	err := sp.tryAppend(e)
	if !errors.Is(err, errSpillBehind) {
		return err
	}
	sp.wakeWriter()
	return errSpillFull
}

// errSpillBehind: the pending buffer is full.
var errSpillBehind = errors.New("appender: spill writer behind")

func (sp *spill) tryAppend(e *entry) error {
	key, val, lvl := e.rec.Key, e.rec.Value, e.hdrs[2].Value
	if len(lvl) > 255 {
		lvl = lvl[:255]
	}
	payload := 8 + 1 + len(lvl) + 4 + len(key) + len(val)
	frame := int64(frameHeaderLen + payload)

	sp.mu.Lock()
	if sp.mu.err != nil && !sp.retryLocked() {
		err := sp.mu.err
		sp.mu.Unlock()
		return err
	}
	if sp.total.Load()+frame > sp.maxBytes {
		sp.mu.Unlock()
		return errSpillFull
	}
	if sp.mu.pending+frame > max(sp.pendingMax+sp.mu.borrowed, frame) {
		if sp.borrow == nil || !sp.borrow.take(frame) {
			sp.mu.Unlock()
			return errSpillBehind
		}
		sp.mu.borrowed += frame
	}
	w := sp.mu.w
	if w == nil || w.sizeLocked()+frame > sp.segMax && w.sizeLocked() > 0 {
		w = &segment{seq: sp.mu.nextSeq, path: sp.segPath(sp.mu.nextSeq)}
		sp.mu.nextSeq++
		sp.mu.segs = append(sp.mu.segs, w)
		sp.mu.w = w
	}
	b := w.pending
	if b == nil {
		b = make([]byte, 0, spillFlushAt+frame)
	}
	b = appendFrame(b, e)
	w.pending = b
	w.pendingFrames++
	sp.mu.pending += frame
	sp.total.Add(frame)
	sp.active.Store(true)
	wake := len(b) >= spillFlushAt
	sp.mu.Unlock()
	if wake {
		sp.wakeWriter()
	}
	return nil
}

// frameLen is the bytes e takes as a spill frame.
func frameLen(e *entry) int64 {
	return int64(frameHeaderLen + 8 + 1 + min(len(e.hdrs[2].Value), 255) + 4 + len(e.rec.Key) + len(e.rec.Value))
}

// appendFrame appends e's frame to b.
func appendFrame(b []byte, e *entry) []byte {
	key, val, lvl := e.rec.Key, e.rec.Value, e.hdrs[2].Value
	if len(lvl) > 255 {
		lvl = lvl[:255]
	}
	payload := 8 + 1 + len(lvl) + 4 + len(key) + len(val)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(payload))
	b = binary.BigEndian.AppendUint32(b, 0) // crc, below
	b = binary.BigEndian.AppendUint64(b, uint64(e.rec.Timestamp.UnixMilli()))
	b = append(b, byte(len(lvl)))
	b = append(b, lvl...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = append(b, val...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeaderLen:], castagnoli))
	return b
}

func (sp *spill) wakeWriter() {
	select {
	case sp.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the spill writer goroutine: it writes pending frames to the
// files, oldest segment first, when woken, every spillFlushEvery, and a
// last time when stopped.
func (sp *spill) writeLoop() {
	defer close(sp.done)
	t := time.NewTicker(spillFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-sp.wake:
		case <-t.C:
		case <-sp.stop:
			sp.writePending()
			return
		}
		sp.writePending()
	}
}

// writePending writes every segment's pending frames. A failed write is
// sticky: the frames are lost (reported through onLost) and the spill
// takes no more records until it has been replayed empty and
// spillRetryAfter has passed (see retryLocked). Only the writer
// goroutine calls it.
func (sp *spill) writePending() {
	for {
		sp.mu.Lock()
		var seg *segment
		for _, s := range sp.mu.segs {
			if len(s.pending) > 0 {
				seg = s
				break
			}
		}
		if seg == nil {
			sp.mu.Unlock()
			return
		}
		buf, frames := seg.pending, seg.pendingFrames
		seg.pending, seg.pendingFrames = nil, 0
		seg.writing = int64(len(buf))
		f, failed := seg.f, sp.mu.err
		sp.mu.Unlock()

		var err error
		if failed != nil {
			err = failed
		} else {
			if f == nil {
				f, err = sp.fs.OpenFile(seg.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
				if err != nil {
					err = fmt.Errorf("appender: create spill segment %s: %w", seg.path, err)
				}
			}
			if err == nil {
				if _, werr := f.Write(buf); werr != nil {
					// The file may now hold part of buf beyond the
					// written mark, where the reader never looks.
					err = fmt.Errorf("appender: write spill segment %s: %w", seg.path, werr)
				}
			}
		}

		sp.mu.Lock()
		seg.writing = 0
		sp.mu.pending -= int64(len(buf))
		// Return what is no longer needed beyond the pending share.
		giveBack := sp.mu.borrowed - max(sp.mu.pending-sp.pendingMax, 0)
		if giveBack > 0 {
			sp.mu.borrowed -= giveBack
		}
		if f != nil && seg.f == nil {
			seg.f = f
		}
		if err == nil {
			seg.written.Add(int64(len(buf)))
		} else {
			sp.total.Add(-int64(len(buf)))
			if sp.mu.err == nil {
				sp.mu.err, sp.mu.errAt = err, time.Now()
			}
			if sp.mu.w == seg {
				sp.mu.w = nil // never append after a failed write
			}
		}
		if giveBack > 0 {
			sp.borrow.give(giveBack) // under mu, so Stats sees both change at once
		}
		sp.mu.Unlock()
		if err != nil && failed == nil {
			sp.onLost(frames, int64(len(buf)), err)
		} else if err != nil {
			sp.onLost(frames, int64(len(buf)), nil)
		}
	}
}

// spillRetryAfter is how long a spill whose write failed (a full or
// failing disk) takes no records, once what it held was replayed or lost,
// before it tries its files again: records logged meanwhile find the
// memory buffer full and are dropped and counted, rather than accepted
// and lost with the next failed write.
const spillRetryAfter = time.Second

// retryLocked clears the sticky write error, and reports true, when the
// spill holds nothing and spillRetryAfter has passed since the failure.
func (sp *spill) retryLocked() bool {
	if len(sp.mu.segs) > 0 || time.Since(sp.mu.errAt) < spillRetryAfter {
		return false
	}
	sp.mu.err = nil // a fresh start after a failed write
	return true
}

// pendingLocked reports whether seg has frames not yet in its file.
func (seg *segment) pendingLocked() bool { return len(seg.pending) > 0 || seg.writing > 0 }

// sizeLocked is the segment's size once everything pending is written.
func (seg *segment) sizeLocked() int64 {
	return seg.written.Load() + seg.writing + int64(len(seg.pending))
}

// endPos returns the end of the spilled data, and false if there is none.
func (sp *spill) endPos() (spillPos, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := len(sp.mu.segs)
	if n == 0 {
		return spillPos{}, false
	}
	last := sp.mu.segs[n-1]
	return posOf(last, last.sizeLocked()), true
}

// readerPos returns the reader's position (shipper goroutine only).
func (sp *spill) readerPos() spillPos {
	if sp.r.seg != nil {
		return posOf(sp.r.seg, sp.r.off)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.mu.segs) > 0 {
		return posOf(sp.mu.segs[0], sp.mu.segs[0].start)
	}
	return spillPos{seq: sp.mu.nextSeq}
}

// next reads the next spilled record into e and returns where its frame
// starts. It returns false when no record is readable now (the writer may
// still hold some: it is woken); when the files are then empty it also
// clears active, so that new records go to memory again. Shipper
// goroutine only.
func (sp *spill) next(e *entry) (spillPos, bool, error) {
	for {
		seg := sp.r.seg
		if seg == nil {
			sp.mu.Lock()
			if len(sp.mu.segs) == 0 {
				sp.active.Store(false)
				sp.retryLocked()
				sp.mu.Unlock()
				return spillPos{}, false, nil
			}
			sp.r.seg, sp.r.off = sp.mu.segs[0], sp.mu.segs[0].start
			sp.mu.Unlock()
			continue
		}
		avail := seg.written.Load()
		if sp.r.off+frameHeaderLen <= avail {
			pos, err := sp.readFrame(seg, avail, e)
			if err != nil {
				return spillPos{}, false, err
			}
			return pos, true, nil
		}
		// Nothing whole left to read in seg right now.
		sp.mu.Lock()
		if seg.pendingLocked() {
			sp.mu.Unlock()
			sp.wakeWriter()
			return spillPos{}, false, nil
		}
		if written := seg.written.Load(); sp.r.off < written {
			sp.mu.Unlock()
			if sp.r.off+frameHeaderLen > written {
				// A torn frame header at the end: nothing will follow
				// it, pending being empty.
				return spillPos{}, false, sp.corrupt(seg, sp.r.off, "truncated frame header")
			}
			continue // the writer just wrote more
		}
		// seg is fully read: retire it, and delete it once what was
		// read from it is acknowledged. If it is the writer's, the next
		// append starts a new one.
		if seg == sp.mu.w {
			sp.mu.w = nil
		}
		sp.dropLocked(seg)
		sp.r.seg, sp.r.off = nil, 0
		seg.retired = true
		gone := seg.outstanding == 0 && !seg.removed
		if gone {
			seg.removed = true
		} else {
			sp.mu.retired = append(sp.mu.retired, seg)
		}
		sp.mu.Unlock()
		// The file goes outside the lock: log calls wait on it.
		if gone {
			if err := sp.remove(seg); err != nil {
				return spillPos{}, false, err
			}
		}
	}
}

// readFrame reads the frame at the reader's offset in seg into e.
func (sp *spill) readFrame(seg *segment, avail int64, e *entry) (spillPos, error) {
	start := sp.r.off
	if _, err := seg.f.ReadAt(sp.r.hdr[:], start); err != nil {
		return spillPos{}, sp.corrupt(seg, start, "read frame header: "+err.Error())
	}
	n := int64(binary.BigEndian.Uint32(sp.r.hdr[0:]))
	want := binary.BigEndian.Uint32(sp.r.hdr[4:])
	if n < 8+1+4 || n > sp.maxFrame {
		return spillPos{}, sp.corrupt(seg, start, fmt.Sprintf("frame length %d out of range", n))
	}
	if start+frameHeaderLen+n > avail {
		return spillPos{}, sp.corrupt(seg, start, fmt.Sprintf("frame of %d bytes runs past the end", n))
	}
	if int64(cap(e.val)) < n {
		e.val = make([]byte, n)
	}
	p := e.val[:n]
	if _, err := seg.f.ReadAt(p, start+frameHeaderLen); err != nil {
		return spillPos{}, sp.corrupt(seg, start, "read frame: "+err.Error())
	}
	if crc32.Checksum(p, castagnoli) != want {
		return spillPos{}, sp.corrupt(seg, start, "checksum mismatch")
	}
	ts := int64(binary.BigEndian.Uint64(p[0:]))
	ll := int64(p[8])
	if 9+ll+4 > n {
		return spillPos{}, sp.corrupt(seg, start, "level runs past the frame")
	}
	lvl := p[9 : 9+ll]
	kl := int64(binary.BigEndian.Uint32(p[9+ll:]))
	if 9+ll+4+kl > n {
		return spillPos{}, sp.corrupt(seg, start, "key runs past the frame")
	}
	key := p[9+ll+4 : 9+ll+4+kl]
	val := p[9+ll+4+kl:]
	e.val = p
	e.rec.Value = val
	e.setMeta(time.UnixMilli(ts), lvl)
	if kl > 0 {
		e.rec.Key = key
	}
	e.spilled = true
	e.seg = seg
	sp.mu.Lock()
	seg.outstanding++
	sp.mu.Unlock()
	sp.r.off = start + frameHeaderLen + n
	return posOf(seg, start), nil
}

// corrupt skips what seg holds after off and returns the error
// describing it. Later records go to a new segment.
func (sp *spill) corrupt(seg *segment, off int64, reason string) error {
	sp.mu.Lock()
	if seg == sp.mu.w {
		sp.mu.w = nil
	}
	end := seg.sizeLocked()
	sp.mu.Unlock()
	sp.r.off = end
	return &SpillCorruptionError{Path: seg.path, Offset: off, Skipped: end - off, Reason: reason}
}

// release ends a record read from seg: acknowledged, failed or put back.
// The last one of a retired segment deletes its file.
func (sp *spill) release(seg *segment) {
	sp.mu.Lock()
	seg.outstanding--
	gone := seg.retired && seg.outstanding == 0 && !seg.removed && !sp.mu.closing
	if gone {
		seg.removed = true
		sp.mu.retired = slices.DeleteFunc(sp.mu.retired, func(r *segment) bool { return r == seg })
	}
	sp.mu.Unlock()
	if gone {
		if err := sp.remove(seg); err != nil && sp.onLost != nil {
			sp.onLost(0, 0, err)
		}
	}
}

// dropLocked forgets a fully replayed segment; remove deletes its file.
func (sp *spill) dropLocked(seg *segment) {
	for i, s := range sp.mu.segs {
		if s == seg {
			sp.mu.segs = append(sp.mu.segs[:i], sp.mu.segs[i+1:]...)
			break
		}
	}
	sp.total.Add(-seg.written.Load())
}

// remove closes and deletes the file of a segment dropLocked forgot. No
// one else refers to it any more.
func (sp *spill) remove(seg *segment) error {
	if seg.f == nil {
		return nil // never written
	}
	cerr := seg.f.Close()
	if err := sp.fs.Remove(seg.path); err != nil {
		return fmt.Errorf("appender: remove replayed spill segment %s: %w", seg.path, err)
	}
	if cerr != nil {
		return fmt.Errorf("appender: close spill segment %s: %w", seg.path, cerr)
	}
	return nil
}

// pendingBytes is what is left to replay (after the shipper stopped).
func (sp *spill) pendingBytes() int64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := sp.total.Load()
	for _, seg := range sp.mu.segs {
		switch {
		case seg == sp.r.seg:
			n -= sp.r.off
		default:
			n -= seg.start
		}
	}
	return max(n, 0)
}

// close stops the writer after it has written everything pending, fsyncs
// the segments, records the replay position (or removes the position file
// if nothing is left) and releases the files. resume, if set, overrides
// the reader's position (a record read but not yet produced). Only after
// the shipper goroutine stopped.
//
// kept are the records Close took back from memory, unacknowledged, in
// the order they were produced: all of them older than anything left in
// the files. They go to a kept segment, T.<seq>.kept, whose sequence is
// the position's less one, so that the next run reads it first, whole,
// and then the rest from the position; then the retired segments go.
// When the kept segment cannot be written (the position at sequence 0, a
// spill dir of an older version, or a write error) the position moves
// back to the start of the oldest segment still holding a kept record
// read from it, and those segments stay: the records read from the files
// are replayed again (with duplicates), those that never were in them
// are lost. keptAll reports whether the kept segment was written.
func (sp *spill) close(kept []*entry, resume *spillPos) (keptAll bool, keptBytes int64, err error) {
	if sp.closed {
		return len(kept) == 0, 0, nil
	}
	sp.closed = true
	close(sp.stop)
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.mu.closing = true
	var errs []error
	pos := spillPos{seq: sp.mu.nextSeq}
	if sp.r.seg != nil {
		pos = posOf(sp.r.seg, sp.r.off)
	} else if len(sp.mu.segs) > 0 {
		pos = posOf(sp.mu.segs[0], sp.mu.segs[0].start)
	}
	if resume != nil && resume.less(pos) {
		pos = *resume
	}
	all := append(append([]*segment(nil), sp.mu.retired...), sp.mu.segs...)
	keptAll = len(kept) == 0
	keptPath := ""
	if !keptAll {
		if pos.seq == 0 {
			errs = append(errs, fmt.Errorf("appender: %d records unacknowledged at Close: no spill sequence left below %d", len(kept), pos.seq))
		} else if n, err := sp.writeKept(pos.seq-1, kept); err != nil {
			errs = append(errs, err)
		} else {
			keptAll, keptBytes, keptPath = true, n, sp.keptPath(pos.seq-1)
			sp.total.Add(n)
		}
	}
	if !keptAll {
		for _, seg := range all {
			if seg.outstanding > 0 {
				if p := posOf(seg, seg.start); p.less(pos) {
					pos = p
				}
			}
		}
	}
	starts := []spillPos{pos}
	for _, seg := range all {
		at := posOf(seg, 0)
		if seg.start > 0 && (at.seq != pos.seq || at.kept != pos.kept) && !at.less(spillPos{seq: pos.seq, kept: pos.kept}) {
			starts = append(starts, posOf(seg, seg.start))
		}
	}
	left := sp.total.Load() > 0 || !keptAll && len(sp.mu.retired) > 0
	for _, seg := range all {
		if seg.f == nil {
			continue
		}
		if err := seg.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("appender: sync spill segment %s: %w", seg.path, err))
		}
	}
	posErr := error(nil)
	if left {
		posErr = sp.storePos(starts)
	} else if err := sp.fs.Remove(sp.posPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		posErr = fmt.Errorf("remove %s: %w", sp.posPath(), err)
	}
	if posErr != nil {
		errs = append(errs, fmt.Errorf("appender: %w", posErr))
	}
	for _, seg := range sp.mu.retired {
		// Once the position is recorded, the retired segments' records
		// are in the kept segment (or acknowledged); a crash before
		// leaves them to be replayed again.
		if seg.f != nil {
			if err := seg.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("appender: close spill segment %s: %w", seg.path, err))
			}
			seg.f = nil
		}
		if keptAll && posErr == nil && seg.path != keptPath {
			if err := sp.fs.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("appender: remove replayed spill segment %s: %w", seg.path, err))
			}
		}
	}
	sp.mu.retired = nil
	sp.closeFilesLocked(&errs)
	if err := sp.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("appender: release spill lock: %w", err))
	}
	return keptAll, keptBytes, errors.Join(errs...)
}

// writeKept writes kept's frames to the kept segment seq, durably (temp
// file, fsync, rename; close's position write syncs the directory), and
// returns its size.
func (sp *spill) writeKept(seq uint64, kept []*entry) (int64, error) {
	var size int64
	for _, e := range kept {
		size += frameLen(e)
	}
	path := sp.keptPath(seq)
	tmp := path + ".tmp"
	f, err := vfs.Create(sp.fs, tmp)
	if err != nil {
		return 0, fmt.Errorf("appender: create kept segment: %w", err)
	}
	b := make([]byte, 0, min(size, 1<<20))
	for i, e := range kept {
		b = appendFrame(b, e)
		if len(b) >= 1<<20 || i == len(kept)-1 {
			if _, err = f.Write(b); err != nil {
				break
			}
			b = b[:0]
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = sp.fs.Rename(tmp, path)
	}
	if err != nil {
		_ = sp.fs.Remove(tmp)
		return 0, fmt.Errorf("appender: write kept segment %s: %w", path, err)
	}
	return size, nil
}

func (sp *spill) closeFiles() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var errs []error
	sp.closeFilesLocked(&errs)
}

func (sp *spill) closeFilesLocked(errs *[]error) {
	for _, seg := range sp.mu.segs {
		if seg.f == nil {
			continue
		}
		if err := seg.f.Close(); err != nil {
			*errs = append(*errs, fmt.Errorf("appender: close spill segment %s: %w", seg.path, err))
		}
	}
	sp.mu.segs = nil
	sp.mu.w = nil
}
