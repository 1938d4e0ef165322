package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// badInputWait is how long a bad request may take to be answered or to get
// its connection closed.
const badInputWait = 5 * time.Second

// requestHeader encodes a v1 request header (api key, version, correlation
// id, client id).
func requestHeader(apiKey, version int16, corrID int32) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint16(b, uint16(apiKey))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corrID))
	b = binary.BigEndian.AppendUint16(b, 3)
	return append(b, "e2e"...)
}

// frame prefixes payload with its int32 length.
func frame(payload []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

// outcome is how the broker reacted to a bad request on a connection.
type outcome struct {
	closed bool   // the connection was closed (EOF or reset)
	resp   []byte // a response frame (correlation id first), if one came
}

// sendBad writes raw bytes on a new connection and reports whether the
// broker answered or closed; it fails the test if the broker did neither
// within badInputWait. If halfClose is set the write side is closed after
// sending, as a client that gave up would.
func sendBad(t *testing.T, addr string, raw []byte, halfClose bool) outcome {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write(raw); err != nil {
		// The broker may close while we are still writing.
		return outcome{closed: true}
	}
	if halfClose {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(badInputWait))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("broker neither answered nor closed the connection within %v", badInputWait)
		}
		return outcome{closed: true}
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 4 || n > 1<<20 {
		t.Fatalf("broker answered with a frame of length %d", n)
	}
	resp := make([]byte, n)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatalf("broker sent a truncated response frame: %v", err)
	}
	return outcome{resp: resp}
}

// expectErrorOrClose requires that the broker closed the connection or
// answered with correlation id corrID; when it answered, it returns the
// response body after the correlation id.
func expectErrorOrClose(t *testing.T, o outcome, corrID int32) []byte {
	t.Helper()
	if o.closed {
		return nil
	}
	if got := int32(binary.BigEndian.Uint32(o.resp[:4])); got != corrID {
		t.Fatalf("response correlation id %d, want %d", got, corrID)
	}
	return o.resp[4:]
}

