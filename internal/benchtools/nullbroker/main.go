// Command nullbroker is a benchmark reference, not a broker: it speaks just
// enough of the Kafka protocol (ApiVersions, Metadata, CreateTopics and
// Produce) for `gregor perf produce` and acknowledges every produce at once
// without checking, storing or copying the records. The records/s a client
// reaches against it is what that client gets from a broker that costs
// nothing (about the most any broker can get out of it on this machine;
// not a strict bound, since sooner answers make the client send smaller
// requests): `make bench` runs it beside gregor and kfake(DataDir).
//
// Usage:
//
//	nullbroker --port 9092
//
// It prints "ready <addr>" once it listens and exits on SIGTERM or SIGINT.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	port := flag.Int("port", 9092, "port to listen on (127.0.0.1)")
	flag.Parse()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "nullbroker: %v\n", err)
		os.Exit(1)
	}
	s := &server{port: int32(*port), topics: map[string]*topic{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sigs
		ln.Close()
	}()
	fmt.Printf("ready %s\n", ln.Addr())
	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if err := s.serve(c); err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintf(os.Stderr, "nullbroker: %s: %v\n", c.RemoteAddr(), err)
			}
		}()
	}
	s.closeAll()
	wg.Wait()
}

type topic struct {
	mu   sync.Mutex
	next []int64 // next offset per partition
}

type server struct {
	port   int32
	mu     sync.Mutex
	topics map[string]*topic
	conns  []net.Conn
}

func (s *server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

func (s *server) serve(c net.Conn) error {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	r := bufio.NewReaderSize(c, 1<<16)
	var frame []byte
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return err
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 8 || n > 256<<20 {
			return fmt.Errorf("frame of %d bytes", n)
		}
		if cap(frame) < int(n) {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			return err
		}
		out, err := s.handle(frame)
		if err != nil {
			return err
		}
		if out == nil {
			continue
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

// handle answers one request frame (without its size), or returns nil for
// an acks=0 produce.
func (s *server) handle(frame []byte) ([]byte, error) {
	key := int16(binary.BigEndian.Uint16(frame))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := int32(binary.BigEndian.Uint32(frame[4:]))
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, fmt.Errorf("api key %d", key)
	}
	req.SetVersion(version)
	body := frame[8:]
	// client id: a nullable int16-length string
	if len(body) < 2 {
		return nil, errors.New("short header")
	}
	if l := int16(binary.BigEndian.Uint16(body)); l > 0 {
		body = body[2+int(l):]
	} else {
		body = body[2:]
	}
	if req.IsFlexible() {
		// tagged fields of the header: assume none (franz-go sends none)
		body = body[1:]
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp = s.apiVersions(r)
	case *kmsg.MetadataRequest:
		resp = s.metadata(r)
	case *kmsg.CreateTopicsRequest:
		resp = s.createTopics(r)
	case *kmsg.ProduceRequest:
		if r.Acks == 0 {
			s.produce(r)
			return nil, nil
		}
		resp = s.produce(r)
	default:
		return nil, fmt.Errorf("unsupported request %s", kmsg.NameForKey(key))
	}
	resp.SetVersion(version)
	out := binary.BigEndian.AppendUint32(make([]byte, 4, 64), uint32(corr))
	if resp.IsFlexible() && key != int16(kmsg.ApiVersions) {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, nil
}

func (s *server) apiVersions(*kmsg.ApiVersionsRequest) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	for _, k := range []struct {
		key      kmsg.Key
		min, max int16
	}{{kmsg.ApiVersions, 0, 3}, {kmsg.Metadata, 0, 12}, {kmsg.CreateTopics, 0, 7}, {kmsg.Produce, 3, 9}} {
		v := kmsg.NewApiVersionsResponseApiKey()
		v.ApiKey, v.MinVersion, v.MaxVersion = int16(k.key), k.min, k.max
		resp.ApiKeys = append(resp.ApiKeys, v)
	}
	return resp
}

func (s *server) metadata(req *kmsg.MetadataRequest) kmsg.Response {
	resp := kmsg.NewPtrMetadataResponse()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 0, "127.0.0.1", s.port
	resp.Brokers = append(resp.Brokers, b)
	resp.ControllerID = 0
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	if req.Topics == nil {
		for name := range s.topics {
			names = append(names, name)
		}
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		t, ok := s.topics[name]
		if !ok {
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
		} else {
			for p := range t.next {
				rp := kmsg.NewMetadataResponseTopicPartition()
				rp.Partition, rp.Leader, rp.Replicas, rp.ISR = int32(p), 0, []int32{0}, []int32{0}
				rt.Partitions = append(rt.Partitions, rp)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *server) createTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rt := range req.Topics {
		t := kmsg.NewCreateTopicsResponseTopic()
		t.Topic = rt.Topic
		switch _, ok := s.topics[rt.Topic]; {
		case ok:
			t.ErrorCode = kerr.TopicAlreadyExists.Code
		case rt.NumPartitions < 1:
			t.ErrorCode = kerr.InvalidPartitions.Code
		default:
			s.topics[rt.Topic] = &topic{next: make([]int64, rt.NumPartitions)}
			t.NumPartitions, t.ReplicationFactor = rt.NumPartitions, 1
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// produce acknowledges every partition's batches at the next offsets,
// counting records from the batch headers and nothing else.
func (s *server) produce(req *kmsg.ProduceRequest) kmsg.Response {
	resp := kmsg.NewPtrProduceResponse()
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		s.mu.Lock()
		tp := s.topics[rt.Topic]
		s.mu.Unlock()
		for _, rp := range rt.Partitions {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition = rp.Partition
			if tp == nil || rp.Partition < 0 || int(rp.Partition) >= len(tp.next) {
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				t.Partitions = append(t.Partitions, p)
				continue
			}
			var records int64
			for b := rp.Records; len(b) >= 61; {
				size := int(int32(binary.BigEndian.Uint32(b[8:]))) + 12
				if size < 61 || size > len(b) {
					break
				}
				records += int64(int32(binary.BigEndian.Uint32(b[57:])))
				b = b[size:]
			}
			tp.mu.Lock()
			p.BaseOffset = tp.next[rp.Partition]
			tp.next[rp.Partition] += records
			tp.mu.Unlock()
			p.LogAppendTime, p.LogStartOffset = -1, 0
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}
