package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errBadFormat reports a consume --format template that cannot be parsed.
var errBadFormat = errors.New("bad format template")

// recordFormat is a compiled consume --format template. Directives, as
// kcat's -f has them:
//
//	%s value    %k key       %t topic       %p partition   %o offset
//	%S value length, %K key length (-1 for null); %R the value length as
//	a big-endian int32, as kcat writes it

//	%T timestamp (ms)        %h headers (k=v,k=v)
//	%% a percent sign
//
// %v is the value too (gregor's first templates had it).
//
// and the escapes \n, \t, \r, \0, \\ and \xHH (a byte in hex). A null key or value prints as
// null, nothing unless set (consume -Z sets NULL); a null header value
// prints as NULL, as kcat prints it, so that "k=" is an empty one.
type recordFormat struct {
	parts []formatPart
	null  []byte
}

// formatEscapes maps the letter after a backslash to the byte it stands
// for.
var formatEscapes = map[byte]byte{'n': '\n', 't': '\t', 'r': '\r', '0': 0, '\\': '\\'}

// formatPart is a literal (verb == 0) or a directive.
type formatPart struct {
	verb    byte
	literal []byte
}

// parseRecordFormat compiles a template.
func parseRecordFormat(tmpl string) (*recordFormat, error) {
	f := &recordFormat{}
	var lit []byte
	flushLiteral := func() {
		if len(lit) > 0 {
			f.parts = append(f.parts, formatPart{literal: lit})
			lit = nil
		}
	}
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch c {
		case '%', '\\':
			if i+1 == len(tmpl) {
				return nil, fmt.Errorf("%w: %q ends with a lone %c", errBadFormat, tmpl, c)
			}
			i++
			d := tmpl[i]
			if c == '\\' {
				esc, n, err := escapeAt(tmpl, i)
				if err != nil {
					return nil, fmt.Errorf("%w: %v", errBadFormat, err)
				}
				lit = append(lit, esc)
				i += n
				continue
			}
			switch d {
			case '%':
				lit = append(lit, '%')
			case 's', 'v', 'k', 'S', 'K', 'R', 'p', 'o', 't', 'T', 'h':
				if d == 'v' {
					d = 's'
				}
				flushLiteral()
				f.parts = append(f.parts, formatPart{verb: d})
			default:
				return nil, fmt.Errorf("%w: unknown directive %%%c in %q", errBadFormat, d, tmpl)
			}
		default:
			lit = append(lit, c)
		}
	}
	flushLiteral()
	return f, nil
}

// appendRecord appends r formatted by f to dst.
func (f *recordFormat) appendRecord(dst []byte, r *kgo.Record) []byte {
	for _, p := range f.parts {
		switch p.verb {
		case 0:
			dst = append(dst, p.literal...)
		case 's':
			if r.Value == nil {
				dst = append(dst, f.null...)
			}
			dst = append(dst, r.Value...)
		case 'k':
			if r.Key == nil {
				dst = append(dst, f.null...)
			}
			dst = append(dst, r.Key...)
		case 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case 'S':
			dst = appendLen(dst, r.Value)
		case 'K':
			dst = appendLen(dst, r.Key)
		case 'R':
			n := int32(-1)
			if r.Value != nil {
				n = int32(len(r.Value))
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(n))
		case 't':
			dst = append(dst, r.Topic...)
		case 'T':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, h.Key...)
				dst = append(dst, '=')
				if h.Value == nil {
					dst = append(dst, "NULL"...)
				}
				dst = append(dst, h.Value...)
			}
		}
	}
	return dst
}

// appendLen appends b's length, or -1 when b is null.
func appendLen(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "-1"...)
	}
	return strconv.AppendInt(dst, int64(len(b)), 10)
}

// unescape replaces the backslash escapes of a --format template (\n, \t,
// \r, \0 and \\) in s, for produce --key-separator, as kcat's -K takes
// them.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%q ends with a lone \\ (write \\\\ for a backslash)", s)
		}
		i++
		esc, n, err := escapeAt(s, i)
		if err != nil {
			return "", fmt.Errorf("%v (write \\\\ for a backslash)", err)
		}
		b.WriteByte(esc)
		i += n
	}
	return b.String(), nil
}

