package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// batchSpec describes a v2 record batch to build by hand, for requests a
// well-behaved client would never send (replayed sequences, bad CRCs).
type batchSpec struct {
	ProducerID    int64 // -1 for none
	ProducerEpoch int16
	BaseSequence  int32 // -1 for none
	BaseTimestamp int64 // ms
	Values        []string
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// build encodes the batch in the v2 wire format with a correct CRC-32C.
// Record i gets timestamp BaseTimestamp+i.
func (s batchSpec) build() []byte {
	var records []byte
	for i, v := range s.Values {
		var body []byte
		body = append(body, 0)                          // record attributes
		body = binary.AppendVarint(body, int64(i))      // timestamp delta
		body = binary.AppendVarint(body, int64(i))      // offset delta
		body = binary.AppendVarint(body, -1)            // null key
		body = binary.AppendVarint(body, int64(len(v))) // value length
		body = append(body, v...)
		body = binary.AppendVarint(body, 0) // no headers
		records = binary.AppendVarint(records, int64(len(body)))
		records = append(records, body...)
	}
	n := len(s.Values)
	b := make([]byte, 61, 61+len(records))
	binary.BigEndian.PutUint64(b[0:], 0)                                   // base offset
	binary.BigEndian.PutUint32(b[8:], uint32(49+len(records)))             // batch length
	binary.BigEndian.PutUint32(b[12:], 0xffffffff)                         // partition leader epoch -1
	b[16] = 2                                                              // magic
	binary.BigEndian.PutUint16(b[21:], 0)                                  // attributes
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))                        // last offset delta
	binary.BigEndian.PutUint64(b[27:], uint64(s.BaseTimestamp))            // base timestamp
	binary.BigEndian.PutUint64(b[35:], uint64(s.BaseTimestamp+int64(n-1))) // max timestamp
	binary.BigEndian.PutUint64(b[43:], uint64(s.ProducerID))
	binary.BigEndian.PutUint16(b[51:], uint16(s.ProducerEpoch))
	binary.BigEndian.PutUint32(b[53:], uint32(s.BaseSequence))
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	b = append(b, records...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// rawProduce sends one Produce request (acks=all) carrying batch to
// topic/partition and returns the partition's base offset and error code.
func rawProduce(t testing.TB, cl *kgo.Client, topic string, partition int32, batch []byte) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("raw produce %s/%d: %v", topic, partition, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("raw produce %s/%d: malformed response", topic, partition)
	}
	p := resp.Topics[0].Partitions[0]
	return p.BaseOffset, p.ErrorCode
}

// initProducerID asks the broker for an idempotent producer id and epoch.
func initProducerID(t testing.TB, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.ProducerID = -1
	req.ProducerEpoch = -1
	req.TransactionTimeoutMillis = 60000
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("init producer id: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// segmentBatch is one batch found in a segment file.
type segmentBatch struct {
	Pos        int64 // byte position in the file
	Size       int64 // 12 + batch length
	BaseOffset int64
	LastOffset int64
}

// readSegmentBatches walks the batches of a segment file, stopping at the
// first header that does not describe a complete batch (which is where
// preallocated or torn space would begin).
func readSegmentBatches(path string) ([]segmentBatch, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read segment %s: %w", path, err)
	}
	var out []segmentBatch
	var pos int64
	for int64(len(data))-pos >= 61 {
		h := data[pos:]
		length := int64(int32(binary.BigEndian.Uint32(h[8:12])))
		if length < 49 || pos+12+length > int64(len(data)) || h[16] != 2 {
			break
		}
		base := int64(binary.BigEndian.Uint64(h[0:8]))
		last := base + int64(int32(binary.BigEndian.Uint32(h[23:27])))
		out = append(out, segmentBatch{Pos: pos, Size: 12 + length, BaseOffset: base, LastOffset: last})
		pos += 12 + length
	}
	return out, nil
}
