package broker

// ElectLeaders (key 43), versions 0-2.
//
// Asks for a preferred (or, v1+, unclean) leader election (KIP-183,
// KIP-460), as kafka-leader-election.sh, librdkafka's and kadm's admin
// clients do. A standalone broker leads every partition and is every
// partition's only, preferred replica, so no election is ever needed:
// each partition named is ELECTION_NOT_NEEDED, as Kafka answers for a
// partition already led by its preferred replica, and one that does not
// exist is UNKNOWN_TOPIC_OR_PARTITION. A null partition list (every
// partition) has nothing to elect and gets an empty answer, as from
// Kafka when every leader is preferred. An election type (v1+) other than
// preferred (0) or unclean (1) is INVALID_REQUEST.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.ElectLeaders, 0, 2, (*Broker).handleElectLeaders)
}

func (b *Broker) handleElectLeaders(_ wire.RequestHeader, req *kmsg.ElectLeadersRequest) kmsg.Response {
	resp := kmsg.NewPtrElectLeadersResponse()
	if req.ElectionType != 0 && req.ElectionType != 1 {
		// Only v1+ carries a type (v0 elections are preferred ones), and
		// has the top-level error for it.
		resp.ErrorCode = kerr.InvalidRequest.Code
		b.metrics.countError("ElectLeaders", resp.ErrorCode)
		return resp
	}
	for _, rt := range req.Topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = p
			if _, c := b.partitionLog(rt.Topic, p); c != 0 {
				sp.ErrorCode = c
			} else {
				sp.ErrorCode = kerr.ElectionNotNeeded.Code
				sp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("%s-%d is already led by its preferred replica, broker %d, its only replica", rt.Topic, p, b.cfg.BrokerID))
			}
			if sp.ErrorCode != kerr.ElectionNotNeeded.Code {
				b.metrics.countError("ElectLeaders", sp.ErrorCode)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
