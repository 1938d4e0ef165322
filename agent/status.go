package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/gregor-log/gregor/internal/vfs"
)

// File states reported by Status.
const (
	StateOpen     = "open"     // being read
	StateDetached = "detached" // open, renamed away or deleted: read to its end, then finished
	StateClosed   = "closed"   // idle or finished; reopened when a scan finds it grown
	StateOrphan   = "orphan"   // truncated under the agent; waiting for a copy of its content
	StateMissing  = "missing"  // (offline status) no file at the path holds this inode
)

// FileStatus is how far one file is shipped.
type FileStatus struct {
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	State string `json:"state"`
	Topic string `json:"topic,omitempty"`
	// Size is the file's size when last looked at; -1 when unknown.
	Size int64 `json:"size"`
	// Read is where reading got to (records handed to the producer end
	// there); -1 when unknown (offline status).
	Read int64 `json:"read"`
	// Acked is the checkpoint: every line before it is acknowledged.
	Acked int64 `json:"acked"`
	// Behind is Size - Acked, the bytes still to ship; -1 when unknown.
	Behind int64 `json:"behind"`
	// Pending counts records produced and not yet acknowledged.
	Pending int `json:"pending"`
	// NowAt is, for a detached file, the name the open file has now: where
	// a rotation renamed it, or "(deleted)". Empty when unknown.
	NowAt string `json:"now_at,omitempty"`
}

// Status returns every file the agent knows, sorted by path.
func (a *Agent) Status() []FileStatus {
	a.reg.mu.Lock()
	out := make([]FileStatus, 0, len(a.reg.mu.states))
	for _, st := range a.reg.mu.states {
		acked, pending := st.ack.acked()
		fs := FileStatus{
			Path: st.path, Dev: st.key.dev, Ino: st.key.ino,
			Size: st.size.Load(), Read: st.readOffset.Load(), Acked: acked, Pending: pending, Behind: -1,
		}
		if st.input != nil {
			fs.Topic = st.input.topic
		}
		switch {
		case !st.bound:
			fs.State = StateOrphan
		case st.tailer == nil:
			fs.State = StateClosed
		case st.tailer.detached.Load():
			fs.State = StateDetached
			fs.NowAt = currentName(st.tailer.f)
		default:
			fs.State = StateOpen
		}
		if fs.Size >= 0 && fs.State != StateOrphan {
			fs.Behind = max(fs.Size-acked, 0)
		}
		out = append(out, fs)
	}
	a.reg.mu.Unlock()
	sortStatus(out)
	return out
}

func sortStatus(s []FileStatus) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Path != s[j].Path {
			return s[i].Path < s[j].Path
		}
		return s[i].Ino < s[j].Ino
	})
}

func (a *Agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(StatusReport{Agent: a.cfg.Name, Files: a.Status()})
}

// StatusReport is the body of GET /status.
type StatusReport struct {
	Agent string       `json:"agent"`
	Files []FileStatus `json:"files"`
}

// OfflineStatus reports the files of the checkpoint in dataDir without a
// running agent: the checkpoint offsets, and the current size of each path
// that still holds the checkpointed inode. Damage in the checkpoint is
// returned beside the intact entries. No checkpoint (an agent that never
// ran, or was killed before its first checkpoint) is no files.
func OfflineStatus(fs vfs.FS, dataDir string) ([]FileStatus, []error, error) {
	path := filepath.Join(dataDir, checkpointName)
	data, err := vfs.ReadFile(fs, path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	entries, damage := decodeCheckpoint(path, data)
	out := make([]FileStatus, 0, len(entries))
	for _, e := range entries {
		s := FileStatus{Path: e.Path, Dev: e.Dev, Ino: e.Ino, Acked: e.Offset, Size: -1, Read: -1, Behind: -1}
		switch e.State {
		case entryOrphan:
			s.State = StateOrphan
		default:
			s.State = StateMissing
			if fi, err := os.Stat(e.Path); err == nil {
				if sys, ok := fi.Sys().(*syscall.Stat_t); ok && uint64(sys.Dev) == e.Dev && sys.Ino == e.Ino {
					s.State = StateClosed
					s.Size = fi.Size()
					s.Behind = max(s.Size-e.Offset, 0)
				}
			}
		}
		out = append(out, s)
	}
	sortStatus(out)
	return out, damage, nil
}

// currentName returns the name an open file has now, as the kernel knows
// it (/proc/self/fd; Linux), or "" when it cannot tell. A deleted file is
// "(deleted)".
func currentName(f *os.File) string {
	rc, err := f.SyscallConn()
	if err != nil {
		return ""
	}
	var name string
	_ = rc.Control(func(fd uintptr) { // holds the descriptor open meanwhile
		link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil {
			return
		}
		if strings.HasSuffix(link, " (deleted)") {
			name = "(deleted)"
			return
		}
		name = link
	})
	return name
}
