package meta

import (
	"fmt"
	"testing"

	"github.com/gregor-log/gregor/internal/vfs"
)

// BenchmarkCreateTopicOneAtATime creates topics one request at a time, as
// Kafka's auto-creation does, in a store on the real file system that
// already holds 1,000 or 5,000 topics. Each op is one durable change
// (fsyncs included), so the figure depends on the disk.
func BenchmarkCreateTopicOneAtATime(b *testing.B) {
	for _, existing := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("topics=%d", existing), func(b *testing.B) {
			s, err := OpenStandalone(vfs.OS, b.TempDir(), Broker{ID: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ts := make([]Topic, existing)
			for i := range ts {
				ts[i] = Topic{Name: fmt.Sprintf("existing-topic-%05d", i), Partitions: 3}
				if ts[i].ID, err = NewTopicID(); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.CreateTopics(ts); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id, err := NewTopicID()
				if err != nil {
					b.Fatal(err)
				}
				if err := s.CreateTopic(Topic{Name: fmt.Sprintf("new-topic-%07d", i), ID: id, Partitions: 3}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
