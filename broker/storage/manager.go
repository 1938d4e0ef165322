package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/internal/vfs"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	FS      vfs.FS
	DataDir string
	Logger  *zap.Logger
	Now     func() time.Time
	// ConfigFor returns a topic's log configuration (topic configs over
	// broker defaults). Nil means defaults for every topic.
	ConfigFor func(topic string) Config
	// OnAppend, if set, is called after every append with the new log end
	// offset, outside the log's lock.
	OnAppend func(topic string, partition int32, leo int64)
	// LeaderEpochFor, if set, returns the leader epoch this broker leads a
	// partition in (ok false if it does not lead it): every log opened or
	// created is told with Log.BecomeLeader.
	LeaderEpochFor func(topic string, partition int32) (epoch int32, ok bool)
	// MaintainInterval is how often Maintain runs on every log
	// (log.retention.check.interval.ms); default 5 minutes. Flushing by
	// flush.ms is checked separately every FlushCheckInterval.
	MaintainInterval time.Duration
	// FlushCheckInterval is how often logs are checked for a due flush.ms;
	// default 100ms.
	FlushCheckInterval time.Duration
	// Cleaner configures log compaction (log.cleaner.*). The cleaner runs
	// unless Cleaner.Disabled.
	Cleaner CleanerConfig
	// BeforeRoll is every log's Options.BeforeRoll.
	BeforeRoll func() error
	// OnDataDirGone, if set, is called once when the data directory is
	// found removed or replaced (see dataDirWatch).
	OnDataDirGone func(err error)
	// Known, if set, says whether the metadata knows a partition. A
	// partition directory it does not know is not opened, since opening
	// recovers a log (cutting a damaged tail, rebuilding indexes) and its
	// files belong to no topic: Unknown lists it for the caller to set
	// aside untouched.
	Known func(topic string, partition int32) bool
}

// UnknownDir is a partition directory OpenManager left unopened because
// ManagerOptions.Known did not know its partition.
type UnknownDir struct {
	PartitionDir
	// HasRecords: one of its segment files holds bytes or starts past
	// offset 0. A log created and never written to has neither.
	HasRecords bool
}

// Manager owns the logs of a data directory: it opens them at startup,
// creates and deletes them, and runs their periodic maintenance, flushes
// and compaction in three background goroutines stopped by Close.
type Manager struct {
	o       ManagerOptions
	logger  *zap.Logger
	cleaner *Cleaner // nil when disabled; used only by cleanerLoop

	// createMu is held by Create while it makes a log's files, outside
	// mu (see Create), and taken by what must not run meanwhile:
	// deleting or setting logs aside, and Close. It is taken before mu.
	createMu sync.Mutex
	mu       struct {
		sync.RWMutex
		logs   map[topicPartition]*Log
		closed bool
	}

	dir     dataDirWatch
	dirGone atomic.Pointer[error] // see dataDirWatch

	// foldsCase: the data dir's filesystem does not tell names apart by
	// case (vfat, exFAT, ext4 casefold, macOS's default APFS), so topics
	// whose names differ only in case would share directories.
	foldsCase bool

	// unknown lists the partition directories OpenManager did not open
	// (see ManagerOptions.Known) and SetAsideUnknown has not yet moved;
	// guarded by createMu.
	unknown []UnknownDir

	stop chan struct{}
	// stopCtx is done when stop is closed; it interrupts a cleaner pass.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	wg         sync.WaitGroup
}

// FoldsCase reports whether the data dir's filesystem folds case: "a-0"
// and "A-0" name the same directory there.
func (m *Manager) FoldsCase() bool { return m.foldsCase }

// caseProbe is the file probeFoldsCase creates, and removes, in the data
// dir; with its capital letter it is no partition directory's name.
const caseProbe = ".case-Probe"

// probeFoldsCase reports whether dir's filesystem folds case: it creates
// caseProbe and looks for it under its lower-case name. Any failure reads
// as "no" (the data dir's lock and logs report an unwritable dir).
func probeFoldsCase(fsys vfs.FS, dir string) bool {
	p := filepath.Join(dir, caseProbe)
	f, err := fsys.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false
	}
	_ = f.Close()
	defer func() { _ = fsys.Remove(p) }()
	lower, err := fsys.Stat(filepath.Join(dir, strings.ToLower(caseProbe)))
	if err != nil {
		return false
	}
	upper, err := fsys.Stat(p)
	return err == nil && sameDir(lower, upper) // same device and inode: one file
}

