package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kcatPath returns the kcat binary or fails: `make test` installs it
// (scripts/install-deps.sh), so its absence is a setup error, not a skip.
func kcatPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found on PATH (run scripts/install-deps.sh): %v", err)
	}
	return p
}

// runKcat runs kcat with args and stdin and returns its stdout; it fails
// the test on a non-zero exit, printing stderr.
func runKcat(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcatPath(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// kcatRecord is one record as printed by kcat -f '%p\t%o\t%s\n'.
type kcatRecord struct {
	partition int32
	offset    int64
	value     string
}

// kcatConsume reads a whole topic with kcat from the beginning to the end.
func kcatConsume(t testing.TB, addr, topic string) []kcatRecord {
	t.Helper()
	out := runKcat(t, "", "-C", "-b", addr, "-t", topic, "-e", "-o", "beginning", "-q",
		"-f", `%p\t%o\t%s\n`)
	var recs []kcatRecord
	for _, line := range nonEmptyLines(out) {
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("kcat: unexpected line %q", line)
		}
		p, err1 := strconv.ParseInt(parts[0], 10, 32)
		o, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("kcat: unexpected line %q", line)
		}
		recs = append(recs, kcatRecord{partition: int32(p), offset: o, value: parts[2]})
	}
	return recs
}

// checkKcatRecords asserts that recs hold exactly the values want (in any
// partition) and that each partition's offsets run 0, 1, 2, ... in order.
func checkKcatRecords(t testing.TB, recs []kcatRecord, want []string) {
	t.Helper()
	next := map[int32]int64{}
	got := make([]string, 0, len(recs))
	for _, r := range recs {
		if r.offset != next[r.partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.partition, r.offset, next[r.partition])
		}
		next[r.partition]++
		got = append(got, r.value)
	}
	if d := diffStrings(sortedCopy(got), sortedCopy(want)); d != "" {
		t.Fatalf("kcat consumed values differ from produced: %s", d)
	}
}

// TestKcatProduceConsumeMetadata produces with kcat using every codec,
// consumes back with kcat and franz-go, and lists metadata with kcat -L.
func TestKcatProduceConsumeMetadata(t *testing.T) {
	t.Parallel()
	kcatPath(t)
	b := StartBroker(t)
	admin := b.Client()

	for i, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run("produce-"+codec, func(t *testing.T) {
			topic := "kcat-" + codec
			createTopic(t, admin, topic, 2, nil)
			lines := seqValues("kcat-"+codec, 0, 500)
			runKcat(t, strings.Join(lines, "\n")+"\n",
				"-P", "-b", b.Addr, "-t", topic, "-z", codec)
			checkKcatRecords(t, kcatConsume(t, b.Addr, topic), lines)
			// librdkafka before 2.10 sends gzip, snappy and lz4 only to a
			// broker that advertises Produce v0 (KAFKA-18659), and
			// otherwise sends them uncompressed without an error. It also
			// sends a batch uncompressed when compressing would not make
			// it smaller (a batch of a few records with zstd, say), so
			// every batch must have the codec or none, and some the codec.
			compressed := 0
			for p := range int32(2) {
				for _, bi := range rawFetch(t, admin, topic, p, 0).Batches {
					switch int(bi.Codec) {
					case i:
						compressed++
					case 0:
					default:
						t.Fatalf("partition %d: kcat -z %s stored a batch with codec %d", p, codec, bi.Codec)
					}
				}
			}
			if compressed == 0 {
				t.Fatalf("kcat -z %s: no batch stored with that codec", codec)
			}

			got := consumeTopic(t, b.Addr, topic, len(lines), 30*time.Second)
			if d := diffStrings(sortedCopy(values(got)), sortedCopy(lines)); d != "" {
				t.Fatalf("franz-go consumed values differ from kcat produced: %s", d)
			}
		})
	}

	t.Run("metadata", func(t *testing.T) {
		createTopic(t, admin, "kcat-meta", 3, nil)
		out := runKcat(t, "", "-L", "-J", "-b", b.Addr, "-t", "kcat-meta")
		var md struct {
			Brokers []struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Partitions []struct {
					Partition int32 `json:"partition"`
					Leader    int32 `json:"leader"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("parse kcat -L -J output: %v\n%s", err, out)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].Name != b.Addr {
			t.Fatalf("kcat -L brokers = %+v, want one broker at %s", md.Brokers, b.Addr)
		}
		if len(md.Topics) != 1 || md.Topics[0].Topic != "kcat-meta" || len(md.Topics[0].Partitions) != 3 {
			t.Fatalf("kcat -L topics = %+v, want kcat-meta with 3 partitions", md.Topics)
		}
		for _, p := range md.Topics[0].Partitions {
			if p.Leader != md.Brokers[0].ID {
				t.Fatalf("partition %d leader %d, want %d", p.Partition, p.Leader, md.Brokers[0].ID)
			}
		}
		// Plain -L (all topics) lists the topic too.
		if all := runKcat(t, "", "-L", "-b", b.Addr); !strings.Contains(all, `topic "kcat-meta" with 3 partitions`) {
			t.Fatalf("kcat -L output does not list kcat-meta with 3 partitions:\n%s", all)
		}
	})
}

// TestCompressionCodecsFranzToKcat produces with franz-go using every
// compression codec and consumes back with kcat (librdkafka) and franz-go.
func TestCompressionCodecsFranzToKcat(t *testing.T) {
	t.Parallel()
	kcatPath(t)
	b := StartBroker(t)
	admin := b.Client()
	codecs := map[string]kgo.CompressionCodec{
		"none":   kgo.NoCompression(),
		"gzip":   kgo.GzipCompression(),
		"snappy": kgo.SnappyCompression(),
		"lz4":    kgo.Lz4Compression(),
		"zstd":   kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "kgo-" + name
			createTopic(t, admin, topic, 1, nil)
			producer := manualClient(t, b.Addr,
				kgo.ProducerBatchCompression(codec),
				kgo.ProducerLinger(5*time.Millisecond))
			// Compressible values so every codec actually compresses.
			want := make([]string, 2000)
			for i := range want {
				want[i] = fmt.Sprintf("%s-%06d-%s", name, i, strings.Repeat("x", 100))
			}
			produceSync(t, producer, topic, 0, want...)

			recs := kcatConsume(t, b.Addr, topic)
			got := make([]string, len(recs))
			for i, r := range recs {
				if r.offset != int64(i) {
					t.Fatalf("kcat record %d at offset %d", i, r.offset)
				}
				got[i] = r.value
			}
			if d := diffStrings(got, want); d != "" {
				t.Fatalf("kcat read differs from produced (codec %s): %s", name, d)
			}
			checkRecords(t, consumePartition(t, b.Addr, topic, 0, 0, len(want), 30*time.Second), want, 0)
		})
	}
}
