// Package broker owns the Kafka protocol front end of a gregor broker: the
// listener, connections, request dispatch (one file per API, api_*.go), the
// mapping of topics to partition logs, long-poll wake-ups, metrics and the
// HTTP endpoints. It does not own the on-disk log (broker/storage) nor the
// metadata store (broker/meta).
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/group"
	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/broker/topicconfig"
	"github.com/gregor-log/gregor/broker/txn"
	"github.com/gregor-log/gregor/internal/vfs"
)

// Broker is one running broker. Create it with New, run it with Serve, stop
// it with Close.
type Broker struct {
	cfg   Config
	log   *zap.Logger
	fs    vfs.FS
	store meta.Store
	// metaRepaired is what opening the metadata store repaired ("" if
	// nothing), for checkJournalRepair.
	metaRepaired string
	logs         *storage.Manager
	budget       *requestBudget // queued.max.request.bytes: request frames
	convBudget   *requestBudget // queued.max.request.bytes again: records converted for Fetch v0-v3
	// layers are the dynamic broker configs and the topic-config
	// defaults in effect (see dynamic_configs.go).
	layers  atomic.Pointer[configLayers]
	metrics *metrics
	waiters *waiters
	self    meta.Broker
	// refusals limits the logging of requests refused with the connection
	// and of failed accepts (see lograte.go).
	refusals *logLimiter

	// streamedPartitions counts partitions appended while their produce
	// request was still arriving (see produceStream); for tests.
	streamedPartitions atomic.Int64

	// fetchSessions counts the fetch sessions of all connections (see
	// fetch_session.go).
	fetchSessions atomic.Int64
	coord         *group.Coordinator // consumer groups; see group_coordinator.go
	txns          *txn.Coordinator   // transactions; see txn_coordinator.go

	dirLock  io.Closer // exclusive lock on the data dir
	listener net.Listener
	httpSrv  *http.Server
	httpLn   net.Listener

	ctx    context.Context // cancelled when Close starts
	cancel context.CancelFunc

	// minISR caches each topic's effective min.insync.replicas (int32).
	minISR sync.Map

	// topicMu serialises topic creation, deletion and partition growth so the
	// store and the logs agree.
	topicMu sync.Mutex

	mu struct {
		sync.Mutex
		conns  map[*conn]struct{}
		perIP  map[string]int // connections by client host
		closed bool
	}
	connFreed chan struct{}  // cap 1: a connection ended (see waitConnSlot)
	connWG    sync.WaitGroup // one per live connection
	bgWG      sync.WaitGroup // accept loop, http server
}

// Options are the dependencies of a broker that tests may replace.
type Options struct {
	FS     vfs.FS      // defaults to vfs.OS
	Logger *zap.Logger // defaults to a no-op logger
}

