package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gregor-log/gregor/internal/vfs"
)

// Checkpoint files (recovery-point, log-start-offset, clean-shutdown,
// leader-epoch-checkpoint and producer snapshots) share one frame, see
// docs/format.md:
//
//	0  magic    [4]byte  names the file kind
//	4  version  uint16   1
//	6  crc      uint32   CRC-32C (Castagnoli) of bytes 10..end
//	10 payload
//
// They are always replaced with vfs.WriteFileAtomic, so a crash leaves the
// old or the new content; the CRC catches media corruption and stray edits.
const (
	checkpointVersion    = 1
	checkpointHeaderSize = 10

	recoveryPointFile  = "recovery-point"
	logStartOffsetFile = "log-start-offset"
	cleanShutdownFile  = "clean-shutdown"
	epochCheckpoint    = "leader-epoch-checkpoint"
)

// File kinds, the first four bytes of each checkpoint file.
var (
	magicRecoveryPoint = [4]byte{'G', 'R', 'R', 'P'}
	magicLogStart      = [4]byte{'G', 'R', 'L', 'S'}
	magicCleanShutdown = [4]byte{'G', 'R', 'C', 'S'}
	magicEpochs        = [4]byte{'G', 'R', 'L', 'E'}
	magicProducers     = [4]byte{'G', 'R', 'P', 'S'}
)

// ErrCorruptCheckpoint means a checkpoint file failed its magic, version,
// CRC or length checks. Recovery treats such a file as missing.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameCheckpoint returns the file content for payload.
func frameCheckpoint(magic [4]byte, payload []byte) []byte {
	b := make([]byte, checkpointHeaderSize+len(payload))
	copy(b, magic[:])
	binary.BigEndian.PutUint16(b[4:], checkpointVersion)
	copy(b[checkpointHeaderSize:], payload)
	binary.BigEndian.PutUint32(b[6:], crc32.Checksum(b[checkpointHeaderSize:], castagnoli))
	return b
}

// unframeCheckpoint checks the frame and returns the payload.
func unframeCheckpoint(magic [4]byte, b []byte) ([]byte, error) {
	if len(b) < checkpointHeaderSize {
		return nil, fmt.Errorf("%d bytes, need %d: %w", len(b), checkpointHeaderSize, ErrCorruptCheckpoint)
	}
	if [4]byte(b[:4]) != magic {
		return nil, fmt.Errorf("magic %q, want %q: %w", b[:4], magic[:], ErrCorruptCheckpoint)
	}
	if v := binary.BigEndian.Uint16(b[4:]); v != checkpointVersion {
		return nil, fmt.Errorf("version %d, want %d: %w", v, checkpointVersion, ErrCorruptCheckpoint)
	}
	payload := b[checkpointHeaderSize:]
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(b[6:]); got != want {
		return nil, fmt.Errorf("crc %08x, header says %08x: %w", got, want, ErrCorruptCheckpoint)
	}
	return payload, nil
}

// readCheckpoint reads and unframes a checkpoint file. A missing file is
// (nil, nil).
func readCheckpoint(fsys vfs.FS, path string, magic [4]byte) ([]byte, error) {
	b, err := vfs.ReadFile(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &checkpointReadError{fmt.Errorf("read checkpoint %s: %w", path, err)}
	}
	payload, err := unframeCheckpoint(magic, b)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return payload, nil
}

// checkpointReadError is a checkpoint that could not be read at all (out
// of file descriptors, an I/O error), as opposed to one whose content is
// bad: nothing is known of what it holds, not even whether it exists, so
// Open must not go on as if it were absent.
type checkpointReadError struct{ err error }

func (e *checkpointReadError) Error() string { return e.err.Error() }
func (e *checkpointReadError) Unwrap() error { return e.err }

// unreadable reports whether err is a checkpointReadError.
func unreadable(err error) bool {
	var re *checkpointReadError
	return errors.As(err, &re)
}