type topicPartition struct {
	topic     string
	partition int32
}

// deleteSuffix marks a partition directory being removed in the background.
const deleteSuffix = "-delete"

// StraySuffix marks a partition directory set aside (SetAsideUnknown, or
// found in the way of a new log by Create): kept on
// disk for the operator, never opened or removed by the broker.
const StraySuffix = "-stray"

// maxParallelOpens bounds how many logs OpenManager recovers at once.
var maxParallelOpens = max(4, 2*runtime.GOMAXPROCS(0))

// maxParallelCloses bounds how many logs Close closes at once; closing
// mostly waits for fsyncs.
const maxParallelCloses = 16

// OpenManager opens every <topic>-<partition> directory in o.DataDir in
// parallel, removes leftover *-delete directories, skips other entries,
// and starts the maintenance goroutines. If any log fails to open, it
// closes the ones that opened and returns an error listing every failure.
func OpenManager(o ManagerOptions) (*Manager, error) {
	if o.FS == nil || o.DataDir == "" {
		return nil, errors.New("open log manager: ManagerOptions.FS and DataDir are required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConfigFor == nil {
		o.ConfigFor = func(string) Config { return Config{} }
	}
	if o.MaintainInterval <= 0 {
		o.MaintainInterval = 5 * time.Minute
	}
	if o.FlushCheckInterval <= 0 {
		o.FlushCheckInterval = 100 * time.Millisecond
	}
	o.Cleaner = o.Cleaner.WithDefaults()
	m := &Manager{o: o, logger: o.Logger, stop: make(chan struct{})}
	m.mu.logs = map[topicPartition]*Log{}

	if err := vfs.MkdirAllDurable(o.FS, o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("open log manager: %w", err)
	}
	m.foldsCase = probeFoldsCase(o.FS, o.DataDir)
	if m.foldsCase {
		o.Logger.Warn("the data dir's filesystem does not tell names apart by case: topics whose names differ only in case are refused", zap.String("data_dir", o.DataDir))
	}
	entries, err := o.FS.ReadDir(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open log manager: %w", err)
	}
	if m.dir.id, err = o.FS.Stat(o.DataDir); err != nil {
		return nil, fmt.Errorf("open log manager: %w", err)
	}
	var parts []topicPartition
	var removed bool
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if isAsideName(name, deleteSuffix) {
			if err := o.FS.RemoveAll(filepath.Join(o.DataDir, name)); err != nil {
				return nil, fmt.Errorf("open log manager: remove %s: %w", name, err)
			}
			removed = true
			continue
		}
		tp, ok := ParsePartitionDir(name)
		if !ok {
			continue
		}
		if o.Known != nil && !o.Known(tp.Topic, tp.Partition) {
			has, err := holdsRecords(o.FS, filepath.Join(o.DataDir, name))
			if err != nil {
				return nil, fmt.Errorf("open log manager: %w", err)
			}
			m.unknown = append(m.unknown, UnknownDir{PartitionDir: tp, HasRecords: has})
			continue
		}
		parts = append(parts, tp.toKey())
	}
	if removed {
		if err := o.FS.SyncDir(o.DataDir); err != nil {
			return nil, fmt.Errorf("open log manager: %w", err)
		}
	}

	type result struct {
		tp  topicPartition
		log *Log
		err error
	}
	results := make([]result, len(parts))
	inParallel(len(parts), maxParallelOpens, func(i int) {
		l, err := m.openLog(parts[i])
		results[i] = result{tp: parts[i], log: l, err: err}
	})
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		m.mu.logs[r.tp] = r.log
	}
	if len(errs) > 0 {
		for _, l := range m.mu.logs {
			_ = l.Close()
		}
		// Name the first few: thousands of partitions failing alike
		// made one error thousands of lines long.
		const named = 5
		err := errors.Join(errs[:min(len(errs), named)]...)
		if len(errs) > named {
			err = fmt.Errorf("%w\n(and %d more)", err, len(errs)-named)
		}
		if vfs.IsOutOfFiles(err) {
			// Every segment keeps its log file open.
			return nil, fmt.Errorf("open log manager: %d of %d logs failed, out of file descriptors: raise the limit (ulimit -n) above the number of segment files plus the connections expected: %w", len(errs), len(parts), err)
		}
		return nil, fmt.Errorf("open log manager: %d of %d logs failed: %w", len(errs), len(parts), err)
	}

	m.stopCtx, m.cancelStop = context.WithCancel(context.Background())
	m.wg.Add(2)
	go m.maintainLoop()
	go m.flushLoop()
	if !o.Cleaner.Disabled {
		m.cleaner = NewCleaner(o.Cleaner)
		m.wg.Add(1)
		go m.cleanerLoop()
	}
	return m, nil
}