// New validates cfg, opens the metadata store and every partition log, and
// binds the listeners. It does not accept connections until Serve.
func New(cfg Config, opts Options) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid broker config:\n%w", err)
	}
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	b := &Broker{cfg: cfg, log: opts.Logger, fs: opts.FS}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mu.conns = make(map[*conn]struct{})
	b.mu.perIP = make(map[string]int)
	b.connFreed = make(chan struct{}, 1)
	b.metrics = newMetrics(&b.fetchSessions, b.writeFailures, b.flushLag)
	b.waiters = newWaiters()
	b.budget = newRequestBudget(cfg.prop("queued.max.request.bytes"))
	b.convBudget = newRequestBudget(cfg.prop("queued.max.request.bytes"))
	b.refusals = newLogLimiter(refusalLogEvery)

	ln, err := cfg.listen()
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	b.listener = ln
	// Both ports before the data dir: a taken one fails the start before
	// anything is created on disk.
	if cfg.HTTPAddr != "" {
		hl, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen http on %s: %w", cfg.HTTPAddr, err)
		}
		b.httpLn = hl
	}
	adv := cfg.AdvertisedAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, portStr, _ := net.SplitHostPort(adv)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	port, _ := strconv.Atoi(portStr)
	b.self = meta.Broker{ID: cfg.BrokerID, Host: host, Port: int32(port)}

	if err := vfs.MkdirAllDurable(opts.FS, cfg.DataDir, 0o755); err != nil {
		b.closeListeners()
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := vfs.Lock(opts.FS, filepath.Join(cfg.DataDir, ".lock"))
	if err != nil {
		b.closeListeners()
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	b.dirLock = lock
	if err := checkMetadataPresent(opts.FS, cfg.DataDir); err != nil {
		lock.Close()
		b.closeListeners()
		return nil, err
	}
	store, err := meta.OpenStandalone(opts.FS, cfg.DataDir, b.self)
	if err != nil {
		lock.Close()
		b.closeListeners()
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	// Logged by checkJournalRepair, once it knows the repair stands.
	b.metaRepaired = store.Recovered()
	b.store = store
	b.loadConfigLayers()
	b.checkDefaults()

	start := time.Now()
	logs, err := storage.OpenManager(storage.ManagerOptions{
		FS:               opts.FS,
		DataDir:          cfg.DataDir,
		Logger:           opts.Logger.Named("storage"),
		ConfigFor:        b.storageConfigFor,
		LeaderEpochFor:   b.store.LeaderEpoch,
		MaintainInterval: cfg.retentionCheckInterval(),
		Cleaner:          cfg.cleanerConfig(),
		BeforeRoll:       checkRollFile,
		OnDataDirGone:    store.Fail,
		Known:            knownPartitions(store),
	})
	if err != nil {
		store.Close()
		lock.Close()
		b.closeListeners()
		return nil, fmt.Errorf("open logs in %s: %w", cfg.DataDir, err)
	}
	b.logs = logs
	if err := b.reconcileLogs(); err != nil {
		b.logs.Close()
		store.Close()
		lock.Close()
		b.closeListeners()
		return nil, err
	}
	b.log.Info("logs loaded", zap.Int("partitions", len(logs.Logs())), zap.Duration("took", time.Since(start)))

	// Group coordinator: after the logs are open, before serving.
	if err := b.startGroupCoordinator(); err != nil {
		b.logs.Close()
		store.Close()
		lock.Close()
		b.closeListeners()
		return nil, fmt.Errorf("start group coordinator: %w", err)
	}
	if err := b.startTxnCoordinator(); err != nil {
		b.coord.Close()
		b.logs.Close()
		store.Close()
		lock.Close()
		b.closeListeners()
		return nil, fmt.Errorf("start transaction coordinator: %w", err)
	}

	if b.httpLn != nil {
		b.httpSrv = &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		// Its own complaints (failed accepts, TLS handshakes) go to the
		// broker's log, structured, rather than to stderr.
		if stdLog, err := zap.NewStdLogAt(b.log.Named("http"), zap.WarnLevel); err == nil {
			b.httpSrv.ErrorLog = stdLog
		}
	}
	return b, nil
}

// checkFoldedNames refuses to start, where the data dir's filesystem folds
// case, if the metadata holds topics whose names differ only in case (made
// before gregor refused them there, or on another filesystem): their
// partitions would share directories, and reconciling the logs would set
// one topic's records aside for the other's.
func (b *Broker) checkFoldedNames() error {
	if !b.logs.FoldsCase() {
		return nil
	}
	seen := map[string]string{}
	var clashes []string
	for _, t := range b.store.Topics() {
		f := strings.ToLower(t.Name)
		if other, ok := seen[f]; ok {
			clashes = append(clashes, fmt.Sprintf("%q and %q", other, t.Name))
			continue
		}
		seen[f] = t.Name
	}
	if len(clashes) > 0 {
		return fmt.Errorf("the data dir's filesystem does not tell names apart by case, and topics %s differ only in case: their logs would share directories; move the data dir to a case-sensitive filesystem", strings.Join(clashes, ", "))
	}
	return nil
}

// reconcileLogs makes the logs on disk match the metadata: a partition of a
// known topic without a log gets one. A log the metadata does not know (a
// topic deleted by a broker that crashed before renaming its logs away, a
// directory copied in by hand) is set aside, renamed with a -stray suffix
// and logged, never deleted: the broker cannot tell which case it is.
func (b *Broker) reconcileLogs() error {
	if err := b.checkFoldedNames(); err != nil {
		return err
	}
	for _, t := range b.store.Topics() {
		for p := int32(0); p < t.Partitions; p++ {
			if b.logs.Log(t.Name, p) == nil {
				// Logs are created with their topic, so this is a crash
				// between the two, or a directory lost or removed by
				// hand: its records, if it had any, are gone.
				b.log.Warn("a partition the metadata knows has no log; starting it empty",
					zap.String("topic", t.Name), zap.Int32("partition", p))
				if _, err := b.logs.Create(t.Name, p); err != nil {
					return fmt.Errorf("create log %s-%d: %w", t.Name, p, err)
				}
			}
		}
	}
	if err := b.checkJournalRepair(); err != nil {
		return err
	}
	// Unknown directories were left unopened (knownPartitions), so every
	// open log is known; they go aside as they are, with any damage in
	// them, for the operator.
	for _, u := range b.logs.Unknown() {
		dir, err := b.logs.SetAsideUnknown(u.PartitionDir)
		if err != nil {
			return fmt.Errorf("set aside a log the metadata does not know: %w", err)
		}
		b.log.Warn("a log the metadata does not know was set aside: most often the log of a topic deleted just before a crash, "+
			"which can be removed; if the topic should exist, restore the metadata and rename the directory back",
			zap.String("topic", u.Topic), zap.Int32("partition", u.Partition),
			zap.Bool("holds_records", u.HasRecords), zap.String("dir", dir))
	}
	return nil
}

// knownPartitions is the logs' ManagerOptions.Known: the partitions of the
// topics in the metadata as opened. Others are not opened, so that a
// directory set aside keeps its files as they were.
func knownPartitions(store *meta.Standalone) func(string, int32) bool {
	known := make(map[string]int32)
	for _, t := range store.Topics() {
		known[t.Name] = t.Partitions
	}
	return func(topic string, partition int32) bool {
		n, ok := known[topic]
		return ok && partition < n
	}
}

// checkJournalRepair refuses to start when opening the metadata cut off
// a journal tail (a "torn last change") and logs holding records belong to
// no topic the metadata knows. A crash can tear only the last change, and
// the logs a torn topic creation leaves have no records (nobody could
// produce to a topic not yet created); records in them mean the cut-off
// bytes held acknowledged topics: the journal was damaged (zeroed by the
// file system, overwritten, copied short), not torn. Setting those logs
// aside and carrying on would serve clients a broker without them, and,
// with auto-create, new empty topics under their names.
func (b *Broker) checkJournalRepair() error {
	repaired := b.metaRepaired
	if repaired == "" {
		return nil
	}
	var orphans []string
	for _, u := range b.logs.Unknown() {
		if u.HasRecords {
			orphans = append(orphans, fmt.Sprintf("%s-%d (holds records)", u.Topic, u.Partition))
		}
	}
	if len(orphans) == 0 {
		b.log.Warn("metadata store repaired at open", zap.String("detail", repaired))
		return nil
	}
	sort.Strings(orphans)
	return fmt.Errorf("metadata journal damaged: opening it %s, and %d partition log(s) holding records belong to no topic it still knows (%s): "+
		"refusing to start without their topics; restore the metadata (%s and its meta.log.* journal) from a backup, "+
		"or move those partition directories out of %s to start without them",
		repaired, len(orphans), strings.Join(orphans[:min(len(orphans), 5)], ", "), meta.StandaloneFile, b.cfg.DataDir)
}

// checkMetadataPresent refuses a data dir that holds partition logs but no
// metadata file: starting would create empty metadata in which none of
// those topics exist. The metadata file is written before any log, so this
// is an operator's mistake (a deleted or misplaced meta.json), and the
// logs are the data.
func checkMetadataPresent(fs vfs.FS, dataDir string) error {
	if _, err := fs.Stat(filepath.Join(dataDir, meta.StandaloneFile)); !errors.Is(err, os.ErrNotExist) {
		return nil // present, or unreadable: opening it reports that
	}
	entries, err := fs.ReadDir(dataDir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	var logs []string
	for _, e := range entries {
		if _, ok := storage.ParsePartitionDir(e.Name()); ok && e.IsDir() {
			logs = append(logs, e.Name())
		}
	}
	if len(logs) == 0 {
		return nil
	}
	// Name the users' topics first; internal ones say little.
	sort.SliceStable(logs, func(i, j int) bool {
		return !strings.HasPrefix(logs[i], "__") && strings.HasPrefix(logs[j], "__")
	})
	shown := logs[:min(len(logs), 5)]
	return fmt.Errorf("data dir %s holds %d partition log(s) (%s) but no %s: refusing to start, "+
		"which would treat them as logs of unknown topics; restore %s, or move the logs out of the data dir to start afresh",
		dataDir, len(logs), strings.Join(shown, ", "), meta.StandaloneFile, meta.StandaloneFile)
}

// storageConfigFor is the effective storage config of a topic.
func (b *Broker) storageConfigFor(topic string) storage.Config {
	t, _ := b.store.Topic(topic)
	return b.storageConfigOf(t.Configs)
}

// storageConfigOf is the storage config of a topic whose own configs are
// topicConfigs.
func (b *Broker) storageConfigOf(topicConfigs map[string]string) storage.Config {
	c := topicconfig.StorageConfig(b.topicDefaults().Effective(topicConfigs))
	c.ProducerIDExpirationMs = b.cfg.prop("producer.id.expiration.ms")
	switch retain := b.cfg.prop("log.pagecache.retain.bytes"); {
	case retain < 0:
		c.PageCacheRetainBytes = 0 // never drop
	case retain == 0:
		c.PageCacheRetainBytes = 1 // drop all flushed data
	default:
		c.PageCacheRetainBytes = retain
	}
	return c
}

// Addr is the address the Kafka listener is bound to.
func (b *Broker) Addr() net.Addr { return b.listener.Addr() }

// closeListeners closes the Kafka and HTTP listeners of a broker that
// failed to start.
func (b *Broker) closeListeners() {
	b.listener.Close()
	if b.httpLn != nil {
		b.httpLn.Close()
	}
}

// HTTPAddr is the address the HTTP listener is bound to, or nil.
func (b *Broker) HTTPAddr() net.Addr {
	if b.httpLn == nil {
		return nil
	}
	return b.httpLn.Addr()
}

// Serve accepts connections until Close. It returns nil after Close.
func (b *Broker) Serve() error {
	// Under mu, so that a Close that has begun (and may be waiting on
	// bgWG) sees no late Add: a Serve after Close just returns.
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return nil
	}
	if b.httpSrv != nil {
		b.bgWG.Add(1)
		go func() {
			defer b.bgWG.Done()
			if err := b.httpSrv.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.log.Error("http server", zap.Error(err))
			}
		}()
	}
	b.mu.Unlock()
	b.log.Info("serving", zap.Stringer("addr", b.listener.Addr()), zap.Int32("broker_id", b.cfg.BrokerID),
		zap.String("advertised", net.JoinHostPort(b.self.Host, strconv.Itoa(int(b.self.Port)))))
	var backoff time.Duration
	for {
		if !b.waitConnSlot() {
			return nil
		}
		nc, err := b.listener.Accept()
		if err != nil {
			if b.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			// Anything else (out of descriptors, process- or system-wide;
			// out of buffers or memory; a connection aborted before it
			// was accepted) passes: keep accepting, as Kafka's acceptor
			// does, backing off while it lasts and logging once per
			// refusalLogEvery.
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			if ok, held := b.refusals.allow("accept", time.Now()); ok {
				b.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("retry_in", backoff),
					zap.Int("same_since_last_logged", held))
			}
			select {
			case <-time.After(backoff):
			case <-b.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if err := b.cfg.sizeSendBuffer(nc); err != nil {
			if ok, held := b.refusals.allow("sndbuf", time.Now()); ok {
				b.log.Warn("kept the kernel's send buffer", zap.Error(err), zap.Int("same_since_last_logged", held))
			}
		}
		if !b.admitConn(nc) {
			continue
		}
		c := newConn(b, nc)
		b.mu.Lock()
		if b.mu.closed {
			b.mu.Unlock()
			nc.Close()
			releaseFiles(1)
			return nil
		}
		b.mu.conns[c] = struct{}{}
		b.mu.perIP[c.host]++
		b.connWG.Add(1)
		b.mu.Unlock()
		go c.serve()
	}
}

// Close stops accepting, lets in-flight requests finish (up to ctx's
// deadline), closes every connection, flushes and closes the logs and
// writes their checkpoints.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.closed = true
	conns := make([]*conn, 0, len(b.mu.conns))
	for c := range b.mu.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()

	// How long each part of the shutdown took goes in the last line, so
	// that a slow one (a client slow to take its last responses, slow
	// fsyncs) shows which part it was.
	start := time.Now()
	mark := start
	var took []zap.Field
	phase := func(name string) {
		now := time.Now()
		took = append(took, zap.Duration(name, now.Sub(mark)))
		mark = now
	}
	b.cancel() // wakes long polls so they answer now
	b.budget.stop()
	b.convBudget.stop()
	b.listener.Close()
	for _, c := range conns {
		c.stopReading()
		// Writes in progress get shutdownWriteTimeout from now to make
		// progress (see conn.writeTimeout): a client that reads nothing
		// does not hold the shutdown.
		_ = c.nc.SetWriteDeadline(time.Now().Add(shutdownWriteTimeout))
	}
	done := make(chan struct{})
	go func() { b.connWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		b.log.Warn("shutdown deadline reached; closing connections with requests in flight")
		for _, c := range conns {
			c.nc.Close()
		}
		<-done
	}
	phase("connections")
	if b.httpSrv != nil {
		hctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b.httpSrv.Shutdown(hctx)
		cancel()
		b.httpLn.Close() // in case Serve never handed it to httpSrv
	}
	b.bgWG.Wait()
	phase("http_and_background")
	b.txns.Close()  // before the groups and logs it writes to
	b.coord.Close() // before the logs it writes to
	phase("coordinators")
	var errs []error
	if err := b.logs.Close(); err != nil {
		// One per partition (a full disk fails them all): logged one
		// by one, returned as one line.
		failed := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			failed = j.Unwrap()
		}
		for _, e := range failed {
			b.log.Error("closing a partition log failed; the next start recovers it", zap.Error(e))
		}
		errs = append(errs, fmt.Errorf("close logs: %d failed, each logged (the first: %w)", len(failed), failed[0]))
	}
	phase("flush_and_close_logs")
	if err := b.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close metadata: %w", err))
	}
	b.dirLock.Close()
	b.log.Info("stopped", append([]zap.Field{zap.Duration("took", time.Since(start))}, took...)...)
	return errors.Join(errs...)
}

