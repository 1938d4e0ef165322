package appender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// capture is a sink that keeps every record's value and key.
type capture struct {
	mu   sync.Mutex
	vals [][]byte
	keys []string
}

func (c *capture) sink(e *entry) {
	c.mu.Lock()
	c.vals = append(c.vals, bytes.Clone(e.rec.Value))
	c.keys = append(c.keys, string(e.rec.Key))
	c.mu.Unlock()
	e.s.finish(e, nil)
}

func (c *capture) take() ([][]byte, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, k := c.vals, c.keys
	c.vals, c.keys = nil, nil
	return v, k
}

func newCaptureHandler(t testing.TB, opts ...Option) (*Handler, *capture) {
	t.Helper()
	c := &capture{}
	h, err := NewHandler(append([]Option{WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(sinkFunc(c.sink))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h, c
}

type textErr struct{}

func (textErr) Error() string { return "boom <&>" }

type jsonErr struct{}

func (jsonErr) Error() string                { return "as error" }
func (jsonErr) MarshalJSON() ([]byte, error) { return []byte(`{"as":"json"}`), nil }

type panicJSON struct{}

func (panicJSON) MarshalJSON() ([]byte, error) { panic("marshal exploded") }

type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

type badJSON struct{}

func (badJSON) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot marshal") }

type valuer struct{ v slog.Value }

func (l valuer) LogValue() slog.Value { return l.v }

type loopValuer struct{}

func (l loopValuer) LogValue() slog.Value { return slog.AnyValue(l) }

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("LogValue exploded") }

type point struct {
	X, Y int
	Tag  string `json:"tag,omitempty"`
}

// equivalenceCases are records that must encode byte for byte as
// slog.JSONHandler encodes them. Left out, and tested on their own below:
// a LogValue panic (its message carries the stack, which differs), a group
// whose attributes are all empty (slog then drops a comma and emits
// invalid JSON; we do not), and WithGroup("") (the Handler contract says
// to return the receiver; JSONHandler does not).
func equivalenceCases() []struct {
	name  string
	with  func(slog.Handler) slog.Handler
	attrs []slog.Attr
} {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	var nilPoint *point
	return []struct {
		name  string
		with  func(slog.Handler) slog.Handler
		attrs []slog.Attr
	}{
		{name: "no attrs"},
		{name: "scalars", attrs: []slog.Attr{
			slog.String("s", "plain"), slog.Int("i", -42), slog.Uint64("u", math.MaxUint64),
			slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond), slog.Time("t", ts),
			slog.Float64("f", 1.5), slog.Float64("big", 1e21), slog.Float64("small", 1e-7),
			slog.Float64("zero", 0), slog.Float64("neg", -2.25e-10), slog.Float64("int", 3),
		}},
		{name: "non-finite floats", attrs: []slog.Attr{
			slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(1)), slog.Float64("ninf", math.Inf(-1)),
		}},
		{name: "escapes", attrs: []slog.Attr{
			slog.String("q", "a \"quoted\" \\ back\nslash\r\t\x01\x1f"),
			slog.String("html", "<a href='x'>&amp;</a>"),
			slog.String("bad utf8", "a\xffb\xc3"),
			slog.String("seps", "x\u2028y\u2029z"),
			slog.String("unicode", "héllo, 世界 🎉"),
			slog.String("key \"with\" quotes\n", "v"),
		}},
		{name: "any values", attrs: []slog.Attr{
			slog.Any("struct", point{1, 2, "<t>"}), slog.Any("map", map[string]int{"b": 2, "a": 1}),
			slog.Any("bytes", []byte("hi")), slog.Any("nil", nil), slog.Any("slice", []any{1, "x", nil}),
			slog.Any("err", textErr{}), slog.Any("jsonerr", jsonErr{}), slog.Any("badjson", badJSON{}),
			slog.Any("nilptr", nilPoint), slog.Any("level", slog.LevelWarn),
		}},
		{name: "panics", attrs: []slog.Attr{
			slog.Any("pj", panicJSON{}), slog.Any("nilerr", (*nilErr)(nil)), slog.Any("ok", 1),
		}},
		{name: "valuers", attrs: []slog.Attr{
			slog.Any("v", valuer{slog.IntValue(7)}),
			slog.Any("vv", valuer{slog.AnyValue(valuer{slog.StringValue("deep")})}),
			slog.Any("vg", valuer{slog.GroupValue(slog.Int("a", 1), slog.String("b", "2"))}),
			slog.Any("loop", loopValuer{}),
		}},
		{name: "groups", attrs: []slog.Attr{
			slog.Group("g", slog.Int("a", 1), slog.Group("h", slog.String("b", "x"))),
			slog.Group("empty"),
			slog.Group("", slog.Int("inlined", 1)),
			slog.Attr{},
			slog.Int("after", 2),
		}},
		{name: "with attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("svc", "api"), slog.Int("pid", 7)})
		}, attrs: []slog.Attr{slog.Int("x", 1)}},
		{name: "with group then attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithGroup("req").WithAttrs([]slog.Attr{slog.String("id", "r1")}).WithGroup("inner")
		}, attrs: []slog.Attr{slog.Int("x", 1), slog.Group("g", slog.Bool("y", false))}},
		{name: "with group no record attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithGroup("req").WithAttrs([]slog.Attr{slog.String("id", "r1")}).WithGroup("inner")
		}},
		{name: "with group only empty attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithGroup("a").WithGroup("b")
		}, attrs: []slog.Attr{slog.Attr{}, slog.Group("e")}},
		{name: "with empty attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Group("e")}).WithAttrs([]slog.Attr{slog.Attr{}})
		}, attrs: []slog.Attr{slog.Int("x", 1)}},
		{name: "with attrs then group without attrs", with: func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Int("a", 1)}).WithGroup("g")
		}},
	}
}

