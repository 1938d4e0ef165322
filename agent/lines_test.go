package agent

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// readAll drives a lineReader over a file whose size is size until no
// bytes remain, the way a tailer does.
func readAll(t *testing.T, lr *lineReader, size int64) []line {
	t.Helper()
	var out []line
	for {
		var n int
		var err error
		out, n, err = lr.read(size-lr.off, out)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

func TestLineReaderSplits(t *testing.T) {
	data := "a\r\nbb\n\nccc\npartial"
	for _, chunk := range []int{1, 2, 3, 5, 64} {
		lr := newLineReader(strings.NewReader(data), 0, 100, chunk)
		got := readAll(t, lr, int64(len(data)))
		want := []line{
			{data: []byte("a"), start: 0, end: 3},
			{data: []byte("bb"), start: 3, end: 6},
			{data: []byte(""), start: 6, end: 7},
			{data: []byte("ccc"), start: 7, end: 11},
		}
		if !equalLines(got, want) {
			t.Fatalf("chunk %d: got %s", chunk, fmtLines(got))
		}
		if lr.consumed() != 11 || !lr.pending() {
			t.Fatalf("chunk %d: consumed %d pending %v", chunk, lr.consumed(), lr.pending())
		}
		// The partial line is held until its newline arrives...
		data2 := data + " line\n"
		lr.r = strings.NewReader(data2)
		got = readAll(t, lr, int64(len(data2)))
		if !equalLines(got, []line{{data: []byte("partial line"), start: 11, end: int64(len(data2))}}) {
			t.Fatalf("chunk %d: completed partial: %s", chunk, fmtLines(got))
		}
	}
	// ...or until the file is finished.
	lr := newLineReader(strings.NewReader("x\ny"), 0, 100, 64)
	readAll(t, lr, 3)
	l, ok := lr.flushPartial()
	if !ok || string(l.data) != "y" || l.start != 2 || l.end != 3 {
		t.Fatalf("flushPartial: %+v %v", l, ok)
	}
}

func TestLineReaderTruncatesLongLines(t *testing.T) {
	data := "short\n" + strings.Repeat("x", 50) + "\nnext\n" + strings.Repeat("y", 30)
	for _, chunk := range []int{4, 7, 16, 1000} {
		lr := newLineReader(strings.NewReader(data), 0, 10, chunk)
		got := readAll(t, lr, int64(len(data)))
		var kept []string
		for _, l := range got {
			if !l.marker {
				kept = append(kept, fmt.Sprintf("%s/%v", l.data, l.truncated))
			}
		}
		want := []string{"short/false", "xxxxxxxxxx/true", "next/false", "yyyyyyyyyy/true"}
		if strings.Join(kept, ",") != strings.Join(want, ",") {
			t.Fatalf("chunk %d: got %v", chunk, kept)
		}
		// The checkpoint may pass the long line only once its end is known.
		var lastEnd int64
		for _, l := range got {
			if l.end > lastEnd {
				lastEnd = l.end
			}
		}
		if want := int64(6 + 51 + 5); lastEnd != want {
			t.Fatalf("chunk %d: last end %d, want %d (%s)", chunk, lastEnd, want, fmtLines(got))
		}
	}
}

// endlessLine is a ReaderAt of n 'z' bytes, then "\nafter\n", generated
// on the fly so that a 100 MB line costs no memory in the test either.
type endlessLine struct{ n int64 }

func (e endlessLine) size() int64 { return e.n + 7 }

func (e endlessLine) ReadAt(p []byte, off int64) (int, error) {
	tail := []byte("\nafter\n")
	i := 0
	for ; i < len(p) && off+int64(i) < e.size(); i++ {
		o := off + int64(i)
		if o < e.n {
			p[i] = 'z'
		} else {
			p[i] = tail[o-e.n]
		}
	}
	if i < len(p) {
		return i, io.EOF
	}
	return i, nil
}

func TestLineReaderHundredMegabyteLine(t *testing.T) {
	src := endlessLine{n: 100 << 20}
	const max = 64 << 10
	lr := newLineReader(src, 0, max, 256<<10)
	var got []line
	for {
		var n int
		var err error
		before := len(got)
		got, n, err = lr.read(src.size()-lr.off, got)
		if err != nil {
			t.Fatal(err)
		}
		if len(lr.carry) > max {
			t.Fatalf("held %d bytes of an over-long line", len(lr.carry))
		}
		// Only line heads are kept, never the whole read.
		for _, l := range got[before:] {
			if len(l.data) > max {
				t.Fatalf("line of %d bytes", len(l.data))
			}
		}
		if n == 0 {
			break
		}
	}
	if len(got) != 3 || !got[0].truncated || len(got[0].data) != max || !got[1].marker ||
		got[1].end != src.n+1 || string(got[2].data) != "after" {
		t.Fatalf("got %s", fmtLines(got))
	}
}

func TestMultilineStart(t *testing.T) {
	m := &multiline{start: mustRE(`^\d`), maxLines: 3, maxBytes: 1000, flushTimeout: time.Second}
	now := time.Now()
	var out []line
	off := int64(0)
	for _, s := range []string{"1 a", " at x", " at y", "2 b", "3 c", " at 1", " at 2", " at 3", " at 4"} {
		out = m.add(line{data: []byte(s), start: off, end: off + int64(len(s)) + 1}, now, out)
		off += int64(len(s)) + 1
	}
	out = m.flush(out)
	var got []string
	for _, l := range out {
		got = append(got, string(l.data))
	}
	want := []string{"1 a\n at x\n at y", "2 b", "3 c\n at 1\n at 2", " at 3\n at 4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	if out[0].start != 0 || out[0].end != out[1].start || out[len(out)-1].end != off {
		t.Fatalf("offsets: %s", fmtLines(out))
	}
	if !m.deadline().IsZero() {
		t.Fatal("deadline with nothing pending")
	}
}

func TestMultilineContinuationAndMarker(t *testing.T) {
	m := &multiline{continuation: mustRE(`^\s`), maxLines: 100, maxBytes: 12, flushTimeout: time.Second}
	now := time.Now()
	var out []line
	out = m.add(line{data: []byte("head"), start: 0, end: 5}, now, out)
	out = m.add(line{data: []byte(" more"), start: 5, end: 11}, now, out)
	// The head of an over-long line, then its marker once its end is found.
	out = m.add(line{data: []byte(" long"), start: 11, end: 11, truncated: true}, now, out)
	out = m.add(line{start: 500, end: 500, marker: true}, now, out)
	if len(out) != 1 || string(out[0].data) != "head\n more" {
		t.Fatalf("byte cap did not split: %s", fmtLines(out))
	}
	if d := m.deadline(); !d.Equal(now.Add(time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	out = m.flush(out[:0])
	if len(out) != 1 || string(out[0].data) != " long" || !out[0].truncated || out[0].end != 500 {
		t.Fatalf("flushed: %s", fmtLines(out))
	}
	// A marker with nothing pending passes through.
	out = m.add(line{start: 600, end: 600, marker: true}, now, out[:0])
	if len(out) != 1 || !out[0].marker {
		t.Fatalf("marker: %s", fmtLines(out))
	}
}

func equalLines(a, b []line) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].data, b[i].data) || a[i].start != b[i].start || a[i].end != b[i].end ||
			a[i].truncated != b[i].truncated || a[i].marker != b[i].marker {
			return false
		}
	}
	return true
}

func fmtLines(ls []line) string {
	var b strings.Builder
	for _, l := range ls {
		d := l.data
		if len(d) > 20 {
			d = d[:20]
		}
		fmt.Fprintf(&b, "[%q %d-%d t=%v m=%v] ", d, l.start, l.end, l.truncated, l.marker)
	}
	return b.String()
}
