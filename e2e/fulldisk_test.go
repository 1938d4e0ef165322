package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// mountTmpfs mounts a tmpfs of the given size on a new temp dir and
// unmounts it at test end. It skips the test where mounting is not allowed
// (not root, or a container without CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDisk runs the broker on a small tmpfs and produces until the disk
// is full: produce must fail with KAFKA_STORAGE_ERROR (not crash the
// broker), and everything acknowledged before must stay readable.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	// Registered before the broker, so the unmount runs after it stopped.
	dir := mountTmpfs(t, "24m")
	b := StartBroker(t, WithDataDir(dir))
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, "full", 1, nil)

	value := strings.Repeat("f", 1000)
	var acked []string
	var code int16
	for i := 0; i < 1000 && code == 0; i++ {
		vals := make([]string, 100)
		for j := range vals {
			vals[j] = value[:990] + seqValues("v", len(acked)+j, 1)[0]
		}
		spec := batchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: time.Now().UnixMilli(), Values: vals}
		var off int64
		off, code = rawProduce(t, cl, "full", 0, spec.build())
		if code == 0 {
			if off != int64(len(acked)) {
				t.Fatalf("batch %d acknowledged at offset %d, want %d", i, off, len(acked))
			}
			acked = append(acked, vals...)
		}
	}
	if code != kerr.KafkaStorageError.Code {
		t.Fatalf("producing into a full disk: error %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	if len(acked) == 0 {
		t.Fatalf("no batch was accepted before the disk was full")
	}
	t.Logf("disk full after %d acknowledged records", len(acked))
	if !b.Alive() {
		t.Fatalf("broker exited when the disk filled up")
	}
	// Still failing, not crashing, on the next attempt.
	one := batchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: time.Now().UnixMilli(), Values: []string{value}}
	if _, code := rawProduce(t, cl, "full", 0, one.build()); code == 0 {
		t.Logf("a produce after the first storage error succeeded (space was freed?)")
	}
	// Reads keep working and return exactly what was acknowledged.
	md := metadataFor(t, cl, "full")
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata after disk full: %+v", md.Topics)
	}
	got := consumePartition(t, b.Addr, "full", 0, 0, len(acked), 60*time.Second)
	checkRecords(t, got, acked, 0)
}