// escapeAt decodes the escape whose letter is s[i] (after a backslash):
// one of formatEscapes, or xHH, a byte in hex, as kcat takes it. n is how
// many bytes after the letter it used.
func escapeAt(s string, i int) (b byte, n int, err error) {
	if s[i] == 'x' {
		if i+3 > len(s) {
			return 0, 0, fmt.Errorf("\\x needs two hex digits in %q", s)
		}
		v, perr := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if perr != nil {
			return 0, 0, fmt.Errorf("\\x needs two hex digits in %q", s)
		}
		return byte(v), 2, nil
	}
	esc, ok := formatEscapes[s[i]]
	if !ok {
		return 0, 0, fmt.Errorf("unknown escape \\%c in %q", s[i], s)
	}
	return esc, 0, nil
}

// startKind says where consume --from starts in each partition.
type startKind int

const (
	startBeginning startKind = iota // the log start offset
	startEnd                        // the end: only new records
	startOffset                     // an absolute offset
	startTimestamp                  // the first record at or after a time
	startLastN                      // the last N records
)

// startSpec is a parsed consume --from value.
type startSpec struct {
	kind startKind
	n    int64 // the offset, the timestamp in ms, or N
}

// groupReset is where a group member starts in a partition the group has
// no committed offset for: beginning, end or a timestamp; an offset or
// the last N records name a position per partition, which a group's
// assignment does not fit.
func (s startSpec) groupReset() (kgo.Offset, error) {
	switch s.kind {
	case startBeginning:
		return kgo.NewOffset().AtStart(), nil
	case startEnd:
		return kgo.NewOffset().AtEnd(), nil
	case startTimestamp:
		return kgo.NewOffset().AfterMilli(s.n), nil
	}
	return kgo.Offset{}, fmt.Errorf("%w: with --group, --from must be beginning, end or @TIMESTAMP_MS", errBadFrom)
}

// errBadFrom reports a consume --from value that cannot be parsed.
var errBadFrom = errors.New("bad --from")

// parseStartSpec parses --from: beginning (or earliest), end (or latest),
// OFFSET, @TIMESTAMP_MS, or -N for the last N records of each partition.
func parseStartSpec(s string) (startSpec, error) {
	switch strings.ToLower(s) {
	case "beginning", "earliest", "start", "oldest":
		return startSpec{kind: startBeginning}, nil
	case "end", "latest", "newest":
		return startSpec{kind: startEnd}, nil
	}
	kind, digits := startOffset, s
	switch {
	case strings.HasPrefix(s, "@"):
		kind, digits = startTimestamp, s[1:]
	case strings.HasPrefix(s, "-"):
		kind, digits = startLastN, s[1:]
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 || digits == "" || digits[0] == '+' || digits[0] == '-' {
		return startSpec{}, fmt.Errorf("%w %q: want beginning, end, OFFSET, @TIMESTAMP_MS or -N", errBadFrom, s)
	}
	return startSpec{kind: kind, n: n}, nil
}

// needsTimestampLookup reports whether resolve needs the offset for the
// spec's timestamp.
func (s startSpec) needsTimestampLookup() bool { return s.kind == startTimestamp }

// resolve returns the offset to start a partition at, given its log start
// offset, its end offset and, for a timestamp spec, the offset ListOffsets
// returned for the timestamp (-1: no record that late). The result is
// always within [earliest, latest]: an offset past either bound is clamped
// to it, as Kafka's consumers reset an out-of-range offset.
func (s startSpec) resolve(earliest, latest, byTimestamp int64) int64 {
	var o int64
	switch s.kind {
	case startBeginning:
		o = earliest
	case startEnd:
		o = latest
	case startOffset:
		o = s.n
	case startTimestamp:
		o = byTimestamp
		if o < 0 {
			o = latest
		}
	case startLastN:
		o = latest - s.n
	}
	return max(earliest, min(o, latest))
}
