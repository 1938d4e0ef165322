package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// scanBatch builds a v2 record batch of n records of size bytes, with a
// good CRC.
func scanBatch(rng *rand.Rand, n, size int) []byte {
	rb := kmsg.NewRecordBatch()
	rb.Magic = 2
	rb.LastOffsetDelta = int32(n - 1)
	rb.NumRecords = int32(n)
	rb.FirstTimestamp, rb.MaxTimestamp = 1_700_000_000_000, 1_700_000_000_000
	rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence = -1, -1, -1
	var recs []byte
	for i := range n {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = make([]byte, size)
		for j := range r.Value {
			r.Value[j] = byte(rng.IntN(256))
		}
		recs = r.AppendTo(recs)
	}
	rb.Records = recs
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[batchLenEnd-4:], uint32(len(b)-batchLenEnd))
	binary.BigEndian.PutUint32(b[batchCRCOff:], crc32.Checksum(b[batchCRCEnd:], castagnoliTable))
	return b
}

// produceFrame is a produce request frame (no size prefix) at version v:
// topics × partitions, each partition's records the concatenation of
// batches batches.
func produceFrame(t testing.TB, rng *rand.Rand, v int16, topics, partitions, batches int) []byte {
	return produceFrameSized(t, rng, v, topics, partitions, batches, 20, 300)
}

// produceFrameSized is produceFrame with batches of 1 to maxRecords
// records of under maxValue bytes.
func produceFrameSized(t testing.TB, rng *rand.Rand, v int16, topics, partitions, batches, maxRecords, maxValue int) []byte {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks = 1
	req.TimeoutMillis = 1000
	for ti := range topics {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = fmt.Sprintf("topic-%d", ti)
		for pi := range partitions {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(pi)
			for range batches {
				rp.Records = append(rp.Records, scanBatch(rng, 1+rng.IntN(maxRecords), rng.IntN(maxValue))...)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	id := "scan-test"
	return AppendRequest(nil, req, 7, &id)[4:]
}

// scanFrame feeds frame to a scanner in pieces of random sizes up to
// maxPiece and returns what it handed over.
func scanFrame(rng *rand.Rand, frame []byte, maxPiece int) []RecordsField {
	var got []RecordsField
	s := ProduceScanner{OnRecords: func(f RecordsField) { got = append(got, f) }}
	s.Reset()
	for have := 0; have < len(frame); {
		have = min(len(frame), have+1+rng.IntN(maxPiece))
		s.Advance(frame[:have])
	}
	return got
}

// sameSlice reports whether a and b are the same bytes of the same array.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// checkHandedOver checks that got is every non-empty records field of
// req, in order, as the decoder sees it, with crcOK[i] for the i-th.
func checkHandedOver(t *testing.T, what string, req *kmsg.ProduceRequest, got []RecordsField, crcOK func(i int) bool) {
	t.Helper()
	i := 0
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if len(rp.Records) == 0 {
				continue
			}
			if i >= len(got) {
				t.Fatalf("%s: %s/%d not handed over", what, rt.Topic, rp.Partition)
			}
			f := got[i]
			if string(f.Topic) != rt.Topic || f.Partition != rp.Partition || !sameSlice(f.Records, rp.Records) ||
				f.Acks != req.Acks || f.Transactional != (req.TransactionID != nil) {
				t.Fatalf("%s: field %d is %s/%d (%d bytes, acks %d, txn %v), want %s/%d (%d bytes, acks %d)", what, i,
					f.Topic, f.Partition, len(f.Records), f.Acks, f.Transactional, rt.Topic, rp.Partition, len(rp.Records), req.Acks)
			}
			if f.CRCChecked != crcOK(i) {
				t.Errorf("%s: %s/%d CRC checked %v, want %v", what, rt.Topic, rp.Partition, f.CRCChecked, crcOK(i))
			}
			i++
		}
	}
	if i != len(got) {
		t.Fatalf("%s: %d fields handed over, the request has %d", what, len(got), i)
	}
}

// decodeProduce decodes frame as the connection does.
func decodeProduce(t testing.TB, frame []byte) *kmsg.ProduceRequest {
	t.Helper()
	hdr, body, err := ParseHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeBody(hdr, body)
	if err != nil {
		t.Fatal(err)
	}
	return req.(*kmsg.ProduceRequest)
}

func TestProduceScannerHandsOverEveryPartition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	all := func(int) bool { return true }
	for v := int16(3); v <= 9; v++ {
		for _, maxPiece := range []int{1, 7, 100, 1 << 20} {
			frame := produceFrame(t, rng, v, 2, 3, 2)
			got := scanFrame(rng, frame, maxPiece)
			checkHandedOver(t, fmt.Sprintf("v%d pieces ≤ %d", v, maxPiece), decodeProduce(t, frame), got, all)
		}
	}
	// A transactional request and odd acks are handed over as they are;
	// refusing them is the broker's business.
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	txn := "tx"
	req.TransactionID = &txn
	req.Acks = 7
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 3, Records: scanBatch(rng, 2, 10)}}
	req.Topics = append(req.Topics, rt)
	id := "x"
	frame := AppendRequest(nil, req, 1, &id)[4:]
	checkHandedOver(t, "transactional", decodeProduce(t, frame), scanFrame(rng, frame, 5), all)
}

func TestProduceScannerDoesNotVouchForBadBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for v := int16(3); v <= 9; v++ {
		frame := produceFrame(t, rng, v, 1, 4, 2)
		req := decodeProduce(t, frame)
		parts := req.Topics[0].Partitions
		// Partition 0: a flipped bit in its second batch's records.
		second := int(batchLenEnd + binary.BigEndian.Uint32(parts[0].Records[8:]))
		parts[0].Records[second+batchMinSize] ^= 0x10
		// Partition 1: its first batch claims magic 1.
		parts[1].Records[batchMagicOff] = 1
		// Partition 2: its first batch's length reaches past the field.
		binary.BigEndian.PutUint32(parts[2].Records[8:], uint32(len(parts[2].Records)))
		// Partition 3 is left alone.
		got := scanFrame(rng, frame, 64)
		checkHandedOver(t, fmt.Sprintf("v%d", v), req, got, func(i int) bool { return i == 3 })
	}

	// Not a produce request, or a version the scanner does not follow.
	frame := produceFrame(t, rng, 7, 1, 1, 1)
	for _, hdr := range [][2]int16{{1, 7}, {0, 2}, {0, 10}} {
		f := bytes.Clone(frame)
		binary.BigEndian.PutUint16(f, uint16(hdr[0]))
		binary.BigEndian.PutUint16(f[2:], uint16(hdr[1]))
		if got := scanFrame(rng, f, 50); len(got) != 0 {
			t.Errorf("key %d v%d: %d fields handed over", hdr[0], hdr[1], len(got))
		}
	}

	// Null and empty records fields are not handed over.
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0}, {Partition: 1, Records: []byte{}}}
	req.Topics = append(req.Topics, rt)
	id := "x"
	f := AppendRequest(nil, req, 1, &id)[4:]
	if got := scanFrame(rng, f, 3); len(got) != 0 {
		t.Errorf("null and empty records: %d fields handed over", len(got))
	}
}

// TestReadFrameScanning reads frames through ReadFrameScanning as the
// connection does, from a reader that returns a few bytes at a time.
func TestReadFrameScanning(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var stream []byte
	var frames [][]byte
	for v := int16(3); v <= 9; v++ {
		f := produceFrame(t, rng, v, 2, 2, 3)
		frames = append(frames, f)
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(f)))
		stream = append(stream, f...)
	}
	r := &choppyReader{r: bytes.NewReader(stream), rng: rng}
	var got []RecordsField
	s := ProduceScanner{OnRecords: func(f RecordsField) { got = append(got, f) }}
	var buf []byte
	for i, want := range frames {
		got = got[:0]
		frame, err := ReadFrameScanning(r, buf, 1<<30, &s)
		if err != nil || !bytes.Equal(frame, want) {
			t.Fatalf("frame %d: %v", i, err)
		}
		checkHandedOver(t, fmt.Sprintf("frame %d", i), decodeProduce(t, frame), got, func(int) bool { return true })
		buf = frame[:0]
	}
	if _, err := ReadFrameScanning(r, buf, 1<<30, &s); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

type choppyReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *choppyReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), 1+c.rng.IntN(5000))])
}

// FuzzProduceScanner: on any bytes, fed in any pieces, the scanner never
// panics; every field it says it checked is made of v2 batches whose CRCs
// are right; and when the frame decodes as a produce request, what it
// handed over is exactly that request's non-empty records fields.
func FuzzProduceScanner(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for v := int16(3); v <= 9; v++ {
		// Small frames: the fuzzer mutates (and minimizes) them faster.
		frame := produceFrameSized(f, rng, v, 2, 2, 2, 2, 8)
		f.Add(frame, uint16(100))
		f.Add(frame[:len(frame)*2/3], uint16(7))
	}
	// A topic whose partition array is null (a negative count): kmsg
	// decodes it as empty and goes on to the next topic.
	f.Add([]byte("\x00\x00\x00\x030000\x00\t000000000\xff0000000\x00\x00\x00\x02\x00\a0000000\xc4000\x00\x00\x00\x00\x00\x010000\x00\x00\x00\x010"), uint16(3))
	f.Fuzz(func(t *testing.T, frame []byte, piece uint16) {
		var got []RecordsField
		s := ProduceScanner{OnRecords: func(f RecordsField) { got = append(got, f) }}
		s.Reset()
		step := 1 + int(piece)%4096
		for have := 0; have < len(frame); {
			have = min(len(frame), have+step)
			s.Advance(frame[:have])
		}
		for _, f := range got {
			if !f.CRCChecked {
				continue
			}
			recs := f.Records
			for len(recs) > 0 {
				if len(recs) < batchMinSize || recs[batchMagicOff] != 2 {
					t.Fatalf("checked a records field with a %d-byte remainder", len(recs))
				}
				size := batchLenEnd + int(int32(binary.BigEndian.Uint32(recs[8:])))
				if size < batchMinSize || size > len(recs) {
					t.Fatalf("checked a batch of %d bytes in %d", size, len(recs))
				}
				if crc32.Checksum(recs[batchCRCEnd:size], castagnoliTable) != binary.BigEndian.Uint32(recs[batchCRCOff:]) {
					t.Fatal("checked a bad CRC")
				}
				recs = recs[size:]
			}
		}
		hdr, body, err := ParseHeader(frame)
		if err != nil || hdr.APIKey != 0 || hdr.APIVersion < 3 || hdr.APIVersion > 9 {
			return
		}
		req, err := DecodeBody(hdr, body)
		if err != nil {
			return
		}
		pr := req.(*kmsg.ProduceRequest)
		// Which of the fields are checked is the CRC check's business.
		checkHandedOver(t, "decoded", pr, got, func(i int) bool {
			if i < len(got) {
				return got[i].CRCChecked
			}
			return false
		})
	})
}