// PartitionDir names a partition's directory.
type PartitionDir struct {
	Topic     string
	Partition int32
}

func (p PartitionDir) toKey() topicPartition { return topicPartition{p.Topic, p.Partition} }

// ParsePartitionDir parses a directory name of the form <topic>-<partition>
// at the last '-' (topic names may contain '-' and '.').
func ParsePartitionDir(name string) (PartitionDir, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return PartitionDir{}, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != name[i+1:] {
		return PartitionDir{}, false
	}
	return PartitionDir{Topic: name[:i], Partition: int32(n)}, true
}

func (m *Manager) dirFor(tp topicPartition) string {
	return filepath.Join(m.o.DataDir, tp.topic+"-"+strconv.FormatInt(int64(tp.partition), 10))
}

func (m *Manager) openLog(tp topicPartition) (*Log, error) {
	var onAppend func(int64)
	if m.o.OnAppend != nil {
		cb := m.o.OnAppend
		onAppend = func(leo int64) { cb(tp.topic, tp.partition, leo) }
	}
	l, err := Open(Options{
		FS:         m.o.FS,
		Dir:        m.dirFor(tp),
		Topic:      tp.topic,
		Partition:  tp.partition,
		Config:     m.o.ConfigFor(tp.topic),
		Logger:     m.logger,
		Now:        m.o.Now,
		OnAppend:   onAppend,
		BeforeRoll: m.o.BeforeRoll,
	})
	if err != nil || m.o.LeaderEpochFor == nil {
		return l, err
	}
	if epoch, ok := m.o.LeaderEpochFor(tp.topic, tp.partition); ok {
		if err := l.BecomeLeader(epoch); err != nil {
			// Not fatal: only OffsetForLeaderEpoch on a log with no
			// record in the epoch answers -1 until an append records it.
			m.logger.Warn("record the leader epoch at the log end", zap.String("topic", tp.topic),
				zap.Int32("partition", tp.partition), zap.Int32("epoch", epoch), zap.Error(err))
		}
	}
	return l, nil
}

// Log returns the log of a partition, or nil if there is none.
func (m *Manager) Log(topic string, partition int32) *Log {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.logs[topicPartition{topic, partition}]
}

// Create returns the log of a partition, creating it if needed. The files
// are made (about nine fsyncs) without holding mu, which every produce and
// fetch takes to find its log: held, creating a topic of 1,000 partitions
// stalled all traffic for a second and more. Creates run one at a time
// (createMu), so a second Create of a partition finds the first's log.
func (m *Manager) Create(topic string, partition int32) (*Log, error) {
	if topic == "" || partition < 0 || strings.ContainsAny(topic, "/\\") || topic == "." || topic == ".." {
		return nil, fmt.Errorf("create log for %q partition %d: invalid name", topic, partition)
	}
	if err := m.checkDataDir(); err != nil { // before mu: it takes mu
		return nil, fmt.Errorf("create log for %s-%d: %w", topic, partition, err)
	}
	tp := topicPartition{topic, partition}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	m.mu.RLock()
	l, closed := m.mu.logs[tp], m.mu.closed
	m.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if l != nil {
		return l, nil
	}

	l, err := m.createLog(tp)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	closed = m.mu.closed
	if !closed {
		m.mu.logs[tp] = l
	}
	m.mu.Unlock()
	if closed {
		// Close began meanwhile and waited for this: close the new log
		// as it closed the others.
		if cerr := l.Close(); cerr != nil {
			m.logger.Warn("close a log created while closing", zap.String("dir", m.dirFor(tp)), zap.Error(cerr))
		}
		return nil, ErrClosed
	}
	return l, nil
}

