package main

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRecordFormat(t *testing.T) {
	r := &kgo.Record{
		Topic:     "orders",
		Partition: 3,
		Offset:    42,
		Key:       []byte("k1"),
		Value:     []byte("hello"),
		Timestamp: time.UnixMilli(1700000000123),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
	}
	tests := []struct {
		tmpl, want string
	}{
		{`%s\n`, "hello\n"},
		{`%v\n`, "hello\n"},
		{`%k=%s`, "k1=hello"},
		{`%t/%p@%o`, "orders/3@42"},
		{`%T`, "1700000000123"},
		{`%K %S`, "2 5"},
		{`%R`, "\x00\x00\x00\x05"},
		{`\x41\x7e%s`, "A~hello"},
		{`[%h]`, "[a=1,b=2]"},
		{`100%% \t\\ \r\0`, "100% \t\\ \r\x00"},
		{`plain`, "plain"},
		{``, ""},
	}
	for _, tt := range tests {
		f, err := parseRecordFormat(tt.tmpl)
		if err != nil {
			t.Fatalf("parse %q: %v", tt.tmpl, err)
		}
		if got := string(f.appendRecord(nil, r)); got != tt.want {
			t.Errorf("format %q = %q, want %q", tt.tmpl, got, tt.want)
		}
	}

	// A null key and no headers print as nothing; null lengths are -1,
	// empty ones 0.
	f, _ := parseRecordFormat(`<%k|%h|%v>`)
	if got := string(f.appendRecord(nil, &kgo.Record{Value: []byte("v")})); got != "<||v>" {
		t.Errorf("null key: got %q", got)
	}
	lens, _ := parseRecordFormat(`%K %S`)
	if got := string(lens.appendRecord(nil, &kgo.Record{Value: []byte{}})); got != "-1 0" {
		t.Errorf("null key, empty value lengths: got %q", got)
	}
	// appendRecord appends.
	if got := string(f.appendRecord([]byte("x"), &kgo.Record{})); got != "x<||>" {
		t.Errorf("append: got %q", got)
	}
}

func TestRecordFormatErrors(t *testing.T) {
	for _, tmpl := range []string{`%`, `\`, `%x`, `\q`, `abc%`, `\x4`, `\xzz`} {
		if _, err := parseRecordFormat(tmpl); !errors.Is(err, errBadFormat) {
			t.Errorf("parse %q: err = %v, want errBadFormat", tmpl, err)
		}
	}
}

func TestParseStartSpec(t *testing.T) {
	tests := []struct {
		in   string
		want startSpec
	}{
		{"beginning", startSpec{kind: startBeginning}},
		{"earliest", startSpec{kind: startBeginning}},
		{"END", startSpec{kind: startEnd}},
		{"latest", startSpec{kind: startEnd}},
		{"0", startSpec{kind: startOffset, n: 0}},
		{"12345", startSpec{kind: startOffset, n: 12345}},
		{"@1700000000000", startSpec{kind: startTimestamp, n: 1700000000000}},
		{"-10", startSpec{kind: startLastN, n: 10}},
	}
	for _, tt := range tests {
		got, err := parseStartSpec(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseStartSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "@", "-", "@-5", "--5", "+5", "-+5", "1.5", "@x", "99999999999999999999"} {
		if _, err := parseStartSpec(bad); !errors.Is(err, errBadFrom) {
			t.Errorf("parseStartSpec(%q): err = %v, want errBadFrom", bad, err)
		}
	}
}

func TestStartSpecResolve(t *testing.T) {
	const earliest, latest = 100, 200
	tests := []struct {
		spec        string
		byTimestamp int64
		want        int64
	}{
		{"beginning", -1, 100},
		{"end", -1, 200},
		{"150", -1, 150},
		{"50", -1, 100},  // below the log start: clamped
		{"500", -1, 200}, // past the end: clamped
		{"@5", 130, 130},
		{"@5", -1, 200}, // no record that late: the end
		{"-10", -1, 190},
		{"-0", -1, 200},
		{"-1000", -1, 100}, // more than there is: everything
	}
	for _, tt := range tests {
		spec, err := parseStartSpec(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.resolve(earliest, latest, tt.byTimestamp); got != tt.want {
			t.Errorf("%s.resolve(byTimestamp %d) = %d, want %d", tt.spec, tt.byTimestamp, got, tt.want)
		}
	}
	if s, _ := parseStartSpec("@5"); !s.needsTimestampLookup() {
		t.Error("timestamp spec must need a lookup")
	}
}

func TestRecordFormatNull(t *testing.T) {
	f, err := parseRecordFormat(`[%k][%v][%h]`)
	if err != nil {
		t.Fatal(err)
	}
	null := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte{}}, {Key: "h2"}}}
	empty := &kgo.Record{Key: []byte{}, Value: []byte{}}
	// Without -Z null and empty keys and values look alike; a null header
	// value is NULL, as kcat prints it.
	if got := string(f.appendRecord(nil, null)); got != "[][][h1=,h2=NULL]" {
		t.Errorf("null: %q", got)
	}
	if got := string(f.appendRecord(nil, empty)); got != "[][][]" {
		t.Errorf("empty: %q", got)
	}
	f.null = []byte("NULL") // consume -Z
	if got := string(f.appendRecord(nil, null)); got != "[NULL][NULL][h1=,h2=NULL]" {
		t.Errorf("-Z null: %q", got)
	}
	if got := string(f.appendRecord(nil, empty)); got != "[][][]" {
		t.Errorf("-Z empty: %q", got)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		``:       ``,
		`:`:      `:`,
		`\t`:     "\t",
		`a\tb`:   "a\tb",
		`\\`:     `\`,
		`\r\0\n`: "\r\x00\n",
		`|\\|`:   `|\|`,
		`\x1f`:   "\x1f",
	} {
		if got, err := unescape(in); err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `a\`, `\x`, `\|`} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}
