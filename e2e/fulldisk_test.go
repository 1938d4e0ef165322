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
// broker), everything acknowledged before must stay readable, and once
// space is freed the same partition takes writes again, with no restart.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	// Registered before the broker, so the unmount runs after it stopped.
	dir := mountTmpfs(t, "24m")
	// Room to free later: another user's file on the same disk.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	b := StartBroker(t, WithDataDir(dir))
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, "full", 1, nil)

	value := strings.Repeat("f", 1000)
	var acked []string
	produce := func(n int) int16 {
		vals := make([]string, n)
		for j := range vals {
			vals[j] = value[:990] + seqValues("v", len(acked)+j, 1)[0]
		}
		spec := batchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: time.Now().UnixMilli(), Values: vals}
		off, code := rawProduce(t, cl, "full", 0, spec.build())
		if code == 0 {
			if off != int64(len(acked)) {
				t.Fatalf("batch acknowledged at offset %d, want %d", off, len(acked))
			}
			acked = append(acked, vals...)
		}
		return code
	}
	var code int16
	for i := 0; i < 1000 && code == 0; i++ {
		code = produce(100)
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
	// Still failing, not crashing, on the next attempt of the same size.
	if code := produce(100); code != kerr.KafkaStorageError.Code {
		t.Fatalf("second produce into a full disk: %v", kerr.ErrorForCode(code))
	}
	// Space freed: the partition takes writes again without a restart.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	before := len(acked)
	for i := 0; i < 5; i++ {
		if code := produce(100); code != 0 {
			t.Fatalf("produce %d after space was freed: %v", i, kerr.ErrorForCode(code))
		}
	}
	t.Logf("%d more records acknowledged after space was freed", len(acked)-before)
	// Reads return exactly what was acknowledged.
	md := metadataFor(t, cl, "full")
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata after disk full: %+v", md.Topics)
	}
	got := consumePartition(t, b.Addr, "full", 0, 0, len(acked), 60*time.Second)
	checkRecords(t, got, acked, 0)
}
