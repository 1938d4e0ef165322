package broker

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/record"
	"github.com/gregor-log/gregor/broker/wire"
)

// BenchmarkProduceRoundTrip measures one acks=1 produce request on one
// connection, from writing the frame to reading the response, with the
// broker in process: the per-request cost (syscalls, wake-ups, decoding,
// metrics, deadlines) and the per-record cost (validation, the append).
// The allocations reported are the broker's and the loop's together.
func BenchmarkProduceRoundTrip(b *testing.B) {
	for _, n := range []int{1, 500} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			br := startBroker(b, nil, "", nil)
			c, err := net.DialTimeout("tcp", br.Addr().String(), 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			clientID := "bench"
			value := make([]byte, 100)
			rb := record.NewBuilder()
			for range n {
				rb.Add(nil, value, nil, time.Now().UnixMilli())
			}
			req := kmsg.NewPtrProduceRequest()
			req.Version = 7
			req.Acks = 1
			req.TimeoutMillis = 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "bench"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Records = rb.Build()
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			frame := wire.AppendRequest(nil, req, 1, &clientID)
			resp := make([]byte, 0, 256)
			roundTrip := func() {
				if _, err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := wire.ReadFrame(c, resp, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
			roundTrip() // creates the topic
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				roundTrip()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
		})
	}
}
