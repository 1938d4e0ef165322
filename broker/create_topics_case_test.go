package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/internal/vfs"
)

// foldFS is the OS filesystem under root as a case-insensitive one (vfat,
// ext4 casefold) sees names: every path under root is looked up in lower
// case. (It does not preserve case in ReadDir, which the test does not
// need.)
type foldFS struct {
	vfs.FS
	root string
}

func (f foldFS) fold(name string) string {
	rel, err := filepath.Rel(f.root, name)
	if err != nil || strings.HasPrefix(rel, "..") {
		return name
	}
	return filepath.Join(f.root, strings.ToLower(rel))
}

func (f foldFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	return f.FS.OpenFile(f.fold(name), flag, perm)
}
func (f foldFS) Remove(name string) error    { return f.FS.Remove(f.fold(name)) }
func (f foldFS) RemoveAll(name string) error { return f.FS.RemoveAll(f.fold(name)) }
func (f foldFS) Rename(a, b string) error    { return f.FS.Rename(f.fold(a), f.fold(b)) }
func (f foldFS) MkdirAll(dir string, perm os.FileMode) error {
	return f.FS.MkdirAll(f.fold(dir), perm)
}
func (f foldFS) ReadDir(dir string) ([]os.DirEntry, error) { return f.FS.ReadDir(f.fold(dir)) }
func (f foldFS) Stat(name string) (os.FileInfo, error)     { return f.FS.Stat(f.fold(name)) }
func (f foldFS) SyncDir(dir string) error                  { return f.FS.SyncDir(f.fold(dir)) }

// TestTopicNamesDifferingInCase: where the data dir's filesystem folds
// case, a topic whose name differs from an existing one (or one earlier in
// the same request) only in case is refused, created neither by
// CreateTopics nor by auto-creation, so that the two never share a
// directory; where it does not fold case, both are created, as in Kafka.
func TestTopicNamesDifferingInCase(t *testing.T) {
	create := func(t *testing.T, b *Broker, names ...string) map[string]error {
		t.Helper()
		cl := newClient(t, b)
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 60000
		for _, n := range names {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 1, 1
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]error{}
		for _, st := range resp.Topics {
			got[st.Topic] = kerr.ErrorForCode(st.ErrorCode)
		}
		return got
	}

	t.Run("folding", func(t *testing.T) {
		dir := t.TempDir()
		b := startBroker(t, foldFS{FS: vfs.OS, root: dir}, dir, nil)
		if !b.logs.FoldsCase() {
			t.Fatal("the probe did not find the folding filesystem")
		}
		if got := create(t, b, "Case"); got["Case"] != nil {
			t.Fatalf("create Case: %v", got)
		}
		got := create(t, b, "case", "CASE", "Other", "other")
		want := map[string]error{"case": kerr.InvalidTopicException, "CASE": kerr.InvalidTopicException, "Other": nil, "other": kerr.InvalidTopicException}
		for n, w := range want {
			if got[n] != w {
				t.Errorf("%s: %v, want %v", n, got[n], w)
			}
		}
		if _, code := b.autoCreateTopic("cASE"); code != kerr.InvalidTopicException.Code {
			t.Errorf("auto-create cASE: %v", kerr.ErrorForCode(code))
		}
		if _, ok := b.store.Topic("case"); ok {
			t.Error("topic case created")
		}
		cl := newClient(t, b)
		produceN(t, cl, "Case", 0, 5)
		if off, code := listOffset(t, cl, "Case", 0, -1); code != 0 || off != 5 {
			t.Fatalf("Case end offset %d %v", off, kerr.ErrorForCode(code))
		}
	})
	t.Run("not folding", func(t *testing.T) {
		b := startBroker(t, nil, "", nil)
		if b.logs.FoldsCase() {
			t.Fatal("the OS's temp dir read as folding case")
		}
		got := create(t, b, "Case", "case")
		if got["Case"] != nil || got["case"] != nil {
			t.Fatalf("create Case and case: %v", got)
		}
	})
}

// TestFoldedNamesRefuseStart: a data dir whose metadata holds topics that
// differ only in case (made on a filesystem that tells them apart) is
// refused on one that folds case, naming them, before any log is set
// aside; the topics' records stay where they were.
func TestFoldedNamesRefuseStart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "Case", 1, nil)
	createTopic(t, cl, "case", 1, nil)
	produceN(t, cl, "Case", 0, 3)
	produceN(t, cl, "case", 0, 2)
	cl.Close()
	stopBroker(t, b)

	cfg := DefaultConfig()
	cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", dir
	nb, err := New(cfg, Options{FS: foldFS{FS: vfs.OS, root: dir}})
	if err == nil {
		_ = nb.Close(context.Background())
		t.Fatal("started on a folding filesystem with topics Case and case")
	}
	t.Logf("refused: %v", err)
	if !strings.Contains(err.Error(), `"Case" and "case"`) && !strings.Contains(err.Error(), `"case" and "Case"`) {
		t.Fatalf("error does not name the topics: %v", err)
	}
	for _, d := range []string{"Case-0", "case-0"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	b = startBroker(t, nil, dir, nil)
	cl = newClient(t, b)
	for topic, n := range map[string]int64{"Case": 3, "case": 2} {
		if off, code := listOffset(t, cl, topic, 0, -1); code != 0 || off != n {
			t.Errorf("%s end offset %d %v, want %d", topic, off, kerr.ErrorForCode(code), n)
		}
	}
}
