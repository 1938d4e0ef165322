package broker

// DescribeCluster (key 60), versions 0-1.
//
// The cluster id, the controller and the live brokers. Only the BROKERS
// endpoint type (1) exists; a request for controller endpoints gets
// UNSUPPORTED_ENDPOINT_TYPE. Authorized operations, when asked for, are
// every cluster operation (see clusterOperations).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-log/gregor/broker/wire"
)

func init() {
	registerSimple(kmsg.DescribeCluster, 0, 1, (*Broker).handleDescribeCluster)
}

func (b *Broker) handleDescribeCluster(hdr wire.RequestHeader, req *kmsg.DescribeClusterRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.EndpointType = 1
	if hdr.APIVersion >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOperations
	}
	resp.ClusterID = b.store.ClusterID()
	resp.ControllerID = b.store.ControllerID()
	for _, br := range b.store.Brokers() {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.ID, br.Host, br.Port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	return resp
}
