package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"

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
				rp.Records = append(rp.Records, scanBatch(rng, 1+rng.IntN(20), rng.IntN(300))...)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	id := "scan-test"
	return AppendRequest(nil, req, 7, &id)[4:]
}

// scanFrame feeds frame to a scanner in pieces of random sizes up to max.
func scanFrame(rng *rand.Rand, frame []byte, maxPiece int) *ProduceScanner {
	var s ProduceScanner
	s.Reset()
	for have := 0; have < len(frame); {
		have = min(len(frame), have+1+rng.IntN(maxPiece))
		s.Advance(frame[:have])
	}
	return &s
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

func TestProduceScannerVouchesForGoodCRCs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for v := int16(3); v <= 9; v++ {
		for _, maxPiece := range []int{1, 7, 100, 1 << 20} {
			frame := produceFrame(t, rng, v, 2, 3, 2)
			s := scanFrame(rng, frame, maxPiece)
			req := decodeProduce(t, frame)
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					if !s.CRCChecked(frame, rp.Records) {
						t.Errorf("v%d pieces ≤ %d: %s/%d not vouched for", v, maxPiece, rt.Topic, rp.Partition)
					}
					// A slice that is not exactly the records field is not.
					if s.CRCChecked(frame, rp.Records[:len(rp.Records)-1]) || s.CRCChecked(frame, rp.Records[1:]) ||
						s.CRCChecked(bytes.Clone(frame), rp.Records) {
						t.Errorf("v%d: vouched for a slice that is not a records field", v)
					}
				}
			}
		}
	}
}

func TestProduceScannerRefusesWhatItCannotVouchFor(t *testing.T) {
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
		s := scanFrame(rng, frame, 64)
		for i, want := range []bool{false, false, false, true} {
			if got := s.CRCChecked(frame, parts[i].Records); got != want {
				t.Errorf("v%d partition %d: vouched %v, want %v", v, i, got, want)
			}
		}
	}

	// Not a produce request, or a version the scanner does not follow.
	rng2 := rand.New(rand.NewPCG(5, 6))
	frame := produceFrame(t, rng2, 7, 1, 1, 1)
	rp := decodeProduce(t, frame).Topics[0].Partitions[0]
	for _, hdr := range [][2]int16{{1, 7}, {0, 2}, {0, 10}} {
		f := bytes.Clone(frame)
		binary.BigEndian.PutUint16(f, uint16(hdr[0]))
		binary.BigEndian.PutUint16(f[2:], uint16(hdr[1]))
		s := scanFrame(rng2, f, 50)
		off := len(frame) - len(rp.Records) // the records end the frame at v7
		if s.CRCChecked(f, f[off:]) {
			t.Errorf("key %d v%d: vouched for a records field", hdr[0], hdr[1])
		}
	}

	// Null and empty records fields.
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0}, {Partition: 1, Records: []byte{}}}
	req.Topics = append(req.Topics, rt)
	id := "x"
	f := AppendRequest(nil, req, 1, &id)[4:]
	s := scanFrame(rng2, f, 3)
	if s.state != scanDone || len(s.checked) != 0 {
		t.Errorf("null and empty records: state %d, %d vouched", s.state, len(s.checked))
	}
}

// TestReadFrameScanning reads frames through ReadFrameScanning as the
// connection does, from a reader that returns a few bytes at a time.
func TestReadFrameScanning(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var s ProduceScanner
	var stream []byte
	var frames [][]byte
	for v := int16(3); v <= 9; v++ {
		f := produceFrame(t, rng, v, 2, 2, 3)
		frames = append(frames, f)
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(f)))
		stream = append(stream, f...)
	}
	r := &choppyReader{r: bytes.NewReader(stream), rng: rng}
	var buf []byte
	for i, want := range frames {
		got, err := ReadFrameScanning(r, buf, 1<<30, &s)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %v", i, err)
		}
		for _, rt := range decodeProduce(t, got).Topics {
			for _, rp := range rt.Partitions {
				if !s.CRCChecked(got, rp.Records) {
					t.Errorf("frame %d: %s/%d not vouched for", i, rt.Topic, rp.Partition)
				}
			}
		}
		buf = got[:0]
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
// panics, and every records field it vouches for is made of v2 batches
// whose CRCs are right.
func FuzzProduceScanner(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for v := int16(3); v <= 9; v++ {
		frame := produceFrame(f, rng, v, 2, 2, 2)
		f.Add(frame, uint16(100))
		f.Add(frame[:len(frame)*2/3], uint16(7))
	}
	f.Fuzz(func(t *testing.T, frame []byte, piece uint16) {
		var s ProduceScanner
		s.Reset()
		step := 1 + int(piece)%4096
		for have := 0; have < len(frame); {
			have = min(len(frame), have+step)
			s.Advance(frame[:have])
		}
		for _, c := range s.checked {
			if c.start < 0 || c.end > len(frame) || c.start >= c.end {
				t.Fatalf("vouched for [%d, %d) of %d bytes", c.start, c.end, len(frame))
			}
			recs := frame[c.start:c.end]
			for len(recs) > 0 {
				if len(recs) < batchMinSize || recs[batchMagicOff] != 2 {
					t.Fatalf("vouched for a records field with a %d-byte remainder", len(recs))
				}
				size := batchLenEnd + int(int32(binary.BigEndian.Uint32(recs[8:])))
				if size < batchMinSize || size > len(recs) {
					t.Fatalf("vouched for a batch of %d bytes in %d", size, len(recs))
				}
				if crc32.Checksum(recs[batchCRCEnd:size], castagnoliTable) != binary.BigEndian.Uint32(recs[batchCRCOff:]) {
					t.Fatal("vouched for a bad CRC")
				}
				recs = recs[size:]
			}
		}
	})
}
