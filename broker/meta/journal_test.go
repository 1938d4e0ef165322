package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// journalSetup makes every change in changes on a new store and closes
// it. It returns the file system, the journal's content, its entries and
// the store's dumps before the first change and after each.
func journalSetup(t *testing.T) (*vfs.MemFS, []byte, []rawEntry, []string) {
	t.Helper()
	mem := vfs.NewCrashable()
	// A fixed cluster id, so every setup dumps the same.
	writeDurable(t, mem, snapshotPath, []byte(`{"version":1,"cluster_id":"test","broker_id":1,"topics":[]}`))
	s := openStore(t, mem)
	states := makeChanges(t, s)
	closeStore(t, s)
	data, err := vfs.ReadFile(mem, journal1)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := journalEntries(t, mem, journal1)
	return mem, data, entries, states
}

func rewrite(t *testing.T, mem *vfs.MemFS, path string, data []byte) {
	t.Helper()
	f, err := vfs.Create(mem, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func flip(data []byte, at int64) []byte {
	out := bytes.Clone(data)
	out[at] ^= 0x10
	return out
}

// TestTornTailRecovered: damage confined to the last entry (or after it)
// is a torn append, never acknowledged: open drops it, says so, and holds
// every change before it; the file is cut only at the next change (until
// then every open says so again), and later changes append cleanly.
func TestTornTailRecovered(t *testing.T) {
	_, data, entries, states := journalSetup(t)
	last := entries[len(entries)-1].off
	lastBody := last + entryHeaderSize
	size := int64(len(data))
	setLen := func(n uint32) []byte {
		out := bytes.Clone(data)
		binary.BigEndian.PutUint32(out[last:], n)
		return out
	}
	for _, tc := range []struct {
		name    string
		journal []byte
		keep    int // whole entries left
	}{
		{"cut mid-header", data[:last+3], len(entries) - 1},
		{"cut after header", data[:lastBody], len(entries) - 1},
		{"cut mid-body", data[:lastBody+5], len(entries) - 1},
		{"cut one byte short", data[:size-1], len(entries) - 1},
		{"flipped body byte", flip(data, size-2), len(entries) - 1},
		{"flipped crc byte", flip(data, last+5), len(entries) - 1},
		{"length too long", setLen(uint32(size-lastBody) + 1), len(entries) - 1},
		{"length too short", setLen(uint32(size-lastBody) - 3), len(entries) - 1},
		{"length zero", setLen(0), len(entries) - 1},
		{"header zeroed", append(bytes.Clone(data[:last]), make([]byte, size-last)...), len(entries) - 1},
		{"trailing zeros", append(bytes.Clone(data), make([]byte, 4096)...), len(entries)},
		{"trailing partial header", append(bytes.Clone(data), 0, 0), len(entries)},
		{"trailing garbage", append(bytes.Clone(data), "garbage, not an entry"...), len(entries)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, _, _, _ := journalSetup(t)
			rewrite(t, mem, journal1, tc.journal)
			s := openStore(t, mem)
			if got, want := dump(s), states[tc.keep]; got != want {
				t.Fatalf("recovered to\n %s\nwant\n %s", got, want)
			}
			end := int64(len(data))
			if tc.keep < len(entries) {
				end = last
			}
			rec := s.Recovered()
			if !strings.Contains(rec, journal1) || !strings.Contains(rec, fmt.Sprintf("from byte %d", end)) {
				t.Fatalf("Recovered() = %q, want the file and byte %d", rec, end)
			}
			if got := fileSize(t, mem, journal1); got != int64(len(tc.journal)) {
				t.Fatalf("journal is %d bytes after open, want it untouched (%d)", got, len(tc.journal))
			}
			closeStore(t, s)
			s = openStore(t, mem)
			if again := s.Recovered(); again != rec {
				t.Fatalf("second open without a change: Recovered() = %q, want %q", again, rec)
			}
			// An append after the truncation follows a whole entry; a
			// crash (the truncation was synced) and reopen keep it.
			if err := s.CreateTopic(topic("after", 2)); err != nil {
				t.Fatal(err)
			}
			want := dump(s)
			mem.Crash()
			s = openStore(t, mem)
			defer closeStore(t, s)
			if got := dump(s); got != want {
				t.Fatalf("after a change and reopen:\n got %s\nwant %s", got, want)
			}
			if s.Recovered() != "" {
				t.Fatalf("second open repaired again: %s", s.Recovered())
			}
		})
	}
}

// TestCorruptEntryRefused: a damaged entry with a valid one after it is
// not a torn tail: open refuses, naming the file and offset, and leaves
// the journal as it was.
func TestCorruptEntryRefused(t *testing.T) {
	_, data, entries, _ := journalSetup(t)
	second := entries[1].off
	for _, tc := range []struct {
		name    string
		journal []byte
		at      int64
	}{
		{"flipped body byte in the first entry", flip(data, entryHeaderSize+3), 0},
		{"flipped crc in a middle entry", flip(data, second+4), second},
		{"length byte flipped in a middle entry", flip(data, second+2), second},
		{"zeros over a middle entry", func() []byte {
			out := bytes.Clone(data)
			copy(out[second:entries[2].off], make([]byte, entries[2].off-second))
			return out
		}(), second},
		{"garbage between entries", append(append(bytes.Clone(data[:second]), "junk"...), data[second:]...), second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, _, _, _ := journalSetup(t)
			rewrite(t, mem, journal1, tc.journal)
			_, err := OpenStandalone(mem, testDir, testSelf)
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("open: %v, want a CorruptionError", err)
			}
			if ce.Path != journal1 || ce.Offset != tc.at {
				t.Fatalf("corruption reported in %s at %d, want %s at %d", ce.Path, ce.Offset, journal1, tc.at)
			}
			msg := err.Error()
			for _, want := range []string{journal1, fmt.Sprintf("byte %d", tc.at), "restore", fmt.Sprintf("truncate %s to %d bytes", journal1, tc.at)} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			after, err := vfs.ReadFile(mem, journal1)
			if err != nil || !bytes.Equal(after, tc.journal) {
				t.Fatalf("refused open changed the journal (%v)", err)
			}
		})
	}
}