// createLog makes the files of tp's new log and opens it; createMu is
// held.
func (m *Manager) createLog(tp topicPartition) (*Log, error) {
	_, statErr := m.o.FS.Stat(m.dirFor(tp))
	if statErr == nil {
		// A directory no open log owns: left by a deletion whose rename
		// failed. A new log starts empty, so set it aside (never
		// deleted), as Open's caller does with logs the metadata does
		// not know.
		target := asidePath(m.dirFor(tp), StraySuffix)
		if err := m.o.FS.Rename(m.dirFor(tp), target); err != nil {
			return nil, fmt.Errorf("create log for %s-%d: set aside the directory left there: %w", tp.topic, tp.partition, err)
		}
		if err := m.o.FS.SyncDir(m.o.DataDir); err != nil {
			return nil, fmt.Errorf("create log for %s-%d: %w", tp.topic, tp.partition, err)
		}
		m.logger.Warn("a directory was left where a new log goes; set aside, remove it once not needed",
			zap.String("dir", target))
	}
	made := statErr == nil || errors.Is(statErr, fs.ErrNotExist) // openLog makes the directory
	l, err := m.openLog(tp)
	if err != nil {
		if made {
			// Leave no directory behind for a log that never was: it
			// would be set aside as a stray log at the next start.
			if rerr := m.o.FS.RemoveAll(m.dirFor(tp)); rerr != nil {
				m.logger.Warn("remove the directory of a log that failed to open", zap.String("dir", m.dirFor(tp)), zap.Error(rerr))
			}
		}
		return nil, err
	}
	return l, nil
}

// UpdateConfig re-reads a topic's configuration through ConfigFor and
// applies it to every log of the topic.
func (m *Manager) UpdateConfig(topic string) {
	cfg := m.o.ConfigFor(topic)
	for _, l := range m.topicLogs(topic) {
		l.SetConfig(cfg)
	}
}

func (m *Manager) topicLogs(topic string) []*Log {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var logs []*Log
	for tp, l := range m.mu.logs {
		if tp.topic == topic {
			logs = append(logs, l)
		}
	}
	return logs
}

// DeleteTopic closes every log of the topic, renames their directories to
// <topic>-<partition>.<random>-delete (durably) and removes them in the
// background. Readers holding Chunks keep their files until they release
// them.
func (m *Manager) DeleteTopic(topic string) error { return m.DeletePartitions(topic, 0) }

// DeletePartitions deletes, as DeleteTopic does, the logs of the topic's
// partitions from the given one on: a failed partition addition is undone
// with it.
func (m *Manager) DeletePartitions(topic string, from int32) error {
	m.createMu.Lock() // a log being created would outlive the deletion
	defer m.createMu.Unlock()
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	var logs []*Log
	for tp, l := range m.mu.logs {
		if tp.topic == topic && tp.partition >= from {
			logs = append(logs, l)
			delete(m.mu.logs, tp)
		}
	}
	m.mu.Unlock()

	var renamed []string
	var errList []error
	for _, l := range logs {
		target, err := m.renameAside(l, deleteSuffix)
		if isNotExist(err) {
			// Removed under the broker already (its log refused
			// writes since): nothing left to delete.
			m.logger.Info("deleted partition directory was already gone", zap.String("dir", l.dir))
			continue
		}
		if err != nil {
			errList = append(errList, fmt.Errorf("delete %s: %w", l.dir, err))
			continue
		}
		renamed = append(renamed, target)
	}
	if len(renamed) > 0 {
		if err := m.o.FS.SyncDir(m.o.DataDir); err != nil {
			errList = append(errList, fmt.Errorf("delete partitions of %s: %w", topic, err))
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for _, dir := range renamed {
				if err := m.o.FS.RemoveAll(dir); err != nil {
					m.logger.Warn("remove deleted partition directory", zap.String("dir", dir), zap.Error(err))
				}
			}
		}()
	}
	return errors.Join(errList...)
}

// holdsRecords reports whether a partition directory, left unopened,
// may hold records: a segment file (*.log) that is not empty or whose
// base offset is past 0.
func holdsRecords(fsys vfs.FS, dir string) (bool, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, logSuffix) {
			continue
		}
		if name != fileBase(0)+logSuffix {
			return true, nil
		}
		fi, err := fsys.Stat(filepath.Join(dir, name))
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", filepath.Join(dir, name), err)
		}
		if fi.Size() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// Unknown returns the partition directories OpenManager did not open
