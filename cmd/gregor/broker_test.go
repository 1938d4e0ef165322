package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// writeBrokerFile writes a --config file in a test directory.
func writeBrokerFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrokerConfigPrecedence: the command line (flags and --set) wins over
// the file; within either, a property under Kafka's name wins over the
// flag of the same meaning.
func TestBrokerConfigPrecedence(t *testing.T) {
	tests := []struct {
		name   string
		file   string // "" for no --config
		args   []string
		wantNP int32
	}{
		{"default", "", nil, 1},
		{"flag", "", []string{"--num-partitions", "5"}, 5},
		{"set over flag", "", []string{"--num-partitions", "5", "--set", "num.partitions=7"}, 7},
		{"set over flag, either order", "", []string{"--set", "num.partitions=7", "--num-partitions", "5"}, 7},
		{"file key", "num-partitions: 3\n", nil, 3},
		{"file set over file key", "num-partitions: 3\nset: {num.partitions: \"2\"}\n", nil, 2},
		{"flag over file key", "num-partitions: 3\n", []string{"--num-partitions", "5"}, 5},
		{"flag over file set", "set: {num.partitions: \"2\"}\n", []string{"--num-partitions", "5"}, 5},
		{"set over file set", "set: {num.partitions: \"2\"}\n", []string{"--set", "num.partitions=6"}, 6},
		{"set over file key", "num-partitions: 3\n", []string{"--set", "num.partitions=6"}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeBrokerFile(t, tt.file)}, args...)
			}
			var stderr bytes.Buffer
			s, err := parseBrokerArgs(args, &stderr)
			if err != nil {
				t.Fatalf("%v (stderr %q)", err, stderr.String())
			}
			if s.cfg.NumPartitions != tt.wantNP {
				t.Errorf("num partitions %d, want %d", s.cfg.NumPartitions, tt.wantNP)
			}
		})
	}

	// The other flags and the other aliases follow the same rule.
	path := writeBrokerFile(t, "listen: 127.0.0.1:39001\ndata-dir: /from/file\nlog-level: warn\nbroker-id: 3\n"+
		"auto-create-topics: true\nset: {broker.id: \"4\", auto.create.topics.enable: \"true\", log.retention.ms: \"1000\"}\n")
	s, err := parseBrokerArgs([]string{"--config", path, "--listen", "127.0.0.1:39002", "--log-level", "debug",
		"--broker-id", "8", "--auto-create-topics=false"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Listen != "127.0.0.1:39002" || c.DataDir != "/from/file" || s.logLevel != zapcore.DebugLevel ||
		c.BrokerID != 8 || c.AutoCreateTopics || c.Props["log.retention.ms"] != "1000" {
		t.Errorf("got listen %s, data dir %s, level %v, broker id %d, auto create %v, props %v",
			c.Listen, c.DataDir, s.logLevel, c.BrokerID, c.AutoCreateTopics, c.Props)
	}
}

// TestBrokerConfigReportsEveryProblem: bad flag values, file problems, the
// log level and the broker's own checks come in one error, without the
// usage, and file problems name the file and line in plain words.
func TestBrokerConfigReportsEveryProblem(t *testing.T) {
	path := writeBrokerFile(t, "broker-id: abc\nfoo: 1\nnum-partitions: 1.5\nlog-level: loud\nset:\n  a: {b: 1}\nlisten: [x]\n")
	var stderr bytes.Buffer
	_, err := parseBrokerArgs([]string{"--config", path, "--set", "noequals", "--num-partitions", "abc",
		"--auto-create-topics=maybe", "--log-level", "louder", "--advertised-addr", "my host:0",
		"--set", "no.such.property=1", "--http-addr", "nocolon",
		"--set", "log.retention.ms=1", "--set", "log.retention.ms = 2"}, &stderr)
	var ue *usageError
	if !errors.As(err, &ue) || ue.reported {
		t.Fatalf("want an unreported usage error, got %v", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("the flag package printed %q; want nothing (no usage dump for bad values)", stderr.String())
	}
	msg := err.Error()
	for _, want := range []string{
		`--set "noequals": want key=value`,
		`--set log.retention.ms: given twice`,
		`--num-partitions "abc": not a 32-bit integer`,
		`--auto-create-topics "maybe": not true or false`,
		`--log-level "louder": want debug, info, warn or error`,
		path + `:1: broker-id: must be a whole number, got "abc"`,
		path + `:2: foo: unknown key (known: advertised-addr,`,
		path + `:3: num-partitions: must be a whole number, got "1.5"`,
		path + `:4: log-level: "loud": must be debug, info, warn or error`,
		path + `:6: set.a: must be a single value, got a mapping`,
		path + `:7: listen: must be a single value, got a list`,
		`advertised-addr: "my host:0": the host has white space in it`,
		`advertised-addr: "my host:0": bad port`,
		"no.such.property",
		`http-addr: "nocolon"`,
		"run gregor broker -h for the list of flags and properties",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	for _, leak := range []string{"main.", "config.", "int32", "!!", "unmarshal"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error mentions %q:\n%s", leak, msg)
		}
	}

	// A file that is not YAML stops there, naming the file and line.
	path = writeBrokerFile(t, "listen: \"a\n  b: : c")
	_, err = parseBrokerArgs([]string{"--config", path}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), path+": not valid YAML: line 2") {
		t.Errorf("bad YAML: %v", err)
	}
	// A syntax error of the flags themselves gets the usage.
	stderr.Reset()
	_, err = parseBrokerArgs([]string{"--no-such-flag"}, &stderr)
	if !errors.As(err, &ue) || !ue.reported || !strings.Contains(stderr.String(), "usage: gregor broker") {
		t.Errorf("unknown flag: %v, stderr %q", err, stderr.String())
	}
}

// TestBrokerFilePropertiesReportedWithLines: a set: property's problem
// names its file and line, also when another part of the file failed to
// decode (it was hidden until that was fixed), and only once.
func TestBrokerFilePropertiesReportedWithLines(t *testing.T) {
	for _, head := range []string{"", "listen: [x]\n"} {
		path := writeBrokerFile(t, head+"set:\n  log.segment.bytes: abc\n  bogus.property: \"1\"\n  log.retention.ms: \"60000\"\n")
		_, err := parseBrokerArgs([]string{"--config", path}, &bytes.Buffer{})
		if err == nil {
			t.Fatalf("%q: accepted", head)
		}
		msg := err.Error()
		line := 2
		if head != "" {
			line = 3
		}
		for _, want := range []string{
			fmt.Sprintf("%s:%d: broker property log.segment.bytes", path, line),
			fmt.Sprintf("%s:%d: property bogus.property: unknown broker property", path, line+1),
		} {
			if strings.Count(msg, want) != 1 {
				t.Errorf("%q: error does not say %q once:\n%s", head, want, msg)
			}
		}
		if strings.Count(msg, "bogus.property") != 1 || strings.Contains(msg, "retention") {
			t.Errorf("%q: a property reported twice, or a good one reported:\n%s", head, msg)
		}
	}
}

func TestBrokerAdvertisedAddrValidation(t *testing.T) {
	for addr, want := range map[string]string{
		"broker1.example.com:9092": "",
		"10.0.0.7:1":               "",
		"[::1]:65535":              "",
		"broker1:0":                "bad port",
		"broker1:65536":            "bad port",
		"broker1:x":                "bad port",
		"broker1":                  "missing port",
		":9092":                    "routable host",
		"0.0.0.0:9092":             "routable host",
		"bro ker:9092":             "white space",
	} {
		_, err := parseBrokerArgs([]string{"--advertised-addr", addr}, &bytes.Buffer{})
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", addr, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want an error saying %q", addr, err, want)
		}
	}
}

