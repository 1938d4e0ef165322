package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gregor-log/gregor/appender"
)

func TestParseValid(t *testing.T) {
	const src = `
brokers: [127.0.0.1:9092, "127.0.0.1:9093"]
broker:
  listen: 127.0.0.1:9092
  set: {log.retention.ms: "3600000"}
agents:
  - name: web
    http-addr: 127.0.0.1:9645
    rescan-interval: 2s
    producer:
      compression: lz4
      max-in-flight-bytes: 8MiB
    inputs:
      - paths: ["./logs/*.log"]
        exclude: ["*.gz"]
        topic: app-logs
        key: path
      - paths: [/var/log/app/*.json]
        topic: json-logs
        parser: {type: json}
        key: field:user
        fields: {service: web, env: prod}
        max-line-bytes: 64KiB
      - paths: [/var/log/app/*.txt]
        topic: re-logs
        parser:
          type: regex
          pattern: '^(?P<ts>\S+) (?P<level>\S+) (?P<msg>.*)$'
        key: field:level
        multiline: {start: '^\d{4}-'}
  - inputs:
      - paths: [x.log]
        topic: t
appender:
  topic: app
`
	p, err := Parse("pipeline.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(p.Brokers) != 2 || p.Broker == nil || p.Broker.Set["log.retention.ms"] != "3600000" {
		t.Fatalf("top level: %+v", p)
	}
	a := p.Agents[0]
	if a.Name != "web" || a.RescanInterval != 2*time.Second || a.PollInterval != DefaultPollInterval ||
		a.DataDir != DefaultDataDir("web") || a.Producer.Compression != "lz4" || a.Producer.Acks != "all" ||
		a.Producer.MaxInFlightBytes != 8<<20 || a.Producer.BatchMaxBytes != DefaultBatchMaxBytes {
		t.Fatalf("agent 0: %+v", a)
	}
	if len(a.Brokers) != 2 {
		t.Fatalf("agent brokers not defaulted from top level: %v", a.Brokers)
	}
	in := a.Inputs[0]
	if in.Parser.Type != ParserRaw || in.Key != "path" || in.MaxLineBytes != DefaultMaxLineBytes || in.Multiline != nil {
		t.Fatalf("input 0: %+v", in)
	}
	if a.Inputs[1].MaxLineBytes != 64<<10 || a.Inputs[1].Fields["env"] != "prod" {
		t.Fatalf("input 1: %+v", a.Inputs[1])
	}
	m := a.Inputs[2].Multiline
	if m == nil || m.MaxLines != DefaultMultilineMaxLines || m.FlushTimeout != DefaultMultilineFlush {
		t.Fatalf("multiline defaults: %+v", m)
	}
	if p.Agents[1].Name != "agent-1" {
		t.Fatalf("second agent's default name: %q", p.Agents[1].Name)
	}
	if p.Appender == nil || p.Appender.Topic != "app" || p.Appender.Compression != appender.DefaultConfig().Compression || len(p.Appender.Brokers) != 2 {
		t.Fatalf("appender: %+v", p.Appender)
	}
}

