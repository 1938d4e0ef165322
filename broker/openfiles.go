package broker

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// openFilesCheckFrom is the smallest number of new partitions for which
// the open files are counted afresh; fewer (auto-creation creates a few
// at a time) are checked against the count taken at most openFilesRecount
// ago plus the partitions added since, so that many small steps cannot
// creep past the limit.
const openFilesCheckFrom = 100

const openFilesRecount = time.Second

// openFiles is the last count of the process's open files, and the
// partitions created since.
var openFiles struct {
	mu    sync.Mutex
	at    time.Time
	count int64
}

// checkOpenFiles refuses to create adding partition logs, each holding at
// least one open file, when that would leave the broker fewer than a
// twentieth of its open-file limit (at least 100) for connections and
// segment rolls. Running out part way would fail the request anyway (it is
// rolled back), but the broker would spend its descriptors on the attempt.
// Where the limit or the open files cannot be read, nothing is checked.
func checkOpenFiles(adding int64) error {
	if open, limit, reserve, ok := takeFiles(adding, adding >= openFilesCheckFrom); !ok {
		return fmt.Errorf("%d new partitions need as many open files; %d of the broker's limit of %d are open and %d are kept for connections (raise the broker's open-file limit, ulimit -n): %w",
			adding, open, limit, reserve, kerr.InvalidPartitions)
	}
	return nil
}

// checkRollFile refuses a segment roll (storage's BeforeRoll) when its
// new file would leave the broker fewer descriptors than checkOpenFiles
// keeps for connections: a partition that cannot roll refuses appends
// (KAFKA_STORAGE_ERROR, retriable, logged), but the broker still accepts
// connections, serves reads and answers /metrics, where running the
// process out of descriptors made it unreachable. The error wraps EMFILE.
func checkRollFile() error {
	if open, limit, reserve, ok := takeFiles(1, false); !ok {
		return fmt.Errorf("a new segment file would leave fewer than the %d descriptors kept for connections: %d of the broker's open-file limit of %d are open (one per segment; raise ulimit -n, or use larger segments): %w",
			reserve, open, limit, syscall.EMFILE)
	}
	return nil
}

// takeFiles counts adding files as about to be opened, unless that would
// leave fewer than the reserve (a twentieth of the limit, at least 100)
// free: then ok is false, with the figures for the error. The open files
// are counted afresh when recount is set or the count is openFilesRecount
// old. Where the limit or the open files cannot be read, ok is true.
func takeFiles(adding int64, recount bool) (open, limit, reserve int64, ok bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur > 1<<40 {
		return 0, 0, 0, true
	}
	openFiles.mu.Lock()
	defer openFiles.mu.Unlock()
	if recount || time.Since(openFiles.at) > openFilesRecount {
		n, err := countOpenFiles()
		if err != nil {
			return 0, 0, 0, true
		}
		openFiles.count, openFiles.at = n, time.Now()
	}
	open, limit = openFiles.count, int64(lim.Cur)
	reserve = max(100, limit/20)
	if open+adding+reserve > limit {
		return open, limit, reserve, false
	}
	openFiles.count += adding // about to be opened
	return open, limit, reserve, true
}

// countOpenFiles counts the process's open file descriptors.
func countOpenFiles() (int64, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return int64(len(names)), nil
}