func TestHandlerMatchesJSONHandler(t *testing.T) {
	pc := func() uintptr {
		var pcs [1]uintptr
		runtime.Callers(1, pcs[:])
		return pcs[0]
	}()
	replace := func(groups []string, a slog.Attr) slog.Attr {
		switch {
		case a.Key == "drop":
			return slog.Attr{}
		case len(groups) == 0 && a.Key == slog.LevelKey:
			return slog.String("severity", a.Value.String())
		case a.Key == "x":
			return slog.String("x", fmt.Sprintf("%v in %s", a.Value, strings.Join(groups, "/")))
		}
		return a
	}
	variants := []struct {
		name string
		opts slog.HandlerOptions
		ours []Option
	}{
		{name: "plain"},
		{name: "source", opts: slog.HandlerOptions{AddSource: true}, ours: []Option{WithAddSource(true)}},
		{name: "replace", opts: slog.HandlerOptions{ReplaceAttr: replace}, ours: []Option{WithReplaceAttr(replace)}},
		{name: "replace+source", opts: slog.HandlerOptions{ReplaceAttr: replace, AddSource: true},
			ours: []Option{WithReplaceAttr(replace), WithAddSource(true)}},
	}
	ts := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, v := range variants {
		for _, tc := range equivalenceCases() {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				var want bytes.Buffer
				var ref slog.Handler = slog.NewJSONHandler(&want, &v.opts)
				ours, c := newCaptureHandler(t, v.ours...)
				var got slog.Handler = ours
				if tc.with != nil {
					ref, got = tc.with(ref), tc.with(got)
				}
				for _, withTime := range []bool{true, false} {
					var tm time.Time
					if withTime {
						tm = ts
					}
					for _, p := range []uintptr{pc, 0} {
						r := slog.NewRecord(tm, slog.LevelInfo+1, "msg \"m\"\n<x>", p)
						r.AddAttrs(tc.attrs...)
						r.AddAttrs(slog.String("drop", "me"), slog.Int("x", 3))
						want.Reset()
						if err := ref.Handle(context.Background(), r); err != nil {
							t.Fatal(err)
						}
						if err := got.Handle(context.Background(), r); err != nil {
							t.Fatal(err)
						}
						if err := ours.Sync(); err != nil {
							t.Fatal(err)
						}
						vals, _ := c.take()
						if len(vals) != 1 {
							t.Fatalf("captured %d records", len(vals))
						}
						w := strings.TrimSuffix(want.String(), "\n")
						if string(vals[0]) != w {
							t.Fatalf("time=%v pc=%v\n got: %s\nwant: %s", withTime, p != 0, vals[0], w)
						}
						if !json.Valid(vals[0]) && !strings.Contains(w, "!ERROR") {
							t.Fatalf("invalid JSON: %s", vals[0])
						}
					}
				}
			})
		}
	}
}