// TestInapplicableEntryRefused: whole entries that do not apply to the
// state before them are corruption too, even as the last entry.
func TestInapplicableEntryRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want error
	}{
		{"create existing", `{"op":"create_topics","topics":[{"name":"a","id":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"partitions":1}]}`, ErrTopicExists},
		{"delete missing", `{"op":"delete_topics","names":["zz"]}`, ErrUnknownTopic},
		{"shrink", `{"op":"set_partitions","name":"b","partitions":1}`, ErrInvalidPartitions},
		{"configs of missing", `{"op":"set_configs","name":"zz","configs":{"a":"b"}}`, ErrUnknownTopic},
		{"producer limit back", `{"op":"producer_id_limit","limit":5}`, nil},
		{"unknown op", `{"op":"rename_topic","name":"a"}`, nil},
		{"not an entry", `{"op":`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, data, _, _ := journalSetup(t)
			rewrite(t, mem, journal1, append(bytes.Clone(data), frameEntry([]byte(tc.body))...))
			_, err := OpenStandalone(mem, testDir, testSelf)
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset != int64(len(data)) {
				t.Fatalf("open: %v, want a CorruptionError at %d", err, len(data))
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("open: %v, want it to wrap %v", err, tc.want)
			}
		})
	}
}

// TestEntryFormat pins the entry layout docs/format.md describes.
func TestEntryFormat(t *testing.T) {
	body := []byte(`{"op":"delete_topics","names":["a"]}`)
	got := frameEntry(body)
	want := append([]byte{0, 0, 0, byte(len(body)), 0x00, 0x00, 0x00, 0x00}, body...)
	// CRC-32C of the body, checked against the standard library's.
	binary.BigEndian.PutUint32(want[4:], crc32c(body))
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n got %x\nwant %x", got, want)
	}
	var e entry
	if err := json.Unmarshal(body, &e); err != nil || e.Op != opDeleteTopics {
		t.Fatalf("%+v, %v", e, err)
	}
}

// crc32c is CRC-32C computed bit by bit, independent of hash/crc32.
func crc32c(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82f63b78
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// FuzzScanJournal: scanning never panics, and what it accepts is whole,
// checksummed entries followed by bytes that hold no valid entry.
func FuzzScanJournal(f *testing.F) {
	a := frameEntry([]byte(`{"op":"delete_topics","names":["a"]}`))
	b := frameEntry([]byte(`{"op":"producer_id_limit","limit":1000}`))
	f.Add([]byte{})
	f.Add(a)
	f.Add(append(bytes.Clone(a), b...))
	f.Add(append(bytes.Clone(a), b[:5]...))
	f.Add(append(bytes.Clone(a), make([]byte, 64)...))
	f.Add(append(flip(a, 10), b...))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, end, tail, err := scanJournal("j", data)
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset >= int64(len(data)) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if end > int64(len(data)) || (end < int64(len(data))) != (tail != "") {
			t.Fatalf("end %d of %d, tail %q", end, len(data), tail)
		}
		pos := int64(0)
		for _, e := range entries {
			if e.off != pos {
				t.Fatalf("entry at %d, want %d", e.off, pos)
			}
			if body, problem := entryAt(data, int(e.off)); problem != "" || !bytes.Equal(body, e.body) {
				t.Fatalf("accepted a bad entry at %d: %s", e.off, problem)
			}
			pos += entryHeaderSize + int64(len(e.body))
		}
		if pos != end {
			t.Fatalf("entries end at %d, scan says %d", pos, end)
		}
	})
}
