package tmpdeps

import (
	_ "github.com/IBM/sarama"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/klauspost/compress/s2"
	_ "github.com/klauspost/compress/gzip"
	_ "github.com/pierrec/lz4/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/pkg/kmsg"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "gopkg.in/yaml.v3"
	_ "github.com/klauspost/compress/snappy"
)
