package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/gregor-log/gregor/broker/record"
)

// appendEmptyBatch appends a batch with h's offsets, producer fields,
// leader epoch and attributes but no records and no compression, as
// Kafka's cleaner writes for a producer's last batch. Both timestamps are
// h's max timestamp. The layout is in docs/format.md.
func appendEmptyBatch(dst []byte, h *record.Header) []byte {
	var b [record.HeaderSize]byte
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(h.BaseOffset))
	be.PutUint32(b[8:], record.HeaderSize-record.LogOverhead)
	be.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = 2 // magic
	be.PutUint16(b[21:], uint16(h.Attributes&^0x07))
	be.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[27:], uint64(h.MaxTimestamp))
	be.PutUint64(b[35:], uint64(h.MaxTimestamp))
	be.PutUint64(b[43:], uint64(h.ProducerID))
	be.PutUint16(b[51:], uint16(h.ProducerEpoch))
	be.PutUint32(b[53:], uint32(h.BaseSequence))
	be.PutUint32(b[57:], 0) // record count
	be.PutUint32(b[17:], crc32.Checksum(b[crcStart:], castagnoli))
	return append(dst, b[:]...)
}

// scanner returns a reader of s's batches in [0, size).
func (c *Cleaner) scanner(ctx context.Context, s *segment, size int64, res *CleanResult) *batchScanner {
	return &batchScanner{c: c, ctx: ctx, s: s, limit: size, res: res}
}

// batchScanner reads a segment's batches in order through the cleaner's
// read buffer, checking each batch's CRC (the cleaner never launders a
// damaged batch into a new one with a valid checksum).
type batchScanner struct {
	c     *Cleaner
	ctx   context.Context
	s     *segment
	pos   int64
	limit int64
	res   *CleanResult

	win      []byte // file bytes [winStart, winStart+len(win))
	winStart int64
}

// next returns the next batch, valid until the following call, or io.EOF.
func (sc *batchScanner) next() (record.Header, []byte, error) {
	if sc.pos >= sc.limit {
		return record.Header{}, nil, io.EOF
	}
	if err := sc.ctx.Err(); err != nil {
		return record.Header{}, nil, fmt.Errorf("%w: %w", ErrCleanAborted, err)
	}
	avail := sc.limit - sc.pos
	hdr, err := sc.window(sc.pos, min(avail, record.HeaderSize))
	if err != nil {
		return record.Header{}, nil, err
	}
	h, err := record.ParseHeader(hdr)
	if err != nil {
		return h, nil, &CorruptionError{Segment: sc.s.path(logSuffix), Pos: sc.pos, Err: err}
	}
	if h.Size() > avail {
		return h, nil, &CorruptionError{Segment: sc.s.path(logSuffix), Pos: sc.pos, Err: fmt.Errorf("batch of %d bytes with %d left: %w", h.Size(), avail, record.ErrShort)}
	}
	var batch []byte
	if h.Size() <= int64(len(sc.c.readBuf)) {
		if batch, err = sc.window(sc.pos, h.Size()); err != nil {
			return h, nil, err
		}
	} else {
		// Larger than the read buffer: read it whole, once.
		batch = make([]byte, h.Size())
		if err := sc.read(batch, sc.pos); err != nil {
			return h, nil, err
		}
	}
	if err := record.CheckCRC(batch, &h); err != nil {
		return h, nil, &CorruptionError{Segment: sc.s.path(logSuffix), Pos: sc.pos, Err: err}
	}
	sc.pos += h.Size()
	return h, batch, nil
}

// window returns file bytes [pos, pos+n), refilling the read buffer from
// pos when they are not in it. What the buffer already holds from pos on
// moves to its front and only the rest is read: a batch straddling the
// buffer's end was read again whole (a first clean read the log three
// times instead of twice).
func (sc *batchScanner) window(pos, n int64) ([]byte, error) {
	if pos < sc.winStart || pos+n > sc.winStart+int64(len(sc.win)) {
		fill := min(int64(len(sc.c.readBuf)), sc.limit-pos)
		var keep int64
		if end := sc.winStart + int64(len(sc.win)); pos >= sc.winStart && pos < end {
			keep = int64(copy(sc.c.readBuf[:fill], sc.win[pos-sc.winStart:]))
		}
		sc.win, sc.winStart = sc.c.readBuf[:fill], pos
		if err := sc.read(sc.win[keep:], pos+keep); err != nil {
			sc.win = nil
			return nil, err
		}
	}
	return sc.win[pos-sc.winStart : pos-sc.winStart+n], nil
}

func (sc *batchScanner) read(p []byte, pos int64) error {
	if err := readFull(sc.s.log, p, pos); err != nil {
		return fmt.Errorf("read %s at %d: %w", sc.s.path(logSuffix), pos, err)
	}
	sc.res.BytesRead += int64(len(p))
	if err := sc.c.throttle.wait(sc.ctx, int64(len(p))); err != nil {
		return fmt.Errorf("%w: %w", ErrCleanAborted, err)
	}
	return nil
}

// cleanWriter writes a cleaned segment through the cleaner's write
// buffer and builds its index in memory.
type cleanWriter struct {
	c        *Cleaner
	ctx      context.Context
	f        io.Writer
	seg      *segment
	interval int32
	res      *CleanResult
	pos      int64 // bytes written or buffered
}

func (w *cleanWriter) write(batch []byte, h *record.Header) error {
	if w.pos+int64(len(batch)) > maxSegmentFileSize {
		return fmt.Errorf("cleaned segment %d would exceed %d bytes", w.seg.base, int64(maxSegmentFileSize))
	}
	w.seg.addBatchLocked(h, w.pos, w.interval)
	w.pos += int64(len(batch))
	if len(w.c.writeBuf)+len(batch) > cap(w.c.writeBuf) {
		if err := w.flush(); err != nil {
			return err
		}
		if len(batch) > cap(w.c.writeBuf) {
			return w.out(batch)
		}
	}
	w.c.writeBuf = append(w.c.writeBuf, batch...)
	return nil
}

func (w *cleanWriter) flush() error {
	if len(w.c.writeBuf) == 0 {
		return nil
	}
	err := w.out(w.c.writeBuf)
	w.c.writeBuf = w.c.writeBuf[:0]
	return err
}

func (w *cleanWriter) out(p []byte) error {
	if n, err := w.f.Write(p); err != nil || n != len(p) {
		if err == nil {
			err = io.ErrShortWrite
		}
		return fmt.Errorf("write cleaned segment %d: %w", w.seg.base, err)
	}
	w.res.BytesWritten += int64(len(p))
	if err := w.c.throttle.wait(w.ctx, int64(len(p))); err != nil {
		return fmt.Errorf("%w: %w", ErrCleanAborted, err)
	}
	return nil
}