// rssBytes returns a process's resident set size from /proc.
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// TestBadInput sends malformed frames and requests over raw TCP. Each must
// get an error response or a closed connection, never a hang, a crash or a
// large allocation, and the broker must keep serving other clients.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := StartBroker(t)
	cl := manualClient(t, b.Addr)
	createTopic(t, cl, "bad", 1, nil)
	produceSync(t, cl, "bad", 0, "before")
	rssBefore, err := rssBytes(b.Pid())
	if err != nil {
		t.Fatal(err)
	}

	// A healthy client connection opened before the abuse, used after it.
	good, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	t.Run("negative-frame-length", func(t *testing.T) {
		o := sendBad(t, b.Addr, []byte{0xff, 0xff, 0xff, 0xff}, false)
		if !o.closed {
			t.Fatalf("negative frame length answered instead of closed")
		}
	})
	t.Run("2GiB-frame-length", func(t *testing.T) {
		o := sendBad(t, b.Addr, []byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0}, false)
		if !o.closed {
			t.Fatalf("2 GiB frame length answered instead of closed")
		}
	})
	t.Run("just-over-socket.request.max.bytes", func(t *testing.T) {
		raw := binary.BigEndian.AppendUint32(nil, 100<<20+1)
		o := sendBad(t, b.Addr, raw, false)
		if !o.closed {
			t.Fatalf("oversize frame answered instead of closed")
		}
	})
	t.Run("zero-frame-length", func(t *testing.T) {
		sendBad(t, b.Addr, []byte{0, 0, 0, 0}, true)
	})
	t.Run("garbage", func(t *testing.T) {
		g := make([]byte, 512)
		for i := range g {
			g[i] = byte(0xde ^ i*31)
		}
		sendBad(t, b.Addr, frame(g), false)
	})
	t.Run("garbage-no-frame", func(t *testing.T) {
		sendBad(t, b.Addr, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true)
	})
	t.Run("truncated-frame", func(t *testing.T) {
		// Claims 100 bytes, sends a header's worth, then gives up.
		raw := binary.BigEndian.AppendUint32(nil, 100)
		raw = append(raw, requestHeader(3, 1, 5)...)
		o := sendBad(t, b.Addr, raw, true)
		if !o.closed {
			t.Fatalf("truncated frame answered instead of closed")
		}
	})
	t.Run("truncated-request-body", func(t *testing.T) {
		// Metadata v1: topics array of 5, then half a topic name.
		p := requestHeader(3, 1, 6)
		p = binary.BigEndian.AppendUint32(p, 5)
		p = binary.BigEndian.AppendUint16(p, 10)
		p = append(p, "abc"...)
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(p), false), 6)
	})
	t.Run("truncated-header", func(t *testing.T) {
		// Too short to hold a correlation id, so nothing can be answered.
		if o := sendBad(t, b.Addr, frame([]byte{0, 3, 0}), false); !o.closed {
			t.Fatalf("3-byte request answered instead of closed")
		}
	})
	t.Run("absurd-array-count", func(t *testing.T) {
		p := requestHeader(3, 1, 7)
		p = binary.BigEndian.AppendUint32(p, 0x7fffffff)
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(p), false), 7)
	})
	t.Run("absurd-string-length", func(t *testing.T) {
		p := requestHeader(3, 1, 8)
		p = binary.BigEndian.AppendUint32(p, 1)
		p = binary.BigEndian.AppendUint16(p, 0x7fff)
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(p), false), 8)
	})
	t.Run("unknown-api-key", func(t *testing.T) {
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(requestHeader(9999, 0, 9)), false), 9)
	})
	t.Run("negative-api-key", func(t *testing.T) {
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(requestHeader(-5, 0, 10)), false), 10)
	})
	t.Run("unsupported-version", func(t *testing.T) {
		// Produce v999.
		expectErrorOrClose(t, sendBad(t, b.Addr, frame(requestHeader(0, 999, 11)), false), 11)
	})
	t.Run("apiversions-unsupported-version", func(t *testing.T) {
		// Kafka answers an ApiVersions it cannot parse with a v0 response
		// carrying UNSUPPORTED_VERSION, so clients can retry lower.
		body := expectErrorOrClose(t, sendBad(t, b.Addr, frame(requestHeader(18, 999, 12)), false), 12)
		if body == nil {
			t.Logf("broker closed the connection (Kafka would answer UNSUPPORTED_VERSION)")
			return
		}
		if len(body) < 2 || int16(binary.BigEndian.Uint16(body)) != kerr.UnsupportedVersion.Code {
			t.Fatalf("ApiVersions v999: response does not start with UNSUPPORTED_VERSION: % x", body[:min(len(body), 16)])
		}
	})

	// Corrupt record batches in otherwise valid Produce requests get the
	// right error code and are not stored.
	good1 := batchSpec{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: time.Now().UnixMilli(), Values: seqValues("x", 0, 5)}
	t.Run("batch-bad-crc", func(t *testing.T) {
		batch := good1.build()
		batch[len(batch)-3] ^= 0xff
		if _, code := rawProduce(t, cl, "bad", 0, batch); code != kerr.CorruptMessage.Code {
			t.Fatalf("bad CRC: error %v, want CORRUPT_MESSAGE", kerr.ErrorForCode(code))
		}
	})
	t.Run("batch-wrong-record-count", func(t *testing.T) {
		batch := good1.build()
		binary.BigEndian.PutUint32(batch[57:], 9)
		binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[21:], castagnoli))
		if _, code := rawProduce(t, cl, "bad", 0, batch); code != kerr.CorruptMessage.Code && code != kerr.InvalidRecord.Code {
			t.Fatalf("wrong record count: error %v, want CORRUPT_MESSAGE or INVALID_RECORD", kerr.ErrorForCode(code))
		}
	})
	t.Run("batch-length-beyond-data", func(t *testing.T) {
		batch := good1.build()
		binary.BigEndian.PutUint32(batch[8:], uint32(len(batch)+100))
		if _, code := rawProduce(t, cl, "bad", 0, batch); code == 0 {
			t.Fatalf("batch length beyond data accepted")
		}
	})
	t.Run("batch-bad-magic", func(t *testing.T) {
		batch := good1.build()
		batch[16] = 7
		if _, code := rawProduce(t, cl, "bad", 0, batch); code == 0 {
			t.Fatalf("magic 7 accepted")
		}
	})
	t.Run("batch-garbage", func(t *testing.T) {
		if _, code := rawProduce(t, cl, "bad", 0, []byte("this is not a record batch at all, not even close......")); code == 0 {
			t.Fatalf("garbage records accepted")
		}
	})

	// Still alive, still serving: the old connection, new clients, and the
	// log holds only the good records.
	if !b.Alive() {
		t.Fatalf("broker died")
	}
	if _, err := good.Write(frame(requestHeader(18, 0, 77))); err != nil {
		t.Fatalf("write on the healthy connection: %v", err)
	}
	_ = good.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(good, size[:]); err != nil {
		t.Fatalf("healthy connection got no ApiVersions response: %v", err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(good, resp); err != nil || int32(binary.BigEndian.Uint32(resp)) != 77 {
		t.Fatalf("healthy connection: bad ApiVersions response (err %v)", err)
	}
	produceSync(t, cl, "bad", 0, "after")
	checkRecords(t, consumePartition(t, b.Addr, "bad", 0, 0, 2, 20*time.Second), []string{"before", "after"}, 0)
	noMoreRecords(t, b.Addr, "bad", 0, 2, 300*time.Millisecond)

	rssAfter, err := rssBytes(b.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if grew := rssAfter - rssBefore; grew > 256<<20 {
		t.Errorf("broker RSS grew by %d MiB during bad input (from %d MiB to %d MiB)", grew>>20, rssBefore>>20, rssAfter>>20)
	}
}
