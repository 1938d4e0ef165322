package meta

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gregor-log/gregor/internal/vfs"
)

// OpenStandalone loads (or creates) the store in dataDir for the broker
// self. A data dir written by a different broker id is refused, and so is
// a journal that is corrupt (see CorruptionError) or that does not belong
// with the snapshot. A torn last journal entry (a change cut short by a
// crash, never acknowledged) is truncated away, which Recovered reports.
func OpenStandalone(fs vfs.FS, dataDir string, self Broker) (*Standalone, error) {
	s := &Standalone{fs: fs, dir: dataDir, path: filepath.Join(dataDir, StandaloneFile), self: self}
	s.w.compactMin = journalCompactMin
	// Durable, or a power loss could take the new directory and the files
	// in it, acknowledged changes included.
	if err := vfs.MkdirAllDurable(fs, dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	data, err := vfs.ReadFile(fs, s.path)
	var gen uint64 // of the journal the snapshot names; 0: none
	fresh := errors.Is(err, os.ErrNotExist)
	switch {
	case fresh:
		id, err := NewTopicID()
		if err != nil {
			return nil, err
		}
		s.mu.st = &state{
			clusterID: base64.RawURLEncoding.EncodeToString(id[:]),
			brokerID:  self.ID,
			topics:    make(map[string]*Topic),
		}
	case err != nil:
		return nil, fmt.Errorf("read metadata %s: %w", s.path, err)
	default:
		st, journal, err := decodeSnapshot(s.path, data)
		if err != nil {
			return nil, err
		}
		if st.brokerID != self.ID {
			return nil, fmt.Errorf("metadata %s belongs to broker %d, not %d", s.path, st.brokerID, self.ID)
		}
		s.mu.st, gen = st, journal
		s.w.snapSize = int64(len(data))
	}
	stale, err := s.staleJournals(gen, fresh)
	if err != nil {
		return nil, err
	}
	if gen == 0 {
		// No journal follows the snapshot: a new store, or one written
		// before the journal existed. Start one.
		if err := s.compactLocked(); err != nil {
			s.closeJournal()
			return nil, err
		}
	} else {
		s.w.gen = gen
		if err := s.replay(filepath.Join(dataDir, journalName(gen))); err != nil {
			s.closeJournal()
			return nil, err
		}
	}
	for _, name := range stale {
		if name == journalName(s.w.gen) {
			continue // the journal just started, where a stray one was
		}
		if err := fs.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.closeJournal()
			return nil, fmt.Errorf("remove superseded metadata journal: %w", err)
		}
	}
	s.w.nextPID = s.mu.st.producerIDLimit
	return s, nil
}

// staleJournals returns the journal files in the data dir other than that
// of generation gen (0: none), which are left over from a compaction or a
// store creation a crash interrupted and are to be removed. It refuses a
// non-empty journal newer than gen, or any non-empty journal when there is
// no snapshot: only a snapshot older than its journal explains those (one
// restored from a backup, or rewritten by a gregor that predates the
// journal), and removing them would lose changes.
func (s *Standalone) staleJournals(gen uint64, noSnapshot bool) ([]string, error) {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list data dir %s: %w", s.dir, err)
	}
	var stale []string
	for _, e := range entries {
		g, ok := parseJournalName(e.Name())
		if !ok || g == gen {
			continue
		}
		if g > gen || noSnapshot {
			path := filepath.Join(s.dir, e.Name())
			fi, err := s.fs.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("metadata journal %s: %w", path, err)
			}
			if fi.Size() > 0 && noSnapshot {
				return nil, fmt.Errorf("metadata journal %s holds %d bytes but %s is missing: restore %s from the backup taken with the journal",
					path, fi.Size(), s.path, StandaloneFile)
			}
			if fi.Size() > 0 {
				return nil, fmt.Errorf("metadata journal %s holds %d bytes but %s names generation %d: %s is older than the journal "+
					"(restored from a backup, or rewritten by an older gregor); restore the %s that goes with it, "+
					"or remove %s to open without the changes it holds", path, fi.Size(), s.path, gen, StandaloneFile, StandaloneFile, path)
			}
		}
		stale = append(stale, e.Name())
	}
	return stale, nil
}

// replay applies the journal at path to the state and opens it for
// appending; a torn tail is truncated before the first append.
func (s *Standalone) replay(path string) error {
	data, err := vfs.ReadFile(s.fs, path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metadata journal %s, which %s names, is missing: restore it from the backup taken with %s; "+
			`or, to open without it and lose the changes it holds, remove the "journal" field from %s`,
			path, s.path, StandaloneFile, StandaloneFile)
	}
	if err != nil {
		return fmt.Errorf("read metadata journal: %w", err)
	}
	entries, end, tail, err := scanJournal(path, data)
	if err != nil {
		return err
	}
	st := s.mu.st
	for _, re := range entries {
		var e entry
		if err := json.Unmarshal(re.body, &e); err != nil {
			return &CorruptionError{Path: path, Offset: re.off, Err: fmt.Errorf("undecodable entry: %w", err)}
		}
		if err := st.check(&e); err != nil {
			return &CorruptionError{Path: path, Offset: re.off, Err: fmt.Errorf("entry does not apply: %w", err)}
		}
		st.apply(&e)
	}
	f, err := s.fs.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open metadata journal: %w", err)
	}
	if dropped := int64(len(data)) - end; dropped > 0 {
		// Cut away only before the next change (appendLocked): a broker
		// that refuses to start on what it finds (see the broker's
		// checkJournalRepair) leaves the file as it was, and says so
		// again at the next start.
		s.w.tornTail = true
		s.recovered = fmt.Sprintf("metadata journal %s: dropped %d bytes from byte %d that hold no whole entry (%s): "+
			"the last change, most likely cut short by a crash before it was acknowledged; if the broker had stopped cleanly, "+
			"the disk damaged an acknowledged change instead", path, dropped, end, tail)
	}
	s.w.journal, s.w.size = f, end
	return nil
}

// Recovered describes what opening the store repaired (a torn last journal
// entry it truncated away), or is "" if it found the files intact. The
// broker logs it.
func (s *Standalone) Recovered() string { return s.recovered }
