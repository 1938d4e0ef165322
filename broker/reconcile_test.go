package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/internal/vfs"
)

// filledDataDir runs a broker on a new data dir, writes 25 records to
// topic "keep" and stops it.
func filledDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	createTopic(t, cl, "keep", 1, nil)
	produceN(t, cl, "keep", 0, 25)
	cl.Close()
	stopBroker(t, b)
	return dir
}

// TestMissingMetadataRefused: a data dir with logs but no meta.json is
// refused with an error that says so, and the logs are left alone.
func TestMissingMetadataRefused(t *testing.T) {
	dir := filledDataDir(t)
	if err := os.Remove(filepath.Join(dir, meta.StandaloneFile)); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	b, err := New(cfg, Options{FS: vfs.OS})
	if err == nil {
		b.Close(context.Background())
		t.Fatal("broker started on a data dir with logs but no metadata")
	}
	if !strings.Contains(err.Error(), meta.StandaloneFile) || !strings.Contains(err.Error(), "keep-0") {
		t.Fatalf("error does not name the missing file and the logs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep-0")); err != nil {
		t.Fatalf("log gone after the refusal: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, meta.StandaloneFile)); err == nil {
		t.Fatal("refusal wrote a new metadata file")
	}
}

// TestUnknownLogSetAside: a partition directory the metadata does not
// know is renamed aside with its files as they were (not opened, so a
// damaged tail is not cut), not deleted, and the known topics are served
// as before.
func TestUnknownLogSetAside(t *testing.T) {
	dir := filledDataDir(t)
	// A copy of keep-0 under a topic name the metadata has never seen.
	src, ghost := filepath.Join(dir, "keep-0"), filepath.Join(dir, "ghost-0")
	if err := os.Mkdir(ghost, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".log") {
			data = append(data, "torn tail"...) // recovery would cut it
		}
		if err := os.WriteFile(filepath.Join(ghost, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		want[e.Name()] = string(data)
	}

	b := startBroker(t, nil, dir, nil)
	if _, err := os.Stat(ghost); !os.IsNotExist(err) {
		t.Fatalf("unknown log still in place: %v", err)
	}
	stray, _ := filepath.Glob(filepath.Join(dir, "ghost-0.*"+storage.StraySuffix))
	if len(stray) != 1 {
		t.Fatalf("set-aside directories: %v", stray)
	}
	got, err := os.ReadDir(stray[0])
	if err != nil || len(got) != len(want) {
		t.Fatalf("set-aside directory holds %d files (%v), want %d", len(got), err, len(want))
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(stray[0], name))
		if err != nil || string(got) != data {
			t.Fatalf("set-aside file %s: %d bytes (%v), want %d as they were", name, len(got), err, len(data))
		}
	}
	cl := newClient(t, b)
	if off, code := listOffset(t, cl, "keep", 0, -1); code != 0 || off != 25 {
		t.Fatalf("keep after restart: %d %v", off, kerr.ErrorForCode(code))
	}
	if _, ok := b.store.Topic("ghost"); ok {
		t.Fatal("the unknown log became a topic")
	}
}

// TestMissingLogStartsEmpty: a partition directory lost while the broker
// was down comes back empty (with a warning), and the broker serves.
func TestMissingLogStartsEmpty(t *testing.T) {
	dir := filledDataDir(t)
	if err := os.RemoveAll(filepath.Join(dir, "keep-0")); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, nil, dir, nil)
	cl := newClient(t, b)
	if off, code := listOffset(t, cl, "keep", 0, -1); code != 0 || off != 0 {
		t.Fatalf("lost partition after restart: end offset %d %v, want 0", off, kerr.ErrorForCode(code))
	}
	produceN(t, cl, "keep", 0, 3)
	if off, code := listOffset(t, cl, "keep", 0, -1); code != 0 || off != 3 {
		t.Fatalf("after producing into it: end offset %d %v, want 3", off, kerr.ErrorForCode(code))
	}
}

// TestZeroedJournalRefused: a metadata journal zeroed by the disk reads
// as one torn change, but logs holding records of topics it no longer
// knows show acknowledged changes were lost: the broker refuses to start,
// saying so, leaves the logs and the journal as they are, and refuses
// again at the next start.
func TestZeroedJournalRefused(t *testing.T) {
	dir := filledDataDir(t)
	journals, _ := filepath.Glob(filepath.Join(dir, "meta.log.*"))
	if len(journals) != 1 {
		t.Fatalf("journals: %v", journals)
	}
	fi, err := os.Stat(journals[0])
	if err != nil || fi.Size() == 0 {
		t.Fatalf("journal %s: %v, %d bytes", journals[0], err, fi.Size())
	}
	if err := os.WriteFile(journals[0], make([]byte, fi.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Listen, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.DataDir = dir
	for attempt := range 2 {
		b, err := New(cfg, Options{FS: vfs.OS})
		if err == nil {
			b.Close(context.Background())
			t.Fatalf("attempt %d: broker started with a zeroed metadata journal", attempt)
		}
		if !strings.Contains(err.Error(), "metadata journal damaged") || !strings.Contains(err.Error(), "keep-0 (holds records)") {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "keep-0")); err != nil {
			t.Fatalf("attempt %d: log moved: %v", attempt, err)
		}
		if got, _ := os.Stat(journals[0]); got.Size() != fi.Size() {
			t.Fatalf("attempt %d: journal cut to %d bytes", attempt, got.Size())
		}
	}
}