// writeMarker writes a checkpoint frame to path in place, without the
// fsyncs and rename of writeCheckpoint: for the clean-shutdown marker,
// which only changes a log message at the next open. A crash can leave it
// torn, and a torn one is logged and taken as absent; thousands of
// partitions' markers written durably made a clean shutdown seconds
// longer.
func writeMarker(fsys vfs.FS, path string, magic [4]byte, payload []byte) error {
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(frameCheckpoint(magic, payload)); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

func writeCheckpoint(fsys vfs.FS, path string, magic [4]byte, payload []byte) error {
	if err := vfs.WriteFileAtomic(fsys, path, frameCheckpoint(magic, payload)); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// recoveryPoint is the content of the recovery-point file: every byte of
// the log below Offset (the segment based at SegmentBase, up to Position)
// had been fsynced, together with the indexes of the segments below it.
type recoveryPoint struct {
	Offset      int64
	SegmentBase int64
	Position    int64
}

func (rp recoveryPoint) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:], uint64(rp.Offset))
	binary.BigEndian.PutUint64(b[8:], uint64(rp.SegmentBase))
	binary.BigEndian.PutUint64(b[16:], uint64(rp.Position))
	return b
}

func decodeRecoveryPoint(p []byte) (recoveryPoint, error) {
	if len(p) != 24 {
		return recoveryPoint{}, fmt.Errorf("recovery point payload of %d bytes, want 24: %w", len(p), ErrCorruptCheckpoint)
	}
	rp := recoveryPoint{
		Offset:      int64(binary.BigEndian.Uint64(p[0:])),
		SegmentBase: int64(binary.BigEndian.Uint64(p[8:])),
		Position:    int64(binary.BigEndian.Uint64(p[16:])),
	}
	if rp.Offset < 0 || rp.SegmentBase < 0 || rp.Position < 0 || rp.SegmentBase > rp.Offset {
		return recoveryPoint{}, fmt.Errorf("recovery point %+v out of range: %w", rp, ErrCorruptCheckpoint)
	}
	return rp, nil
}

// encodeOffset and decodeOffset are the payload of the log-start-offset and
// clean-shutdown files: one int64.
func encodeOffset(off int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(off)) }

func decodeOffset(p []byte) (int64, error) {
	if len(p) != 8 {
		return 0, fmt.Errorf("offset payload of %d bytes, want 8: %w", len(p), ErrCorruptCheckpoint)
	}
	off := int64(binary.BigEndian.Uint64(p))
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d: %w", off, ErrCorruptCheckpoint)
	}
	return off, nil
}

// encodeEpochs and decodeEpochs are the payload of leader-epoch-checkpoint:
// a count, then (epoch int32, startOffset int64) per entry, ascending.
func encodeEpochs(entries []EpochEntry) []byte {
	b := make([]byte, 4, 4+12*len(entries))
	binary.BigEndian.PutUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, uint32(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.StartOffset))
	}
	return b
}

func decodeEpochs(p []byte) ([]EpochEntry, error) {
	if len(p) < 4 {
		return nil, fmt.Errorf("epoch payload of %d bytes: %w", len(p), ErrCorruptCheckpoint)
	}
	n := int64(binary.BigEndian.Uint32(p))
	if int64(len(p)-4) != n*12 {
		return nil, fmt.Errorf("%d epoch entries in %d bytes: %w", n, len(p)-4, ErrCorruptCheckpoint)
	}
	entries := make([]EpochEntry, 0, n)
	for b := p[4:]; len(b) > 0; b = b[12:] {
		e := EpochEntry{Epoch: int32(binary.BigEndian.Uint32(b)), StartOffset: int64(binary.BigEndian.Uint64(b[4:]))}
		if e.Epoch < 0 || e.StartOffset < 0 {
			return nil, fmt.Errorf("epoch entry %+v out of range: %w", e, ErrCorruptCheckpoint)
		}
		if k := len(entries); k > 0 && (e.Epoch <= entries[k-1].Epoch || e.StartOffset < entries[k-1].StartOffset) {
			return nil, fmt.Errorf("epoch entry %+v after %+v: %w", e, entries[k-1], ErrCorruptCheckpoint)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func checkpointPath(dir, name string) string { return filepath.Join(dir, name) }

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
