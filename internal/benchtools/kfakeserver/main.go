// Command kfakeserver runs franz-go's kfake Kafka cluster as its own
// process, so `make bench` can drive it with the same client workload as the
// gregor broker and measure its CPU separately. It is a benchmark baseline
// only, not part of the product.
//
// Usage:
//
//	kfakeserver --port 9092 [--data-dir DIR] [--topics a,b --partitions 4]
//
// It prints "ready <addr>" on stdout once it listens and exits on SIGTERM or
// SIGINT after closing the cluster (which flushes DataDir state).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "kfakeserver: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 9092, "port to listen on (127.0.0.1)")
	dataDir := flag.String("data-dir", "", "persist to this directory (kfake.DataDir); empty keeps everything in memory")
	partitions := flag.Int("partitions", 1, "partitions for --topics and for auto-created topics")
	topics := flag.String("topics", "", "comma-separated topics to create at startup")
	syncWrites := flag.Bool("sync", false, "fsync every write (kfake.SyncWrites)")
	flag.Parse()

	if *partitions < 1 {
		return fmt.Errorf("--partitions must be at least 1, got %d", *partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
	}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}

	// Subscribe before listening so a SIGTERM right after "ready" is not lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake cluster: %w", err)
	}
	fmt.Printf("ready %s\n", strings.Join(c.ListenAddrs(), ","))

	<-sigs
	c.Close()
	return nil
}
