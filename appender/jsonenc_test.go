package appender

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "a\"b\\c", "tab\there\nnew\rline", "\x00\x01\x1f\x7f",
		"<html>&amp;", "héllo wörld", "\xff\xfe", "a\xc3", "\u2028\u2029", "🎉 emoji", "0123456789abcdefg\"",
		strings.Repeat("long ascii run ", 20) + "\n" + strings.Repeat("x", 17)}
	for _, s := range cases {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := appendJSONString(nil, s)
		if string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("%q: got %s want %s", s, got, want.String())
		}
	}
}

func TestAppendJSONFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-9} {
		want, _ := json.Marshal(f)
		got, ok := appendJSONFloat(nil, f)
		if !ok || string(got) != string(want) {
			t.Errorf("%v: got %s want %s", f, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, ok := appendJSONFloat(nil, f); ok {
			t.Errorf("%v accepted", f)
		}
	}
}

func TestAppendRFC3339NanoMatchesTimeFormat(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("plus", 3600+30*60), time.FixedZone("minus", -7*3600), time.Local}
	base := time.Date(2024, 3, 31, 1, 59, 59, 0, time.UTC)
	for _, loc := range zones {
		for _, d := range []time.Duration{0, 1, 10, 123456789, 999999999, time.Second, time.Second + 500*time.Millisecond, 24 * time.Hour} {
			tm := base.Add(d).In(loc)
			for range 2 { // the second call hits the cache
				got := appendRFC3339Nano(nil, tm)
				if want := tm.Format(time.RFC3339Nano); string(got) != want {
					t.Fatalf("%v: got %s want %s", tm, got, want)
				}
			}
		}
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = appendJSONString(buf[:0], "/api/v1/users/42?query=something")
	}
}

func BenchmarkAppendRFC3339Nano(b *testing.B) {
	buf := make([]byte, 0, 64)
	now := time.Now()
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			buf = appendRFC3339Nano(buf[:0], now)
		}
	})
	b.Run("time.AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = now.AppendFormat(buf[:0], time.RFC3339Nano)
		}
	})
}
