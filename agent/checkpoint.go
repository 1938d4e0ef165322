package agent

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/gregor-log/gregor/internal/vfs"
)

// The checkpoint file (DATA-DIR/checkpoint) records, for every file the
// agent knows, how far the broker has acknowledged it. Format, text:
//
//	gregor-agent-checkpoint 1\n
//	CRC SP JSON \n        one line per file
//
// where CRC is the CRC-32C (Castagnoli) of the JSON bytes as 8 lowercase
// hex digits and JSON is one checkpointEntry. Each entry stands alone, so a
// damaged line loses only its own file: that file is then read again from
// its beginning (never from its end), and the damage is logged. The file is
// replaced atomically (temp file, fsync, rename, fsync of the directory).
const (
	checkpointName   = "checkpoint"
	checkpointHeader = "gregor-agent-checkpoint 1"
	lockName         = "LOCK"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Entry states in the checkpoint file.
const (
	entryBound  = "bound"  // dev/ino hold the file
	entryOrphan = "orphan" // the inode no longer holds it (truncated); matched by fingerprint only
)

// checkpointEntry is one file's line in the checkpoint.
type checkpointEntry struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FPLen  int    `json:"fp_len"`
	FP     string `json:"fp"` // hex SHA-256 of the first fp_len bytes
	Offset int64  `json:"offset"`
	State  string `json:"state"`
	Seen   int64  `json:"seen"` // unix ms of the last scan that found it
}

// ErrCorruptCheckpoint marks damage in a checkpoint file.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// CheckpointError describes damage found while reading a checkpoint file.
type CheckpointError struct {
	Path string
	Line int // 1-based line number; 0 for the file as a whole
	Msg  string
}

func (e *CheckpointError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
}

// Unwrap makes errors.Is(err, ErrCorruptCheckpoint) true.
func (e *CheckpointError) Unwrap() error { return ErrCorruptCheckpoint }

// encodeCheckpoint renders entries (sorted by path, then inode) in the
// checkpoint format.
func encodeCheckpoint(entries []checkpointEntry) []byte {
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Path != entries[j].Path {
			return entries[i].Path < entries[j].Path
		}
		return entries[i].Ino < entries[j].Ino
	})
	var b bytes.Buffer
	b.WriteString(checkpointHeader)
	b.WriteByte('\n')
	for _, e := range entries {
		js, _ := json.Marshal(e) // cannot fail: plain fields
		fmt.Fprintf(&b, "%08x ", crc32.Checksum(js, crcTable))
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// decodeCheckpoint parses a checkpoint file. It returns every entry that
// is intact and one *CheckpointError per damaged part; damage never stops
// it from returning the intact entries.
func decodeCheckpoint(name string, data []byte) ([]checkpointEntry, []error) {
	var entries []checkpointEntry
	var errs []error
	lines := bytes.Split(data, []byte{'\n'})
	if len(lines) == 0 || string(lines[0]) != checkpointHeader {
		errs = append(errs, &CheckpointError{Path: name, Line: 1, Msg: "missing header " + strconv.Quote(checkpointHeader)})
		// Still try the rest: a damaged header need not cost every entry.
	} else {
		lines = lines[1:]
	}
	first := len(errs) == 0
	for i, l := range lines {
		lineNo := i + 1
		if first {
			lineNo = i + 2
		}
		if len(l) == 0 {
			if i != len(lines)-1 {
				errs = append(errs, &CheckpointError{Path: name, Line: lineNo, Msg: "empty line"})
			}
			continue
		}
		if len(l) < 10 || l[8] != ' ' {
			errs = append(errs, &CheckpointError{Path: name, Line: lineNo, Msg: "malformed entry"})
			continue
		}
		want, err := strconv.ParseUint(string(l[:8]), 16, 32)
		js := l[9:]
		if err != nil || uint32(want) != crc32.Checksum(js, crcTable) {
			errs = append(errs, &CheckpointError{Path: name, Line: lineNo, Msg: "checksum mismatch"})
			continue
		}
		var e checkpointEntry
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			errs = append(errs, &CheckpointError{Path: name, Line: lineNo, Msg: "bad entry: " + err.Error()})
			continue
		}
		if msg := e.check(); msg != "" {
			errs = append(errs, &CheckpointError{Path: name, Line: lineNo, Msg: msg})
			continue
		}
		entries = append(entries, e)
	}
	return entries, errs
}

// check returns what is wrong with an entry that decoded, or "".
func (e *checkpointEntry) check() string {
	switch {
	case e.State != entryBound && e.State != entryOrphan:
		return fmt.Sprintf("bad state %q", e.State)
	case e.Offset < 0:
		return fmt.Sprintf("negative offset %d", e.Offset)
	case e.FPLen < 0 || e.FPLen > fingerprintBytes:
		return fmt.Sprintf("bad fp_len %d", e.FPLen)
	}
	if _, err := e.fingerprint(); err != nil {
		return err.Error()
	}
	return ""
}

// fingerprint decodes the entry's fingerprint.
func (e *checkpointEntry) fingerprint() (fingerprint, error) {
	fp := fingerprint{n: e.FPLen}
	if e.FPLen == 0 && e.FP == "" {
		return fp, nil
	}
	sum, err := hex.DecodeString(e.FP)
	if err != nil || len(sum) != len(fp.sum) {
		return fp, fmt.Errorf("bad fp %q", e.FP)
	}
	copy(fp.sum[:], sum)
	return fp, nil
}

// readCheckpoint loads DATA-DIR/checkpoint. A missing file is an empty
// checkpoint. A damaged file is kept beside it as checkpoint.corrupt for
// inspection; the intact entries and the damage are returned.
func readCheckpoint(fs vfs.FS, dir string) ([]checkpointEntry, []error, error) {
	path := filepath.Join(dir, checkpointName)
	data, err := vfs.ReadFile(fs, path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	entries, damage := decodeCheckpoint(path, data)
	if len(damage) > 0 {
		if err := vfs.WriteFileAtomic(fs, path+".corrupt", data); err != nil {
			damage = append(damage, fmt.Errorf("keep a copy of the damaged checkpoint: %w", err))
		}
	}
	return entries, damage, nil
}

// writeCheckpoint replaces DATA-DIR/checkpoint atomically.
func writeCheckpoint(fs vfs.FS, dir string, data []byte) error {
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, checkpointName), data)
}