// because ManagerOptions.Known did not know them, and that are still in
// place.
func (m *Manager) Unknown() []UnknownDir {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	return append([]UnknownDir(nil), m.unknown...)
}

// SetAsideUnknown renames an unknown partition directory (see Unknown),
// unopened, to <topic>-<partition>.<random>-stray, durably, and returns the
// new path.
func (m *Manager) SetAsideUnknown(d PartitionDir) (string, error) {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	i := slices.IndexFunc(m.unknown, func(u UnknownDir) bool { return u.PartitionDir == d })
	if i < 0 {
		return "", fmt.Errorf("set aside %s-%d: not an unknown partition directory", d.Topic, d.Partition)
	}
	dir := m.dirFor(d.toKey())
	target := asidePath(dir, StraySuffix)
	if err := m.o.FS.Rename(dir, target); err != nil {
		return "", fmt.Errorf("set aside %s: %w", dir, err)
	}
	if err := m.o.FS.SyncDir(m.o.DataDir); err != nil {
		return "", fmt.Errorf("set aside %s: %w", dir, err)
	}
	m.unknown = slices.Delete(m.unknown, i, i+1)
	return target, nil
}

// renameAside closes l's files and renames its directory to
// <dir>.<16 random hex><suffix>, returning the new path; the caller syncs
// the data directory.
func (m *Manager) renameAside(l *Log, suffix string) (string, error) {
	l.flushMu.Lock()
	l.closeFiles(true)
	l.flushMu.Unlock()
	target := asidePath(l.dir, suffix)
	if err := m.o.FS.Rename(l.dir, target); err != nil {
		return "", err
	}
	return target, nil
}

// isAsideName reports whether name is one asidePath makes with suffix:
// <topic>-<partition>.<16 hex digits><suffix>. A directory someone else
// named *-delete is left alone.
func isAsideName(name, suffix string) bool {
	rest, ok := strings.CutSuffix(name, suffix)
	const tag = 1 + 16 // "." and the hex digits
	if !ok || len(rest) <= tag || rest[len(rest)-tag] != '.' {
		return false
	}
	if _, ok := ParsePartitionDir(rest[:len(rest)-tag]); !ok {
		return false
	}
	for _, c := range rest[len(rest)-16:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// maxDirName is the longest file name Linux file systems take.
const maxDirName = 255

// asidePath returns the path partition directory dir (<topic>-<partition>)
// is renamed to: <dir>.<16 random hex><suffix>, the topic cut short, as
// Kafka does, when that name would not fit in maxDirName bytes (a topic
// name may be 249 characters). Topic names are ASCII.
func asidePath(dir, suffix string) string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	base := filepath.Base(dir)
	tail := "." + hex.EncodeToString(rnd[:]) + suffix
	if len(base)+len(tail) > maxDirName {
		i := strings.LastIndexByte(base, '-') // before the partition
		if i < 0 {
			i = len(base)
		}
		keep := max(0, maxDirName-len(tail)-(len(base)-i))
		base = base[:min(keep, i)] + base[i:]
	}
	return filepath.Join(filepath.Dir(dir), base+tail)
}

// Len returns how many logs are open.
func (m *Manager) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.mu.logs)
}

// Logs returns every open log, in no particular order.
func (m *Manager) Logs() []*Log {
	m.mu.RLock()
	defer m.mu.RUnlock()
	logs := make([]*Log, 0, len(m.mu.logs))
	for _, l := range m.mu.logs {
		logs = append(logs, l)
	}
	return logs
}

// Close stops the background goroutines and closes every log, flushing
// each and writing its checkpoints.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	logs := make([]*Log, 0, len(m.mu.logs))
	for _, l := range m.mu.logs {
		logs = append(logs, l)
	}
	m.mu.Unlock()
	// A Create in flight finishes (and, seeing closed, closes the log it
	// made) before this goes on.
	m.createMu.Lock()
	m.createMu.Unlock() // a barrier: nothing to do under it
	close(m.stop)
	m.cancelStop()
	m.wg.Wait()
	// Closing flushes, fsyncs and writes checkpoints: several syncs a
	// log, which the disk's journal commits together when they come at
	// once. One at a time, a broker with thousands of partitions took
	// seconds per thousand to stop.
	errs := make([]error, len(logs))
	inParallel(len(logs), maxParallelCloses, func(i int) { errs[i] = logs[i].Close() })
	// Logs that could not write only their clean-shutdown marker lost
	// nothing: said once, not failed.
	var markers int
	var first error
	for i, err := range errs {
		var me *markerError
		if errors.As(err, &me) {
			markers++
			if first == nil {
				first = me.err
			}
			errs[i] = nil
		}
	}
	if markers > 0 {
		m.logger.Warn("some logs could not write their clean-shutdown marker; nothing is lost: their next open checks their tails as after a crash",
			zap.Int("logs", markers), zap.Error(first))
	}
	return errors.Join(errs...)
}

