package broker

// CreatePartitions (key 37), versions 0-3.
//
// Grows a topic to Count partitions (shrinking is INVALID_PARTITIONS).
// Manual assignments may only name this broker, and there must be one per
// partition added (INVALID_REPLICA_ASSIGNMENT otherwise). A topic named
// more than once in the request is not grown and is answered once, with
// INVALID_REQUEST, as in Kafka. ValidateOnly checks and changes nothing.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.CreatePartitions, 0, 3, (*Broker).handleCreatePartitions)
}

func (b *Broker) handleCreatePartitions(_ wire.RequestHeader, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	named := map[string]int{}
	for _, rt := range req.Topics {
		named[rt.Topic]++
	}
	for _, rt := range req.Topics {
		if named[rt.Topic] < 0 {
			continue // a name given more than once is answered once, as in Kafka
		}
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var err error
		if named[rt.Topic] > 1 {
			err = fmt.Errorf("topic %q is named more than once in the request: %w", rt.Topic, kerr.InvalidRequest)
			named[rt.Topic] = -1
		}
		for _, a := range rt.Assignment {
			if rerr := b.checkReplicas(a.Replicas); rerr != nil {
				err = fmt.Errorf("assignment: %w", rerr)
			}
		}
		if err == nil {
			assignments := -1 // null: the broker assigns
			if rt.Assignment != nil {
				assignments = len(rt.Assignment)
			}
			err = b.growTopic(rt.Topic, rt.Count, assignments, req.ValidateOnly)
		}
		if err != nil {
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			b.metrics.countError("CreatePartitions", st.ErrorCode)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
