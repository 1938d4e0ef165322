package appender

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// jsonSafe marks the ASCII bytes that need no escaping inside a JSON
// string: everything but control characters, '"' and '\\'. HTML
// characters are not escaped, as with json.Encoder.SetEscapeHTML(false)
// (which slog's JSONHandler uses).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. Invalid UTF-8 becomes
// U+FFFD; U+2028 and U+2029 are escaped, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Skip eight plain ASCII bytes at a time.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// plain8 reports whether all eight bytes of s (len(s) >= 8) are ASCII that
// needs no escaping: no control character, '"', '\\' or byte >= 0x80.
func plain8(s string) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	zero := func(v uint64) uint64 { return (v - lsb) & ^v & msb }
	bad := (x - lsb*0x20) & ^x & msb // a byte < 0x20
	bad |= zero(x ^ (lsb * '"'))
	bad |= zero(x ^ (lsb * '\\'))
	bad |= x & msb
	return bad == 0
}

// appendJSONFloat appends f formatted as encoding/json formats a float64.
// ok is false for NaN and infinities, which JSON cannot represent.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 -> 1e-7, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// jsonMarshaler is a pooled json.Encoder without HTML escaping.
type jsonMarshaler struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonMarshalers = sync.Pool{New: func() any {
	m := &jsonMarshaler{}
	m.enc = json.NewEncoder(&m.buf)
	m.enc.SetEscapeHTML(false)
	return m
}}

// appendJSONMarshal appends v as encoding/json marshals it.
func appendJSONMarshal(b []byte, v any) ([]byte, error) {
	m := jsonMarshalers.Get().(*jsonMarshaler)
	defer func() {
		if m.buf.Cap() <= maxPooledBuf {
			m.buf.Reset()
			jsonMarshalers.Put(m)
		}
	}()
	if err := m.enc.Encode(v); err != nil {
		return b, err
	}
	out := m.buf.Bytes()
	return append(b, out[:len(out)-1]...), nil // Encode adds a newline
}

// secondStamp caches the formatted date, time of day and zone of one
// second in one location, shared by all goroutines.
type secondStamp struct {
	sec    int64
	loc    *time.Location
	prefix []byte // 2006-01-02T15:04:05
	zone   []byte // Z07:00
}

var lastSecond atomic.Pointer[secondStamp]

// appendRFC3339Nano appends t formatted as time.RFC3339Nano, caching
// everything but the fraction per second: logging formats the same second
// many times over.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	c := lastSecond.Load()
	if c == nil || c.sec != sec || c.loc != loc {
		c = &secondStamp{
			sec:    sec,
			loc:    loc,
			prefix: t.AppendFormat(nil, "2006-01-02T15:04:05"),
			zone:   t.AppendFormat(nil, "Z07:00"),
		}
		lastSecond.Store(c)
	}
	b = append(b, c.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, c.zone...)
}
