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

// openFilesRecountNear is how old the count may be when it is within
// twice the reserve of the limit; at least openFilesRecountCost times as
// old as the last count took, so that counting stays a small part of the
// broker's work however many files are open (helper-93: near a limit of
// 20,000, counting 19,000 files every 10 ms took 62% of the broker's CPU
// and halved the rate it accepted connections). Connections closed are
// taken off the count as they close (releaseFiles).
const (
	openFilesRecountNear = 10 * time.Millisecond
	openFilesRecountCost = 20
)

// openFiles is the last count of the process's open files, and the
// partitions created since.
var openFiles struct {
	mu    sync.Mutex
	at    time.Time
	took  time.Duration // how long the count took
	count int64
	// counting is set while one caller counts without holding mu; the
	// others go on with the count they have, and what they take meanwhile
	// is added to the new count (takenWhile).
	counting   bool
	takenWhile int64
}

// The broker's open-file limit is shared by partition logs (a file each
// segment, for as long as it exists), client connections (a socket each,
// while connected) and segment rolls and checkpoints (a file each, briefly
// or for the new segment's life). Each kind stops short of the limit by
// its own reserve, largest for the least urgent, so that running short
// refuses new partitions first, then new connections, and appends last:
// running the process out of descriptors made it unreachable, failed its
// flushes and refused appends (helper-62: 20,000 idle connections).
const (
	partitionReserveFrac = 20 // new partitions leave a twentieth free (at least 100)
	connReserveFrac      = 40 // new connections a fortieth (at least 50)
	rollReserveFrac      = 80 // segment rolls an eightieth (at least 25)
)

func reserveOf(limit, frac, least int64) int64 { return max(least, limit/frac) }

// checkOpenFiles refuses to create adding partition logs, each holding at
// least one open file, when that would leave the broker fewer than a
// twentieth of its open-file limit (at least 100) for connections and
// segment rolls. Running out part way would fail the request anyway (it is
// rolled back), but the broker would spend its descriptors on the attempt.
// Where the limit or the open files cannot be read, nothing is checked.
func checkOpenFiles(adding int64) error {
	return partitionFiles(adding, true)
}

// partitionFiles is checkOpenFiles; unless take is set, the files are
// not counted as opened (a check before the request's own).
func partitionFiles(adding int64, take bool) error {
	if open, limit, reserve, ok := takeFiles(adding, take && adding >= openFilesCheckFrom, partitionReserveFrac, 100, take); !ok {
		return fmt.Errorf("%d new partitions need as many open files; %d of the broker's limit of %d are open and %d are kept for connections (raise the broker's open-file limit, ulimit -n): %w",
			adding, open, limit, reserve, kerr.InvalidPartitions)
	}
	return nil
}

// releaseFiles counts n files taken with takeFiles as closed, so that the
// count stays true between recounts while connections come and go (one
// recounted every 10 ms near the limit instead took most of the broker's
// CPU). During a recount it changes nothing: the count being taken may
// already miss them, and one too many only errs on the safe side.
func releaseFiles(n int64) {
	openFiles.mu.Lock()
	defer openFiles.mu.Unlock()
	if !openFiles.counting {
		openFiles.count = max(openFiles.count-n, 0)
	}
}

// checkRollFile refuses a segment roll (storage's BeforeRoll) when its
// new file would leave the broker fewer than an eightieth of its limit
// (at least 25) for checkpoints: a partition that cannot roll refuses
// appends (KAFKA_STORAGE_ERROR, retriable, logged), but the broker can
// still write its checkpoints, serve reads and answer /metrics. The error
// wraps EMFILE.
func checkRollFile() error {
	if open, limit, reserve, ok := takeFiles(1, false, rollReserveFrac, 25, true); !ok {
		return fmt.Errorf("a new segment file would leave fewer than the %d descriptors kept for checkpoints: %d of the broker's open-file limit of %d are open (one per segment; raise ulimit -n, or use larger segments): %w",
			reserve, open, limit, syscall.EMFILE)
	}
	return nil
}

// roomForConnection reports whether a connection just accepted may stay:
// it must leave a fortieth of the open-file limit (at least 50) for
// segment rolls and checkpoints. The figures are for the refusal's log.
func roomForConnection() (open, limit int64, ok bool) {
	open, limit, _, ok = takeFiles(1, false, connReserveFrac, 50, true)
	return open, limit, ok
}

// takeFiles counts adding files as about to be opened (if take is set),
// unless that would leave fewer than the reserve (limit/frac, at least
// least) free: then ok is false, with the figures for the error. The open
// files are counted afresh when recount is set or the count is
// openFilesRecount old (files closed since are seen then), unless another
// caller is counting them. Where the limit or the open files cannot be
// read, ok is true.
func takeFiles(adding int64, recount bool, frac, least int64, take bool) (open, limit, reserve int64, ok bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur > 1<<40 {
		return 0, 0, 0, true
	}
	openFiles.mu.Lock()
	defer openFiles.mu.Unlock()
	limit = int64(lim.Cur)
	reserve = reserveOf(limit, frac, least)
	// Near the limit the count is taken afresh more often: it does not
	// see files closed since, and the guess of one file a connection
	// can be short.
	age := time.Since(openFiles.at)
	near := openFiles.count+adding+2*reserve > limit
	nearAge := max(openFilesRecountNear, openFilesRecountCost*openFiles.took)
	switch {
	case openFiles.at.IsZero():
		// The first count, which every caller waits for.
		if err := recountOpenFilesLocked(false); err != nil {
			return 0, 0, 0, true
		}
	case (recount || age > openFilesRecount || (near && age > nearAge)) && !openFiles.counting:
		// Counted without holding mu (thousands of descriptors take
		// milliseconds): other callers meanwhile use the last count.
		if err := recountOpenFilesLocked(true); err != nil {
			return 0, 0, 0, true
		}
	}
	open = openFiles.count
	if open+adding+reserve > limit {
		return open, limit, reserve, false
	}
	if take {
		openFiles.count += adding // about to be opened
		if openFiles.counting {
			openFiles.takenWhile += adding
		}
	}
	return open, limit, reserve, true
}

// recountOpenFilesLocked counts the open files afresh; openFiles.mu is
// held, and released during the count if unlocked is set (what callers
// take meanwhile is added to it).
func recountOpenFilesLocked(unlocked bool) error {
	openFiles.takenWhile = 0
	if unlocked {
		openFiles.counting = true
		openFiles.mu.Unlock()
	}
	start := time.Now()
	n, err := countOpenFiles()
	took := time.Since(start)
	if unlocked {
		openFiles.mu.Lock()
		openFiles.counting = false
	}
	if err != nil {
		return err
	}
	openFiles.count, openFiles.at, openFiles.took = n+openFiles.takenWhile, time.Now(), took
	return nil
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
