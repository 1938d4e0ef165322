package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// line is one line (or, after multiline joining, one record) read from a
// file.
type line struct {
	// data is the content without its "\n" or "\r\n". It aliases a read
	// buffer that is never reused, so it may be handed to the producer as
	// is. For a truncated line it holds the first max bytes.
	data []byte
	// start is the file offset of the line's first byte.
	start int64
	// end is the file offset just past the line's newline: once every line
	// up to this one is acknowledged, the checkpoint may move to end. For
	// a line truncated before its newline was read, end == start, and a
	// marker carries the true end later.
	end int64
	// truncated is set when the line was longer than the maximum.
	truncated bool
	// marker is set for the entry that only reports where an over-long
	// line ended; it carries no data and produces no record.
	marker bool
}

// lineReader splits a file into lines, reading it through ReadAt from a
// position that only moves forward. Lines longer than max are cut to max
// bytes and the rest is skipped without being held in memory, however long
// it is. A last line without a newline stays pending until its newline
// arrives (or until flushPartial is called for a file that is finished).
// Not safe for concurrent use.
type lineReader struct {
	r        io.ReaderAt
	off      int64  // file offset of the next byte to read
	carry    []byte // bytes of an incomplete line, from file offset off-len(carry)
	max      int
	chunk    int  // bytes to read at once
	skipping bool // discarding the rest of an over-long line
}

// newLineReader reads r from offset off.
func newLineReader(r io.ReaderAt, off int64, max, chunk int) *lineReader {
	return &lineReader{r: r, off: off, max: max, chunk: chunk}
}

// consumed is the file offset up to which every byte belongs to a line
// already returned: where reading would restart after a restart.
func (lr *lineReader) consumed() int64 { return lr.off - int64(len(lr.carry)) }

// pending reports whether an incomplete line is held.
func (lr *lineReader) pending() bool { return len(lr.carry) > 0 || lr.skipping }

// reset repositions the reader at off, dropping any incomplete line.
func (lr *lineReader) reset(off int64) {
	lr.off, lr.carry, lr.skipping = off, nil, false
}

// read reads at most one chunk of the avail bytes that are in the file past
// the read position and appends the complete lines found to out. It
// returns the new lines and how many bytes it read (0 at the end of the
// file).
func (lr *lineReader) read(avail int64, out []line) ([]line, int, error) {
	if avail <= 0 {
		return out, 0, nil
	}
	n := int64(lr.chunk)
	if avail < n {
		n = avail
	}
	// The carry is copied into the new buffer so that every line is one
	// contiguous slice; the old buffer stays alive only as long as the
	// records that alias it.
	buf := make([]byte, len(lr.carry)+int(n))
	copy(buf, lr.carry)
	base := lr.off - int64(len(lr.carry))
	got, err := lr.r.ReadAt(buf[len(lr.carry):], lr.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return out, 0, fmt.Errorf("read at %d: %w", lr.off, err)
	}
	buf = buf[:len(lr.carry)+got]
	lr.off += int64(got)
	lr.carry = nil

	pos := 0
	if lr.skipping {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return out, got, nil // still inside the over-long line
		}
		lr.skipping = false
		pos = i + 1
		out = append(out, line{start: base + int64(pos), end: base + int64(pos), marker: true})
	}
	for pos < len(buf) {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			break
		}
		data := buf[pos : pos+i]
		if len(data) > 0 && data[len(data)-1] == '\r' {
			data = data[:len(data)-1]
		}
		l := line{data: data, start: base + int64(pos), end: base + int64(pos+i+1)}
		if len(data) > lr.max {
			l.data, l.truncated = data[:lr.max], true
		}
		out = append(out, l)
		pos += i + 1
	}
	rest := buf[pos:]
	switch {
	case len(rest) > lr.max:
		// An over-long line without its newline yet: ship its head now
		// (with no checkpoint progress) and skip the rest as it comes.
		start := base + int64(pos)
		out = append(out, line{data: rest[:lr.max], start: start, end: start, truncated: true})
		lr.skipping = true
	case len(rest) > 0:
		lr.carry = rest
	}
	return out, got, nil
}

// flushPartial returns the incomplete last line, if any, as a line that
// ends at the current read position; used when a file is finished.
func (lr *lineReader) flushPartial() (line, bool) {
	if lr.skipping {
		lr.skipping = false
		return line{start: lr.off, end: lr.off, marker: true}, true
	}
	if len(lr.carry) == 0 {
		return line{}, false
	}
	l := line{data: lr.carry, start: lr.consumed(), end: lr.off}
	if n := len(l.data); n > 0 && l.data[n-1] == '\r' {
		l.data = l.data[:n-1]
	}
	lr.carry = nil
	return l, true
}