func TestDefaultAdvertisedAddr(t *testing.T) {
	host := func() (string, error) { return "broker7.example.com", nil }
	tests := []struct {
		listen  string
		want    string
		wantErr bool
	}{
		{"127.0.0.1:9092", "", false},
		{"10.1.2.3:9092", "", false},
		{"broker7:9092", "", false},
		{":9092", "broker7.example.com:9092", false},
		{"0.0.0.0:9092", "broker7.example.com:9092", false},
		{"[::]:9092", "broker7.example.com:9092", false},
		{"0.0.0.0:0", "", true}, // the port is not known yet
	}
	for _, tt := range tests {
		got, err := defaultAdvertisedAddr(tt.listen, host)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%q: %q, %v; want %q, error %v", tt.listen, got, err, tt.want, tt.wantErr)
		}
	}
	if got, err := defaultAdvertisedAddr(":9092", func() (string, error) { return "", errors.New("no name") }); got != "" || err == nil {
		t.Errorf("no host name: %q, %v", got, err)
	}
}

func TestBrokerHelp(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseBrokerArgs([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	help := stderr.String()
	for _, want := range []string{"-config file\n", "-advertised-addr host:port\n", "-num-partitions number\n",
		"Flags and --set on the command line win over the --config file",
		"a property under Kafka's name wins over the flag of the same meaning"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not say %q", want)
		}
	}
	if strings.Contains(help, "set:\n") {
		t.Errorf("help names a flag's value set:")
	}
}

// TestBrokerHTTPAddrInUse: a taken --http-addr fails the start before the
// data dir is created.
func TestBrokerHTTPAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	err = runBroker(t.Context(), []string{"--listen", "127.0.0.1:0", "--http-addr", ln.Addr().String(),
		"--data-dir", dataDir, "--log-level", "error"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "listen http on "+ln.Addr().String()) {
		t.Fatalf("got %v, want an error naming the http address", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir created (stat: %v)", err)
	}
}