// inParallel calls fn(0) to fn(n-1), at most limit at a time, and returns
// when all have.
func inParallel(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

func (m *Manager) maintainLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.o.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		for _, l := range m.Logs() {
			if err := l.Maintain(); err != nil && !errors.Is(err, ErrClosed) {
				m.logger.Warn("log maintenance failed", zap.String("topic", l.Topic()), zap.Int32("partition", l.Partition()), zap.Error(err))
			}
		}
	}
}

// flushWorkers is how many logs' due flushes (flush.ms) run at once. One
// at a time, a partition whose fsync was slow (a large backlog on a slow
// disk) held up every other partition's, and a thousand partitions at a
// few milliseconds an fsync could not all be flushed every second; an SSD
// takes fsyncs of different files in parallel.
const flushWorkers = 4

// flushLoop hands the logs whose flush.ms is due to flushWorkers workers,
// each log to one worker at a time.
func (m *Manager) flushLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.o.FlushCheckInterval)
	defer t.Stop()
	due := make(chan *Log)
	var workers sync.WaitGroup
	for range flushWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for l := range due {
				m.flushIfDue(l)
			}
		}()
	}
	defer workers.Wait()
	defer close(due)
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.checkDataDirIfDue(now)
		}
		now := m.o.Now()
		for _, l := range m.Logs() {
			// A log still queued or being flushed from an earlier
			// tick is skipped; a tick after its worker is done
			// queues it again if it is still due.
			if !l.flushDueAt(now) || !l.flushQueued.CompareAndSwap(false, true) {
				continue
			}
			select {
			case due <- l:
			case <-m.stop:
				l.flushQueued.Store(false)
				return
			}
		}
	}
}

// flushIfDue is a flush worker's turn at l.
func (m *Manager) flushIfDue(l *Log) {
	defer l.flushQueued.Store(false)
	if err := l.FlushIfDue(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrStorage) {
		m.logger.Warn("log flush failed", zap.String("topic", l.Topic()), zap.Int32("partition", l.Partition()), zap.Error(err))
	}
}

// cleanerLoop is the log cleaner: it cleans the compacted log with the
// highest dirty ratio among those due (see Log.cleanability), then looks
// again; when none is due it sleeps log.cleaner.backoff.ms. A pass that
// fails, or does nothing, leaves its log alone for a while (RetryBackoff,
// Backoff) so one bad log cannot keep the cleaner busy.
func (m *Manager) cleanerLoop() {
	defer m.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		for m.cleanOne() {
			select {
			case <-m.stop:
				return
			default:
			}
		}
		t.Reset(m.o.Cleaner.Backoff)
	}
}

// cleanOne runs one pass over the dirtiest due log; false when no log was
// due.
func (m *Manager) cleanOne() bool {
	now := m.o.Now()
	var (
		best      *Log
		bestRatio = -1.0
	)
	for _, l := range m.Logs() {
		if ratio, due := l.cleanability(now); due && ratio > bestRatio {
			best, bestRatio = l, ratio
		}
	}
	if best == nil {
		return false
	}
	res, err := m.cleaner.Clean(m.stopCtx, best)
	var retry time.Duration
	switch {
	case err != nil && (errors.Is(err, ErrCleanAborted) || errors.Is(err, ErrClosed)):
		retry = m.o.Cleaner.Backoff
	case err != nil:
		retry = m.o.Cleaner.RetryBackoff
	case !res.progressed():
		retry = m.o.Cleaner.Backoff
	}
	if retry > 0 {
		best.mu.Lock()
		best.mu.cleanRetryAt = m.o.Now().Add(retry)
		best.mu.Unlock()
	}
	return true
}
