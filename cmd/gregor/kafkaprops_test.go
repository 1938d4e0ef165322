package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	in := "# comment\n! also a comment\n\n  a=1\nb : two words \nc 3\nd=\ne=x=y\nlong=first,\\\n   second\nlast\n"
	got := parseProperties([]byte(in))
	want := []propLine{
		{"a", "1", 4}, {"b", "two words", 5}, {"c", "3", 6}, {"d", "", 7},
		{"e", "x=y", 8}, {"long", "first,second", 9}, {"last", "", 11},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// A Kafka server.properties, KRaft or ZooKeeper style, starts a broker:
// listeners, advertised.listeners, log.dirs and node.id set the flags of
// the same meaning, the properties that mean nothing here are ignored
// (and named), the rest are properties; the command line still wins.
func TestKafkaPropertiesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kraft := write("kraft.properties", `process.roles=broker,controller
node.id=4
controller.quorum.voters=4@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://kafka-1.example:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
log.dirs=`+filepath.Join(dir, "data")+`
num.partitions=3
log.retention.hours=24
log.flush.interval.ms=9223372036854775807
`)
	s, err := parseBrokerArgs([]string{"--config", kraft}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Listen != ":9092" || c.AdvertisedAddr != "kafka-1.example:9092" || c.DataDir != filepath.Join(dir, "data") || c.BrokerID != 4 || c.NumPartitions != 3 {
		t.Fatalf("config %+v", c)
	}
	if c.Props["log.retention.hours"] != "24" || c.Props["log.flush.interval.ms"] != "9223372036854775807" {
		t.Fatalf("properties %v", c.Props)
	}
	for _, k := range []string{"process.roles", "num.network.threads", "listener.security.protocol.map"} {
		if !slices.Contains(s.ignored, k) {
			t.Errorf("%s not among the ignored %v", k, s.ignored)
		}
	}
	s, err = parseBrokerArgs([]string{"--config", kraft, "--listen", "127.0.0.1:39001"}, &bytes.Buffer{})
	if err != nil || s.cfg.Listen != "127.0.0.1:39001" {
		t.Fatalf("command line over the file: %v, %q", err, s.cfg.Listen)
	}

	zk := write("zk.properties", "broker.id=2\nzookeeper.connect=localhost:2181\nlisteners=PLAINTEXT://127.0.0.1:9094\nlog.dir="+dir+"\n")
	s, err = parseBrokerArgs([]string{"--config", zk}, &bytes.Buffer{})
	if err != nil || s.cfg.BrokerID != 2 || s.cfg.Listen != "127.0.0.1:9094" || s.cfg.DataDir != dir {
		t.Fatalf("ZooKeeper-style file: %v, %+v", err, s.cfg)
	}

	// Every problem at once, each with its line.
	bad := write("bad.properties", "listeners=SSL://:9093\nlog.dirs=/a,/b\nbogus.property=1\nsocket.request.max.bytes=9223372036854775807\ndelete.topic.enable=false\ndelete.topic.enable=true\n")
	_, err = parseBrokerArgs([]string{"--config", bad}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("a bad file accepted")
	}
	for _, want := range []string{
		"bad.properties:1: property listeners: listener SSL speaks SSL; gregor serves PLAINTEXT only",
		"bad.properties:2: property log.dirs: \"/a,/b\" names several directories",
		"bad.properties:3: property bogus.property: unknown broker property",
		"bad.properties:4: property socket.request.max.bytes=\"9223372036854775807\": must be at most 2147483647",
		"bad.properties:6: property delete.topic.enable: given again (first on line 5)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

func TestPlaintextListener(t *testing.T) {
	for _, c := range []struct {
		list string
		all  map[string]string
		want string // "" for an error
	}{
		{"PLAINTEXT://host:1", nil, "host:1"},
		{"INTERNAL://h:1,EXTERNAL://h:2", map[string]string{"inter.broker.listener.name": "EXTERNAL", "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT"}, "h:2"},
		{"CLIENTS://h:1", map[string]string{"listener.security.protocol.map": "CLIENTS:PLAINTEXT"}, "h:1"},
		{"CLIENTS://h:1", map[string]string{"listener.security.protocol.map": "CLIENTS:SASL_SSL"}, ""},
		{"A://h:1,B://h:2", nil, ""},
		{"PLAINTEXT://nohostport", nil, ""},
		{"plaintext://[::1]:9092", nil, "[::1]:9092"},
	} {
		got, err := plaintextListener(c.list, c.all)
		if (c.want == "") != (err != nil) || got != c.want {
			t.Errorf("%q %v: %q, %v; want %q", c.list, c.all, got, err, c.want)
		}
	}
}
