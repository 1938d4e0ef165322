package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantN   int
	}{
		{[]string{"NAME", "--n", "3"}, []string{"NAME"}, 3},
		{[]string{"--n", "3", "NAME"}, []string{"NAME"}, 3},
		{[]string{"A", "-n=4", "B"}, []string{"A", "B"}, 4},
		{[]string{"--", "-n", "5"}, []string{"-n", "5"}, 1},
		{[]string{"A", "--", "--n=7"}, []string{"A", "--n=7"}, 1},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		n := fs.Int("n", 1, "")
		pos, err := parseFlags(fs, tt.args, 0, -1)
		if err != nil || !slices.Equal(pos, tt.wantPos) || *n != tt.wantN {
			t.Errorf("%q: pos %q n %d err %v; want %q %d", tt.args, pos, *n, err, tt.wantPos, tt.wantN)
		}
	}
}

func TestParseFlagsErrors(t *testing.T) {
	var stderr bytes.Buffer
	fs := newFlagSet("x", " NAME", &stderr)
	fs.Int("n", 1, "")
	var ue *usageError
	if _, err := parseFlags(fs, []string{"--nope"}, 0, 0); !errors.As(err, &ue) || !ue.reported {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := parseFlags(fs, nil, 1, 1); !errors.As(err, &ue) || err.Error() != "expected 1 argument(s), got 0" {
		t.Errorf("missing argument: %v", err)
	}
	if _, err := parseFlags(fs, nil, 1, -1); !errors.As(err, &ue) || err.Error() != "expected at least 1 argument(s), got 0" {
		t.Errorf("missing argument of several: %v", err)
	}
	if _, err := parseFlags(fs, []string{"a", "b"}, 1, 1); !errors.As(err, &ue) {
		t.Errorf("extra argument: %v", err)
	}
	if _, err := parseFlags(fs, []string{"-h"}, 0, 0); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "Usage: gregor x [flags] NAME") {
		t.Errorf("usage not printed: %q", stderr.String())
	}
}

func TestParseKeyValue(t *testing.T) {
	if k, v, err := parseKeyValue("retention.ms=1000"); err != nil || k != "retention.ms" || v != "1000" {
		t.Errorf("got %q %q %v", k, v, err)
	}
	if k, v, err := parseKeyValue("a=b=c"); err != nil || k != "a" || v != "b=c" {
		t.Errorf("got %q %q %v", k, v, err)
	}
	if _, v, err := parseKeyValue("a="); err != nil || v != "" {
		t.Errorf("empty value: %q %v", v, err)
	}
	for _, bad := range []string{"", "a", "=b"} {
		if _, _, err := parseKeyValue(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func readAllLines(t *testing.T, lr *lineReader) ([]string, error) {
	t.Helper()
	var out []string
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(line))
	}
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a\nb\n", []string{"a", "b"}},
		{"a\r\nb", []string{"a", "b"}},
		{"\n\nx\n", []string{"", "", "x"}},
		{"only\r", []string{"only\r"}}, // a lone \r at EOF is data
	}
	for _, tt := range tests {
		got, err := readAllLines(t, newLineReader(strings.NewReader(tt.in), 100))
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}

	// Lines longer than the reader's buffer, read a byte at a time.
	long := strings.Repeat("x", 200<<10)
	got, err := readAllLines(t, newLineReader(iotest.OneByteReader(strings.NewReader(long+"\n"+long)), 1<<20))
	if err != nil || len(got) != 2 || got[0] != long || got[1] != long {
		t.Errorf("long lines: %d lines, %v", len(got), err)
	}

	// The limit applies to the line without its ending.
	got, err = readAllLines(t, newLineReader(strings.NewReader("12345\r\n123456\n"), 5))
	if !errors.Is(err, errLineTooLong) || !slices.Equal(got, []string{"12345"}) {
		t.Errorf("limit: %q, %v", got, err)
	}
	if _, err := readAllLines(t, newLineReader(strings.NewReader("123456"), 5)); !errors.Is(err, errLineTooLong) {
		t.Errorf("limit at EOF: %v", err)
	}

	// Read errors come through.
	boom := errors.New("boom")
	if _, err := readAllLines(t, newLineReader(iotest.ErrReader(boom), 5)); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}

func TestReadLineBatches(t *testing.T) {
	var in strings.Builder
	for range 3000 {
		in.WriteString("line\n")
	}
	out := make(chan lineBatch)
	done := make(chan struct{})
	defer close(done)
	go readLineBatches(newLineReader(strings.NewReader(in.String()), 100), out, done)
	total := 0
	var last error
	for b := range out {
		if len(b.lines) > maxLineBatch {
			t.Errorf("batch of %d lines", len(b.lines))
		}
		total += len(b.lines)
		last = b.err
	}
	if total != 3000 || !errors.Is(last, io.EOF) {
		t.Errorf("got %d lines, last error %v", total, last)
	}

	// Closing done stops the reader even if nobody receives.
	out = make(chan lineBatch)
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		readLineBatches(newLineReader(strings.NewReader(in.String()), 100), out, stop)
		close(finished)
	}()
	close(stop)
	<-finished
}

// TestBootstrapIPv6NeedsBrackets: an IPv6 seed without brackets is a usage
// error that says so, not a dial of "[::1:9092]:9092".
func TestBootstrapIPv6NeedsBrackets(t *testing.T) {
	code, _, stderr := runCLI(t, "", "topic", "list", "-b", "127.0.0.1:1,::1:9092")
	if code != 2 || !strings.Contains(stderr, `"::1:9092": an IPv6 address needs brackets`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
