package broker

// DescribeLogDirs (key 35), versions 0-4.
//
// The one log directory (the data dir) with the size on disk of each
// partition asked for (all of them when Topics is null); partitions that do
// not exist are left out, as Kafka does. From v4 it also carries the size
// of the volume and the bytes still available on it. OffsetLag is always 0
// and IsFuture false: there are no replica moves between directories.

import (
	"path/filepath"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/gregor-log/gregor/broker/meta"
	"github.com/gregor-log/gregor/broker/wire"
	"github.com/gregor-log/gregor/internal/vfs"
)

func init() {
	registerSimple(kmsg.DescribeLogDirs, 0, 4, (*Broker).handleDescribeLogDirs)
}

func (b *Broker) handleDescribeLogDirs(hdr wire.RequestHeader, req *kmsg.DescribeLogDirsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeLogDirsResponse()
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.DataDir
	if abs, err := filepath.Abs(b.cfg.DataDir); err == nil {
		dir.Dir = abs
	}
	if sr, ok := b.fs.(vfs.SpaceReporter); ok && hdr.APIVersion >= 4 {
		if total, avail, err := sr.Space(b.cfg.DataDir); err == nil {
			dir.TotalBytes, dir.UsableBytes = total, avail
		} else {
			b.log.Warn("volume size of the data dir", zap.Error(err))
		}
	}
	add := func(t meta.Topic, partitions []int32) {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.Name
		for _, p := range partitions {
			l := b.logs.Log(t.Name, p)
			if l == nil {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = p
			dp.Size = l.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	if req.Topics == nil {
		for _, t := range b.store.Topics() {
			all := make([]int32, t.Partitions)
			for i := range all {
				all[i] = int32(i)
			}
			add(t, all)
		}
	} else {
		for _, rt := range req.Topics {
			if t, ok := b.store.Topic(rt.Topic); ok {
				add(t, slices.Compact(slices.Sorted(slices.Values(rt.Partitions))))
			}
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp
}
