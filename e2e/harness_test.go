package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// gregorBin is the path of the broker binary under test, set by TestMain.
var gregorBin string

// moduleRoot is the repository root, found from the test's working dir.
var moduleRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: getwd: %v\n", err)
		return 1
	}
	moduleRoot = filepath.Dir(wd)

	if bin := os.Getenv("GREGOR_BIN"); bin != "" {
		gregorBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "gregor-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gregorBin = filepath.Join(dir, "gregor")
	args := []string{"build", "-o", gregorBin}
	if os.Getenv("GREGOR_E2E_RACE") == "1" {
		// A race-detector broker: slower, but every e2e test then hunts
		// data races in the broker under real client load.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/gregor")...)
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building ./cmd/gregor failed: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// freePort returns a loopback port that was free a moment ago and that
// this test process has not handed out before: the kernel may give a port
// just released again (a broker once got the same port for its listener
// and its HTTP address). Another process could take it before the broker
// binds it; the window is small and the broker then fails loudly at
// startup.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, given := portsGiven.LoadOrStore(port, true); !given {
			return port
		}
	}
	t.Fatal("pick free port: 100 ports in a row were handed out before")
	return 0
}

// portsGiven holds the ports freePort returned.
var portsGiven sync.Map

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// brokerOptions configures StartBroker.
type brokerOptions struct {
	sets    []string // --set key=value
	args    []string // other flags
	dataDir string   // "" for a fresh temp dir
	env     []string // added to the test's environment
}

// BrokerOption changes how StartBroker runs the broker.
type BrokerOption func(*brokerOptions)

// WithSet passes "--set key=value" for each pair (Kafka broker properties).
func WithSet(kv ...string) BrokerOption {
	return func(o *brokerOptions) { o.sets = append(o.sets, kv...) }
}

// WithEnv adds KEY=value pairs to the broker's environment.
func WithEnv(kv ...string) BrokerOption {
	return func(o *brokerOptions) { o.env = append(o.env, kv...) }
}

// WithDataDir runs the broker on dir instead of a fresh temp dir.
func WithDataDir(dir string) BrokerOption {
	return func(o *brokerOptions) { o.dataDir = dir }
}

// WithArgs passes extra command-line flags to `gregor broker`.
func WithArgs(args ...string) BrokerOption {
	return func(o *brokerOptions) { o.args = append(o.args, args...) }
}

// Broker is one `gregor broker` process owned by a test. Its ports and data
// dir stay the same across Restart, so clients can reconnect.
type Broker struct {
	t        testing.TB
	Addr     string // Kafka listener, host:port
	HTTPAddr string // /metrics and /healthz
	DataDir  string
	opts     brokerOptions

	logs *logBuffer // all runs, separated by a banner line

	mu   sync.Mutex
	proc *brokerProc // current run; nil when stopped
	runs int
}

// brokerProc is one run of the broker process. done is closed by the
// goroutine that waits for the process; that goroutine ends when the process
// exits, which Stop/Kill9 and the test's cleanup guarantee.
type brokerProc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // valid after done is closed
}

// StartBroker starts a broker on free loopback ports with a fresh temp data
// dir and waits until it serves. The broker is stopped when the test ends,
// and its output is printed if the test failed.
func StartBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	b := &Broker{
		t:        t,
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		logs:     &logBuffer{},
	}
	for _, o := range opts {
		o(&b.opts)
	}
	b.DataDir = b.opts.dataDir
	if b.DataDir == "" {
		b.DataDir = t.TempDir()
	}
	t.Cleanup(func() {
		b.mu.Lock()
		p := b.proc
		b.mu.Unlock()
		if p != nil {
			b.stopProc(p, 10*time.Second)
		}
		logs := b.logs.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("broker %s reported a data race", b.Addr)
		}
		if t.Failed() {
			t.Logf("broker %s output:\n%s", b.Addr, tail(logs, 64<<10))
		}
	})
	b.Start()
	return b
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...(truncated)...\n" + s[len(s)-n:]
}

// Args returns the command line the broker is started with.
func (b *Broker) Args() []string {
	args := []string{
		"broker",
		"--listen", b.Addr,
		"--http-addr", b.HTTPAddr,
		"--data-dir", b.DataDir,
		"--log-level", "info",
	}
	for _, kv := range b.opts.sets {
		args = append(args, "--set", kv)
	}
	return append(args, b.opts.args...)
}