func (b *Broker) removeConn(c *conn) {
	releaseFiles(1) // its socket, taken when it was admitted
	b.mu.Lock()
	delete(b.mu.conns, c)
	if b.mu.perIP[c.host]--; b.mu.perIP[c.host] <= 0 {
		delete(b.mu.perIP, c.host)
	}
	b.mu.Unlock()
	select {
	case b.connFreed <- struct{}{}:
	default:
	}
	b.connWG.Done()
}

// waitConnSlot waits, before accepting, while max.connections are open,
// as Kafka's acceptor does (new clients wait in the listen backlog); false
// means the broker is stopping.
func (b *Broker) waitConnSlot() bool {
	limit := int(min(b.cfg.prop("max.connections"), math.MaxInt32))
	for {
		b.mu.Lock()
		n := len(b.mu.conns)
		b.mu.Unlock()
		if n < limit {
			return true
		}
		select {
		case <-b.connFreed:
		case <-time.After(time.Second): // a freed slot signalled before this wait
		case <-b.ctx.Done():
			return false
		}
	}
}

// admitConn decides whether a connection just accepted may stay: its
// client host must have fewer than max.connections.per.ip, and it must
// leave the broker's segment rolls and checkpoints their descriptors (see
// roomForConnection). A refused one is closed at once, and logged at most
// once per refusalLogEvery per reason and host.
func (b *Broker) admitConn(nc net.Conn) bool {
	host := hostOf(nc.RemoteAddr().String())
	refuse := func(reason string, fields ...zap.Field) bool {
		nc.Close()
		b.metrics.connectionsRefused.WithLabelValues(reason).Inc()
		if ok, held := b.refusals.allow("conn-"+reason+"/"+host, time.Now()); ok {
			b.log.Warn("connection refused", append(fields, zap.String("remote", nc.RemoteAddr().String()),
				zap.String("reason", reason), zap.Int("same_since_last_logged", held))...)
		}
		return false
	}
	if open, limit, ok := roomForConnection(); !ok {
		return refuse("open_files", zap.Int64("open_files", open), zap.Int64("open_file_limit", limit))
	}
	perIP := b.cfg.prop("max.connections.per.ip")
	b.mu.Lock()
	n := b.mu.perIP[host]
	b.mu.Unlock()
	if int64(n) >= perIP {
		releaseFiles(1) // taken by roomForConnection
		return refuse("per_ip_limit", zap.Int("connections", n), zap.Int64("max.connections.per.ip", perIP))
	}
	return true
}

// hostOf is the host part of a host:port address.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