func handleOne(t *testing.T, h slog.Handler, c *capture, r slog.Record) string {
	t.Helper()
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := h.(*Handler).Sync(); err != nil {
		t.Fatal(err)
	}
	vals, _ := c.take()
	if len(vals) != 1 {
		t.Fatalf("captured %d records, want 1", len(vals))
	}
	if !json.Valid(vals[0]) {
		t.Fatalf("invalid JSON: %s", vals[0])
	}
	return string(vals[0])
}

// selfGroup is a LogValuer whose value is a group containing itself.
type selfGroup struct{}

func (g selfGroup) LogValue() slog.Value { return slog.GroupValue(slog.Any("again", g)) }

type panicStringer struct{}

func (panicStringer) String() string { panic("String exploded") }

func TestHandlerSurvivesHostileValues(t *testing.T) {
	h, c := newCaptureHandler(t, WithKeyField("user"))
	huge := strings.Repeat("x", 4<<20)
	type cyc struct {
		Next *cyc
	}
	loop := &cyc{}
	loop.Next = loop
	cases := []struct {
		name  string
		attrs []slog.Attr
		want  []string // substrings
	}{
		{"logvalue panic", []slog.Attr{slog.Any("pv", panicValuer{})}, []string{`"pv":"LogValue panicked`}},
		{"self group", []slog.Attr{slog.Any("g", selfGroup{})}, []string{`!ERROR:groups nested too deep`}},
		{"all-empty group", []slog.Attr{slog.Group("e", slog.Attr{}), slog.Int("a", 1)}, []string{`"msg":"m","a":1}`}},
		{"cycle", []slog.Attr{slog.Any("c", loop)}, []string{`"c":"!ERROR:json: unsupported value: encountered a cycle`}},
		{"nil error", []slog.Attr{slog.Any("e", (*nilErr)(nil))}, []string{`"e":"<nil>"`}},
		{"panicking key stringer", []slog.Attr{slog.Any("user", panicStringer{})}, []string{`"user":{}`}},
		{"channel", []slog.Attr{slog.Any("ch", make(chan int))}, []string{`"ch":"!ERROR:json: unsupported type: chan int"`}},
		{"func", []slog.Attr{slog.Any("f", func() {})}, []string{`"f":"!ERROR:json: unsupported type: func()"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
			r.AddAttrs(tc.attrs...)
			got := handleOne(t, h, c, r)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("got %s\nwant it to contain %s", got, w)
				}
			}
		})
	}
	t.Run("huge string is dropped and counted", func(t *testing.T) {
		before := h.Stats()
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
		r.AddAttrs(slog.String("huge", huge))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		after := h.Stats()
		if after.DroppedTooLarge != before.DroppedTooLarge+1 || after.Dropped != before.Dropped+1 {
			t.Fatalf("stats before %+v after %+v", before, after)
		}
	})
	t.Run("group path in WithGroup is part of the key field", func(t *testing.T) {
		h2, c2 := newCaptureHandler(t, WithKeyField("req.user"))
		var hh slog.Handler = h2.WithGroup("req")
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
		r.AddAttrs(slog.String("user", "alice"))
		if err := hh.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if err := h2.Sync(); err != nil {
			t.Fatal(err)
		}
		_, keys := c2.take()
		if len(keys) != 1 || keys[0] != "alice" {
			t.Fatalf("keys %q", keys)
		}
	})
}

func TestHandlerKeyFromWithAttrs(t *testing.T) {
	h, c := newCaptureHandler(t, WithKeyField("user"))
	log := slog.New(h).With("user", 42)
	log.Info("a")
	log.Info("b", "user", "override")
	slog.New(h).Info("c")
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	_, keys := c.take()
	if want := []string{"42", "override", ""}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
}

func TestHandlerLevels(t *testing.T) {
	h, c := newCaptureHandler(t, WithLevel(slog.LevelWarn))
	log := slog.New(h)
	log.Info("no")
	log.Warn("yes")
	h.Shipper().SetLevel(slog.LevelDebug)
	log.Debug("now yes")
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	vals, _ := c.take()
	if len(vals) != 2 || !bytes.Contains(vals[0], []byte(`"yes"`)) || !bytes.Contains(vals[1], []byte(`"now yes"`)) {
		t.Fatalf("got %q", vals)
	}
}
