package appender

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func newCaptureCore(t testing.TB, opts ...Option) (*Core, *capture) {
	t.Helper()
	c := &capture{}
	core, err := NewCore(append([]Option{WithBrokers("127.0.0.1:1"), WithTopic("t"), withSink(sinkFunc(c.sink))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { core.Close(context.Background()) })
	return core, c
}

type panicMarshaler struct{}

func (panicMarshaler) MarshalLogObject(zapcore.ObjectEncoder) error { panic("object exploded") }

type panicJSONZap struct{}

func (panicJSONZap) MarshalJSON() ([]byte, error) { panic("json exploded") }

func TestCoreMatchesZapJSON(t *testing.T) {
	core, c := newCaptureCore(t)
	var want bytes.Buffer
	ref := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&want), zapcore.InfoLevel)
	fields := []zap.Field{zap.String("s", "x\"y"), zap.Int("i", 1), zap.Error(errors.New("bad")),
		zap.Strings("ss", []string{"a", "b"}), zap.Any("m", map[string]int{"k": 1})}
	ent := zapcore.Entry{Level: zapcore.WarnLevel, Time: time.Unix(1700000000, 5), Message: "hello", LoggerName: "app",
		Caller: zapcore.NewEntryCaller(0, "/src/app/main.go", 12, true)}
	for _, cc := range []zapcore.Core{ref.With([]zap.Field{zap.String("svc", "a")}), core.With([]zap.Field{zap.String("svc", "a")})} {
		if err := cc.Write(ent, fields); err != nil {
			t.Fatal(err)
		}
	}
	if err := core.Sync(); err != nil {
		t.Fatal(err)
	}
	vals, _ := c.take()
	if len(vals) != 1 || string(vals[0]) != strings.TrimSuffix(want.String(), "\n") {
		t.Fatalf("got %q\nwant %q", vals, want.String())
	}
}

func TestCoreSurvivesPanics(t *testing.T) {
	core, c := newCaptureCore(t)
	log := zap.New(core)
	log.Info("one", zap.Object("obj", panicMarshaler{}), zap.Int("n", 1))
	log.Info("two", zap.Any("j", panicJSONZap{}))
	log.With(zap.Object("ctx", panicMarshaler{})).Info("three")
	var nilErr *nilErr
	log.Info("four", zap.Error(nilErr), zap.Stringer("st", panicStringer{}))
	if err := core.Sync(); err != nil {
		t.Fatal(err)
	}
	vals, _ := c.take()
	if len(vals) != 4 {
		t.Fatalf("got %d records: %q", len(vals), vals)
	}
	for i, want := range []string{
		`"msg":"one","appenderError":"panic while encoding fields: object exploded"`,
		`"msg":"two","appenderError":"panic while encoding fields: json exploded"`,
		`"ctxError":"PANIC=object exploded"`,
		`"error":"<nil>","stError":"PANIC=String exploded"`,
	} {
		if !strings.Contains(string(vals[i]), want) {
			t.Errorf("record %d: %s\nwant it to contain %s", i, vals[i], want)
		}
	}
}

func TestCoreKeysLevelsAndHeaders(t *testing.T) {
	var got []string
	c := &capture{}
	core, err := NewCore(WithBrokers("127.0.0.1:1"), WithTopic("t"), WithKeyField("user"), WithLevel(-4),
		withSink(sinkFunc(func(e *entry) {
			got = append(got, string(e.hdrs[2].Value))
			c.sink(e)
		})))
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close(context.Background())
	log := zap.New(core).With(zap.Int("user", 7))
	log.Debug("a")
	log.Warn("b", zap.String("user", "bob"))
	zap.New(core).Error("c")
	func() {
		defer func() { recover() }()
		zap.New(core).Panic("d") // Write syncs before zap panics
	}()
	_, keys := c.take()
	if want := "[7 bob  ]"; strings.Join([]string{"[" + strings.Join(keys, " ") + "]"}, "") != want {
		t.Fatalf("keys %q", keys)
	}
	if want := "debug warn error panic"; strings.Join(got, " ") != want {
		t.Fatalf("levels %q, want %q", got, want)
	}
}

// TestCoreRefusesHugeFieldsUnencoded: an entry whose strings alone pass
// MaxRecordBytes is dropped and counted as too large without being
// encoded (helper-78: a 10 MB string cost 44 ms); one just under is
// shipped.
func TestCoreRefusesHugeFieldsUnencoded(t *testing.T) {
	core, c := newCaptureCore(t, WithMaxRecordBytes(64<<10))
	log := zap.New(core)
	huge := strings.Repeat("x", 10<<20)
	hugeBytes := []byte(huge)
	// The object is encoded only if the entry is: it must not be.
	var encoded atomic.Int32
	obj := zap.Object("o", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
		encoded.Add(1)
		enc.AddInt("n", 1)
		return nil
	}))
	log.Info("m", zap.String("s", huge), obj)
	log.Info("m", zap.ByteString("b", hugeBytes), obj)
	if n := encoded.Load(); n != 0 {
		t.Errorf("huge entries were encoded (%d times)", n)
	}
	log.Info("m", zap.String("s", strings.Repeat("y", 60<<10)))
	if err := core.Sync(); err != nil {
		t.Fatal(err)
	}
	st := core.Stats()
	if st.DroppedTooLarge != 2 || st.Dropped != 2 || st.Sent != 1 {
		t.Fatalf("stats %+v, want 2 dropped as too large and 1 sent", st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.vals) != 1 {
		t.Fatalf("%d records shipped, want 1", len(c.vals))
	}
}