// Start starts the broker process (if not running) and waits until it serves
// Kafka requests and /healthz answers 200.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	if b.proc != nil {
		b.mu.Unlock()
		b.t.Fatalf("broker %s already running", b.Addr)
	}
	b.runs++
	fmt.Fprintf(b.logs, "=== run %d: %s %s\n", b.runs, gregorBin, strings.Join(b.Args(), " "))
	cmd := exec.Command(gregorBin, b.Args()...)
	if len(b.opts.env) > 0 {
		cmd.Env = append(os.Environ(), b.opts.env...)
	}
	cmd.Stdout = b.logs
	cmd.Stderr = b.logs
	// Kill the broker if the test binary dies without running cleanups
	// (e.g. on a test timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatalf("start broker: %v", err)
	}
	p := &brokerProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	b.proc = p
	b.mu.Unlock()

	if err := b.waitServing(p, 30*time.Second); err != nil {
		b.t.Fatalf("broker %s not serving: %v", b.Addr, err)
	}
}

// waitServing polls the Kafka port and /healthz until both answer or the
// deadline passes or the process exits.
func (b *Broker) waitServing(p *brokerProc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("broker exited during startup: %v", p.waitErr)
		default:
		}
		last = probe(hc, b.Addr, b.HTTPAddr)
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v: %w", timeout, last)
}

// probe checks the Kafka listener accepts and /healthz says 200.
func probe(hc *http.Client, addr, httpAddr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return fmt.Errorf("dial kafka port: %w", err)
	}
	c.Close()
	resp, err := hc.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: status %d", resp.StatusCode)
	}
	return nil
}

// Pid returns the running broker's process id, or 0.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return 0
	}
	return b.proc.cmd.Process.Pid
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then
// SIGKILLs. It returns the process's exit error (nil for exit status 0) and
// how long the shutdown took.
func (b *Broker) Stop(timeout time.Duration) (time.Duration, error) {
	b.t.Helper()
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		b.t.Fatalf("broker %s not running", b.Addr)
	}
	return b.stopProc(p, timeout)
}

func (b *Broker) stopProc(p *brokerProc, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.done:
		err = p.waitErr
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("broker did not exit within %v of SIGTERM; killed", timeout)
	}
	took := time.Since(start)
	b.mu.Lock()
	if b.proc == p {
		b.proc = nil
	}
	b.mu.Unlock()
	return took, err
}

// Kill9 kills the broker with SIGKILL and waits for it to be gone.
func (b *Broker) Kill9() {
	b.t.Helper()
	b.mu.Lock()
	p := b.proc
	b.proc = nil
	b.mu.Unlock()
	if p == nil {
		b.t.Fatalf("broker %s not running", b.Addr)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Restart stops the broker gracefully (failing the test if the stop is not
// clean) and starts it again on the same ports and data dir.
func (b *Broker) Restart() {
	b.t.Helper()
	if _, err := b.Stop(15 * time.Second); err != nil {
		b.t.Fatalf("stop broker for restart: %v", err)
	}
	b.Start()
}

// Alive reports whether the broker process is still running.
func (b *Broker) Alive() bool {
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Logs returns everything the broker printed so far, over all runs.
func (b *Broker) Logs() string { return b.logs.String() }

// Client returns a franz-go client for the broker, closed at test end. With
// no options it is a default producer (idempotent, acks=all).
func (b *Broker) Client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	return newClient(b.t, b.Addr, opts...)
}

// newClient returns a franz-go client seeded with addr, closed at test end.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl := rawClient(t, addr, opts...)
	t.Cleanup(cl.Close)
	return cl
}

// rawClient returns a franz-go client seeded with addr; the caller closes it.
func rawClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		t.Fatalf("new kgo client: %v", err)
	}
	return cl
}

// eventually polls cond every 20ms until it returns nil or timeout passes,
// then fails the test with the last error.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testCtx returns a context cancelled at timeout or when the test ends.
func testCtx(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// partitionDir is the directory of one partition's log in a data dir.
func partitionDir(dataDir, topic string, partition int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// segmentFiles lists the .log files of a partition, sorted by base offset
// (their names are zero-padded base offsets).
func segmentFiles(dataDir, topic string, partition int32) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(partitionDir(dataDir, topic, partition), "*.log"))
	if err != nil {
		return nil, fmt.Errorf("glob segments: %w", err)
	}
	return matches, nil // Glob sorts
}

// errNotYet marks a condition that is not true yet in an eventually poll.
var errNotYet = errors.New("not yet")

// metricValue scrapes the broker's /metrics and returns the sum of all
// samples of the named metric (0 if absent).
func metricValue(t testing.TB, b *Broker, name string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + b.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name with this prefix
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}
