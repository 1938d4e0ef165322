package broker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/internal/vfs"
)

// TestFullDiskAndWriteFailures: a full disk refuses produce requests with
// KAFKA_STORAGE_ERROR while it lasts and the same partition takes writes
// again once space is freed, with /healthz answering ok throughout; a
// failed fsync fences the partition until a restart, and /healthz then
// answers 503 naming it.
func TestFullDiskAndWriteFailures(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "h", 1, nil)
	batch := func() []byte {
		rb := record.NewBuilder()
		rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
		return rb.Build()
	}
	health := func() (int, string) {
		rec := httptest.NewRecorder()
		b.httpHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if p := rawProduce(t, cl, "h", 0, batch()); p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}

	efs.SetWriteLimit(0)
	for range 3 {
		if p := rawProduce(t, cl, "h", 0, batch()); p.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("produce on a full disk: error code %d", p.ErrorCode)
		}
	}
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("/healthz on a full disk: %d %s", code, body)
	}
	efs.SetWriteLimit(-1)
	if p := rawProduce(t, cl, "h", 0, batch()); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("produce after space was freed: offset %d, %v", p.BaseOffset, kerr.ErrorForCode(p.ErrorCode))
	}

	efs.FailOn(vfs.OpSync, "h-0", syscall.EIO)
	if err := b.logs.Log("h", 0).Flush(); err == nil {
		t.Fatal("flush with a failing fsync succeeded")
	}
	efs.Clear()
	code, body := health()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "h-0") {
		t.Fatalf("/healthz with a fenced partition: %d %q", code, body)
	}
	if p := rawProduce(t, cl, "h", 0, batch()); p.ErrorCode != kerr.KafkaStorageError.Code {
		t.Fatalf("produce to a fenced partition: error code %d", p.ErrorCode)
	}
}

// TestHealthzDuringStalledWrite: /healthz answers at once while an append
// is stuck in its write (a slow disk's dirty-page throttling held one for
// seconds; helper-65 saw /healthz take 1.65 s behind it, past a
// Kubernetes probe's 1 s timeout).
func TestHealthzDuringStalledWrite(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.OS)
	b := startBroker(t, efs, "", nil)
	cl := newClient(t, b)
	createTopic(t, cl, "stall", 1, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	efs.SetHook(func(op vfs.Op, path string) error {
		if op == vfs.OpWrite && strings.Contains(path, "stall-0") && strings.HasSuffix(path, ".log") {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	})
	defer efs.Clear()
	done := make(chan kmsg.ProduceResponseTopicPartition, 1)
	go func() {
		rb := record.NewBuilder()
		rb.Add(nil, []byte("v"), nil, time.Now().UnixMilli())
		done <- rawProduce(t, cl, "stall", 0, rb.Build())
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the append never reached its write")
	}
	start := time.Now()
	rec := httptest.NewRecorder()
	go func() { time.Sleep(2 * time.Second); close(release) }() // in case /healthz waits
	b.httpHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if took := time.Since(start); rec.Code != http.StatusOK || took > time.Second {
		t.Fatalf("/healthz during a stalled write: %d in %v", rec.Code, took)
	}
	if p := <-done; p.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(p.ErrorCode))
	}
}