func TestParseEmptyAndAbsentSections(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "brokers: [h:1]\n"} {
		p, err := Parse("p.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if p.Appender != nil || p.Broker != nil || len(p.Agents) != 0 || len(p.Brokers) != 1 {
			t.Fatalf("%q: %+v", src, p)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // substrings, each must appear in the error
	}{
		{"not yaml", "agents: [", []string{"p.yaml: not valid YAML"}},
		{"two documents", "brokers: [a:1]\n---\nbrokers: [b:2]\n", []string{"more than one YAML document"}},
		{"unknown top-level key", "brokerz: [a:1]\n", []string{"p.yaml:1: brokerz: unknown key"}},
		{"unknown nested key", `
agents:
  - inputs:
      - paths: [a]
        topic: t
        multilne: {start: x}
`, []string{"p.yaml:6: agents[0].inputs[0].multilne: unknown key"}},
		{"wrong type", `
agents:
  - rescan-interval: 5
    inputs: [{paths: [a], topic: t}]
`, []string{`p.yaml:3: agents[0].rescan-interval: must be a duration such as "5s" or "1m30s", got "5"`}},
		{"list expected", "brokers: a:1\n", []string{"brokers: must be a list"}},
		{"fraction into an integer", "broker:\n  num-partitions: 1.5\n", []string{`p.yaml:2: broker.num-partitions: must be a whole number, got "1.5"`}},
		{"bad byte size", `
agents:
  - producer: {max-in-flight-bytes: lots}
    inputs: [{paths: [a], topic: t}]
`, []string{"agents[0].producer.max-in-flight-bytes", "byte count"}},
		{"bad regexp and missing topic, reported together", `
agents:
  - inputs:
      - paths: [a]
        topic: t
      - paths: [b]
        multiline: {start: "[a-"}
`, []string{
			"p.yaml: agents[0].inputs[1].topic: required",
			"p.yaml: agents[0].inputs[1].multiline.start: invalid regexp: missing closing ]: `[a-`",
		}},
		{"semantic problems", `
brokers: [nohostport]
agents:
  - name: "bad name"
    producer: {acks: some, compression: brotli, batch-max-bytes: 1MiB}
    inputs:
      - paths: ["[a"]
        topic: "bad topic"
        key: field:user
      - paths: [a]
        topic: t
        parser: {type: regex, pattern: '^(\S+)$'}
      - paths: [a]
        topic: t
        parser: {type: regex, pattern: '^(?P<a>\S+)$'}
        key: field:b
        max-line-bytes: 2MiB
        multiline: {start: a, continuation: b, max-lines: -1}
      - paths: [a]
        topic: t
        parser: {type: xml}
        key: hash
  - name: "bad name"
    inputs: []
`, []string{
			`brokers[0]: "nohostport" is not host:port`,
			`agents[0].name: "bad name": only letters`,
			`agents[0].producer.acks: must be all, 1 or 0`,
			`agents[0].producer.compression: must be none, gzip, snappy, lz4 or zstd, got "brotli"`,
			`agents[0].inputs[0].paths[0]: bad glob pattern "[a"`,
			`agents[0].inputs[0].topic: topic name "bad topic" has character ' '`,
			`agents[0].inputs[0].key: "field:user" needs the json or regex parser`,
			`agents[0].inputs[1].parser.pattern: has no named group`,
			`agents[0].inputs[2].key: "field:b": the parser pattern has no group named "b" (it has a)`,
			`agents[0].inputs[2].max-line-bytes: 2097152 does not fit a batch`,
			`agents[0].inputs[2].multiline: set only one of start and continuation`,
			`agents[0].inputs[2].multiline.max-lines: must be at least 1`,
			`agents[0].inputs[3].parser.type: must be raw, json or regex, got "xml"`,
			`agents[0].inputs[3].key: "hash": must be none, path or field:NAME`,
			`agents[1].name: "bad name" is also the name of agents[0]`,
			`agents[1].data-dir:`,
			`agents[1].inputs: at least one input is required`,
		}},
		{"appender problems are prefixed", `
appender:
  on-full: sometimes
`, []string{"appender.topic: required", `appender.on-full: must be drop, block or spill, got "sometimes"`}},
		{"duplicate http addr", `
agents:
  - name: a
    http-addr: 127.0.0.1:9645
    inputs: [{paths: [a], topic: t}]
  - name: b
    http-addr: 127.0.0.1:9645
    inputs: [{paths: [a], topic: t}]
`, []string{`agents[1].http-addr: "127.0.0.1:9645" is also the http-addr of agents[0]`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *config.Error: %v", err, err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte("agents:\n  - inputs: [{paths: [a], topic: t}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil || len(p.Agents) != 1 {
		t.Fatalf("Load: %v %+v", err, p)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

// TestRepoPipelineYAML keeps the example at the repository root valid.
func TestRepoPipelineYAML(t *testing.T) {
	p, err := Load(filepath.Join("..", "..", "pipeline.yaml"))
	if err != nil {
		t.Fatalf("pipeline.yaml: %v", err)
	}
	if len(p.Agents) == 0 {
		t.Fatal("pipeline.yaml has no agents")
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "512": 512, "64KiB": 64 << 10, "16 MiB": 16 << 20, "1MB": 1000000, "2gib": 2 << 30, "3b": 3} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "1 TB", "99999999999999999999"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", in)
		}
	}
	if s := ByteSize(16 << 20).String(); s != "16MiB" {
		t.Errorf("String: %s", s)
	}
}

func TestParseKey(t *testing.T) {
	for in, want := range map[string]KeyKind{"": KeyNone, "none": KeyNone, "path": KeyPath, "field:x": KeyField} {
		k, _, err := ParseKey(in)
		if err != nil || k != want {
			t.Errorf("ParseKey(%q) = %v, %v", in, k, err)
		}
	}
	if _, _, err := ParseKey("field:"); !errors.Is(err, ErrBadKey) {
		t.Errorf("ParseKey(field:) = %v", err)
	}
}

// TestDecodeStrict: the broker's --config file is decoded by the same
// checker as pipeline.yaml; every problem comes back in plain words, with
// its line and key, and the target is left untouched.
func TestDecodeStrict(t *testing.T) {
	src := "broker-id: abc\nfoo: 1\nnum-partitions: 1.5\nlog-level: loud\nset:\n  a: {b: 1}\n" +
		"listen: [x]\nauto-create-topics: maybe\nbroker-id: 2\nset2: 1\nhttp-addr: 1\n" +
		"advertised-addr: x:1\n"
	keep := "kept"
	b := Broker{Listen: &keep}
	err := DecodeStrict("b.yaml", []byte(src+"num-partitions: 99999999999\n"), &b)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *Error", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`b.yaml:1: broker-id: must be a whole number, got "abc"`,
		`b.yaml:2: foo: unknown key (known: advertised-addr, auto-create-topics, broker-id, data-dir, http-addr, listen, log-level, num-partitions, set)`,
		`b.yaml:3: num-partitions: must be a whole number, got "1.5"`,
		`b.yaml:4: log-level: "loud": must be debug, info, warn or error`,
		`b.yaml:6: set.a: must be a single value, got a mapping`,
		`b.yaml:7: listen: must be a single value, got a list`,
		`b.yaml:8: auto-create-topics: must be true or false, got "maybe"`,
		`b.yaml:9: broker-id: given again (first on line 1)`,
		`b.yaml:10: set2: unknown key`,
		`b.yaml:13: num-partitions: given again (first on line 3)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
	if n := len(ce.Errors()); n != len(ce.Problems) || n != 10 {
		t.Errorf("%d errors for %d problems, want 10:\n%s", n, len(ce.Problems), msg)
	}
	for _, leak := range []string{"int32", "!!", "unmarshal", "config."} {
		if strings.Contains(msg, leak) {
			t.Errorf("error mentions %q:\n%s", leak, msg)
		}
	}
	if b.Listen != &keep || b.BrokerID != nil {
		t.Errorf("a failed decode changed the target: %+v", b)
	}
	err = DecodeStrict("b.yaml", []byte("num-partitions: 99999999999\n"), &b)
	if err == nil || !strings.Contains(err.Error(), `b.yaml:1: num-partitions: must be a whole number from -2147483648 to 2147483647, got "99999999999"`) {
		t.Errorf("out of range: %v", err)
	}

	// A good file: absent keys stay nil, an empty string is kept.
	b = Broker{}
	if err := DecodeStrict("b.yaml", []byte("http-addr: \"\"\nbroker-id: 7\nlog-level: WARN\nset: {log.retention.ms: 1000, x: null}\n"), &b); err != nil {
		t.Fatal(err)
	}
	if b.HTTPAddr == nil || *b.HTTPAddr != "" || b.Listen != nil || *b.BrokerID != 7 || *b.LogLevel != "warn" ||
		b.Set["log.retention.ms"] != "1000" || b.Set["x"] != "" {
		t.Errorf("decoded %+v", b)
	}
	// Empty files and null documents decode to nothing; two documents,
	// or something that is not YAML, are refused.
	for _, src := range []string{"", "# nothing\n", "~\n"} {
		b = Broker{}
		if err := DecodeStrict("b.yaml", []byte(src), &b); err != nil || b.BrokerID != nil {
			t.Errorf("%q: %v, %+v", src, err, b)
		}
	}
	for src, want := range map[string]string{
		"listen: a\n---\nlisten: b\n": "b.yaml:2: more than one YAML document",
		"listen: \"a\n  b: : c":       "b.yaml: not valid YAML: line 2",
		"- a\n":                       "b.yaml:1: must be a mapping, got a list",
	} {
		if err := DecodeStrict("b.yaml", []byte(src), &b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
