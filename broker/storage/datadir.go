package storage

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// dataDirCheckEvery is how often the flush loop checks that the data
// directory is still the one the manager opened.
const dataDirCheckEvery = time.Second

// dataDirWatch notices the data directory removed (or replaced) under a
// running broker. Open files keep working after an rm -rf, so appends
// would be acknowledged into unlinked files, and a log or metadata file
// created afterwards would land in a new directory of the same name,
// which the next start then refuses. Once noticed, every log refuses
// appends (KAFKA_STORAGE_ERROR), no log can be created, and OnDataDirGone
// tells the broker, until a restart; as Kafka takes a log directory
// offline on an I/O error.
//
// The same check finds a partition directory removed (or replaced) under
// the broker: every second, the directory of each log appended to since
// the last check. That log then refuses appends, as after a failed write.
type dataDirWatch struct {
	id      os.FileInfo // the data dir when the manager opened it
	checked time.Time   // last check, by the flush loop
	// parts holds, for each log, its end offset when its directory was
	// last found in place, and that directory's identity; only the flush
	// loop uses it.
	parts map[*Log]partDirState
}

type partDirState struct {
	leo int64
	id  os.FileInfo
}

// sameDir reports whether a and b are the same directory: the same device
// and inode where the file system says (the OS's), else both present.
func sameDir(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return a.IsDir() == b.IsDir()
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// DataDirError returns why the data directory is taken to be gone, or nil.
func (m *Manager) DataDirError() error {
	if p := m.dirGone.Load(); p != nil {
		return *p
	}
	return nil
}

// checkDataDir checks the data directory now, and on finding it gone makes
// every log refuse appends. It returns DataDirError.
func (m *Manager) checkDataDir() error {
	if err := m.DataDirError(); err != nil || m.dir.id == nil {
		return err
	}
	fi, err := m.o.FS.Stat(m.o.DataDir)
	var gone error
	switch {
	case err != nil && os.IsNotExist(err):
		gone = fmt.Errorf("%w: data dir %s was removed under the broker", ErrStorage, m.o.DataDir)
	case err != nil:
		return nil // cannot tell (out of descriptors, say): look again later
	case !sameDir(m.dir.id, fi):
		gone = fmt.Errorf("%w: data dir %s was replaced under the broker (not the directory it opened)", ErrStorage, m.o.DataDir)
	default:
		return nil
	}
	if !m.dirGone.CompareAndSwap(nil, &gone) {
		return m.DataDirError()
	}
	m.logger.Error("the data dir is gone: every partition refuses produces until a restart, which will find what is left; records acknowledged since it went are in unlinked files and lost at exit",
		zap.String("data_dir", m.o.DataDir), zap.Error(gone))
	for _, l := range m.Logs() {
		l.Fail("data dir", gone)
	}
	if m.o.OnDataDirGone != nil {
		m.o.OnDataDirGone(gone)
	}
	return gone
}

// checkDataDirIfDue is checkDataDir at most every dataDirCheckEvery; only
// the flush loop calls it.
func (m *Manager) checkDataDirIfDue(now time.Time) {
	if now.Sub(m.dir.checked) < dataDirCheckEvery {
		return
	}
	m.dir.checked = now
	if m.checkDataDir() == nil {
		m.checkPartitionDirs()
	}
}

// checkPartitionDirs checks the directory of every open log appended to
// since the last check (and of every log, the first time), and makes a
// log whose directory is gone or replaced refuse appends: records
// acknowledged into its unlinked files would be lost at the next start.
// A log that nothing appends to costs nothing; one whose directory cannot
// be looked at (out of descriptors, say) is looked at again next time.
func (m *Manager) checkPartitionDirs() {
	logs := m.Logs()
	next := make(map[*Log]partDirState, len(logs))
	for _, l := range logs {
		if l.Closed() || l.WriteError() != nil {
			continue
		}
		leo := l.LogEndOffset()
		prev, known := m.dir.parts[l]
		if !known && l.dirID != nil {
			// The directory the log opened, not whatever is there at
			// the first check (it may have been replaced since).
			prev, known = partDirState{leo: -1, id: l.dirID}, true
		}
		if known && prev.leo == leo {
			next[l] = prev
			continue
		}
		fi, err := m.o.FS.Stat(l.dir)
		var gone error
		switch {
		case err != nil && os.IsNotExist(err):
			gone = fmt.Errorf("%w: partition dir %s was removed under the broker", ErrStorage, l.dir)
		case err != nil:
			if known {
				next[l] = prev
			}
			continue
		case known && prev.id != nil && !sameDir(prev.id, fi):
			gone = fmt.Errorf("%w: partition dir %s was replaced under the broker (not the directory it opened)", ErrStorage, l.dir)
		default:
			next[l] = partDirState{leo: leo, id: fi}
			continue
		}
		if l.Closed() {
			continue // its topic was deleted meanwhile: renamed aside
		}
		l.Fail("partition dir", gone)
		m.logger.Error("a partition directory is gone: its partition refuses produces until a restart; records acknowledged since it went are in unlinked files and lost at exit",
			zap.String("dir", l.dir), zap.Error(gone))
	}
	m.dir.parts = next
}
