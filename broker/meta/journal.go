package meta

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A journal file is a sequence of entries, each (see docs/format.md):
//
//	offset size field
//	     0    4 length uint32, big endian: bytes in the body, 1..maxEntryBody
//	     4    4 crc uint32, big endian: CRC-32C (Castagnoli) of the body
//	     8    … body: one change, a JSON object (an entry)
//
// The CRC covers the body only; a damaged length shows as a body whose CRC
// does not match, or as one that runs past the end of the file.
const (
	entryHeaderSize = 8
	maxEntryBody    = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameEntry returns body with its entry header in front.
func frameEntry(body []byte) []byte {
	buf := make([]byte, entryHeaderSize+len(body))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(body, castagnoli))
	copy(buf[entryHeaderSize:], body)
	return buf
}

// entryAt returns the body of the entry at off in data, or, if there is no
// valid entry there, what is wrong with it.
func entryAt(data []byte, off int) (body []byte, problem string) {
	rest := data[off:]
	if len(rest) < entryHeaderSize {
		return nil, fmt.Sprintf("incomplete header (%d of %d bytes)", len(rest), entryHeaderSize)
	}
	n := binary.BigEndian.Uint32(rest[0:4])
	switch {
	case n == 0:
		return nil, "zero length"
	case n > maxEntryBody:
		return nil, fmt.Sprintf("length %d over the limit of %d", n, maxEntryBody)
	case int64(n) > int64(len(rest)-entryHeaderSize):
		return nil, fmt.Sprintf("length %d runs past the end of the file (%d bytes left)", n, len(rest)-entryHeaderSize)
	}
	body = rest[entryHeaderSize : entryHeaderSize+int(n)]
	// Bodies are JSON objects; testing the first byte spares most CRCs when
	// scanning damaged bytes for a later entry.
	if body[0] != '{' {
		return nil, "body is not a JSON object"
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(rest[4:8]) {
		return nil, "checksum mismatch"
	}
	return body, ""
}

// rawEntry is a whole entry found by scanJournal.
type rawEntry struct {
	off  int64 // where its header starts
	body []byte
}

// scanJournal splits a journal's content into its whole entries. end is
// where the last of them ends. Bytes after end, if any, are a torn tail: the
// last append, cut short by a crash before it was synced and so never
// acknowledged; tail says what they look like. If some offset after end
// starts a valid entry, the bad bytes are not a tail but damage with
// acknowledged entries after it, and scanJournal returns a
// *CorruptionError instead.
func scanJournal(path string, data []byte) (entries []rawEntry, end int64, tail string, err error) {
	off := 0
	for off < len(data) {
		body, problem := entryAt(data, off)
		if problem == "" {
			entries = append(entries, rawEntry{off: int64(off), body: body})
			off += entryHeaderSize + len(body)
			continue
		}
		for later := off + 1; later+entryHeaderSize < len(data); later++ {
			if _, p := entryAt(data, later); p == "" {
				return nil, 0, "", &CorruptionError{
					Path:   path,
					Offset: int64(off),
					Err:    fmt.Errorf("bad entry (%s) followed by a valid entry at byte %d", problem, later),
				}
			}
		}
		if allZero(data[off:]) {
			problem = "zeros"
		}
		return entries, int64(off), problem, nil
	}
	return entries, int64(off), "", nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// CorruptionError is a metadata journal that cannot be replayed: a damaged
// entry with a valid one after it (so not a torn last append), or an entry
// that does not apply to the state the entries before it leave. Every entry
// in a journal was acknowledged, so none is skipped: the store refuses to
// open.
type CorruptionError struct {
	Path   string // the journal file
	Offset int64  // the byte offset of the entry's header
	Err    error  // what is wrong with the entry
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("metadata journal %s is corrupt at byte %d: %v; "+
		"the entries from there on were acknowledged and are not skipped: restore %s together with the data dir's %s from a backup, "+
		"or truncate %s to %d bytes to open without them (the changes they hold are lost)",
		e.Path, e.Offset, e.Err, e.Path, StandaloneFile, e.Path, e.Offset)
}

// Unwrap returns what is wrong with the entry.
func (e *CorruptionError) Unwrap() error { return e.Err }
