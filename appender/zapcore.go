package appender

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// Core is a zapcore.Core that encodes entries with zap's JSON encoder and
// ships them through a Shipper. Use it alone (zap.New(core)) or beside the
// application's own core (zapcore.NewTee). Entries below the shipper's
// level are not even encoded.
type Core struct {
	s    *Shipper
	enc  zapcore.Encoder
	key  []byte // record key from With fields, if KeyField was among them
	owns bool   // Close closes s
}

var _ zapcore.Core = (*Core)(nil)

// NewCore validates the options and returns a Core with its own Shipper.
// It does not contact the brokers. Close it (Core.Close) when done; zap's
// Logger.Sync calls Core.Sync.
func NewCore(opts ...Option) (*Core, error) {
	st := newSettings(opts)
	s, err := newShipper(st)
	if err != nil {
		return nil, err
	}
	c := s.Core()
	c.owns = true
	return c, nil
}

// Core returns a zap core shipping through s; Closing it does not close s.
func (s *Shipper) Core() *Core {
	ec := zap.NewProductionEncoderConfig()
	if s.zapEncoder != nil {
		ec = *s.zapEncoder
	}
	return &Core{s: s, enc: zapcore.NewJSONEncoder(ec)}
}

// Shipper returns the shipper behind c (for Stats, Collector, SetLevel).
func (c *Core) Shipper() *Shipper { return c.s }

// Stats returns the shipper's counters.
func (c *Core) Stats() Stats { return c.s.Stats() }

// zapToSlog maps a zap level onto the slog scale the shipper's level uses.
func zapToSlog(l zapcore.Level) slog.Level { return slog.Level(int(l) * 4) }

// Enabled implements zapcore.LevelEnabler.
func (c *Core) Enabled(l zapcore.Level) bool { return zapToSlog(l) >= c.s.level.Level() }

// With returns a core that adds fields to every entry. A value whose
// marshalling panics is replaced by an error marker.
func (c *Core) With(fields []zapcore.Field) zapcore.Core {
	clone := &Core{s: c.s, enc: c.enc.Clone(), key: c.key}
	for i := range fields {
		addFieldSafely(clone.enc, &fields[i])
	}
	if c.s.keyField != "" {
		if k, ok := zapFieldKey(fields, c.s.keyField, nil); ok {
			clone.key = k
		}
	}
	return clone
}

func addFieldSafely(enc zapcore.ObjectEncoder, f *zapcore.Field) {
	defer func() {
		if r := recover(); r != nil {
			enc.AddString(f.Key+"Error", fmt.Sprintf("PANIC=%v", r))
		}
	}()
	f.AddTo(enc)
}

// Check implements zapcore.Core.
func (c *Core) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

// Write encodes the entry and hands it to the shipper. It never waits on
// the network, and a field whose encoding panics yields a record carrying
// an error marker rather than a panic. Entries above error level (dpanic,
// panic, fatal) are followed by a Sync, as zap's own cores do, so they are
// shipped before the process dies.
func (c *Core) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if n := zapMinSize(ent, fields); n > int64(c.s.cfg.MaxRecordBytes) {
		// Too large whatever the encoding: not encoded at all (a 10 MB
		// string took 44 ms to encode before being refused).
		e := c.s.getEntry()
		c.s.c.tooLarge.Add(1)
		c.s.drop(e, n)
		return nil
	}
	buf, err := c.encode(ent, fields)
	if err != nil {
		return fmt.Errorf("appender: encode entry: %w", err)
	}
	e := c.s.getEntry()
	v := buf.Bytes()
	if n := len(v); n > 0 && v[n-1] == '\n' {
		v = v[:n-1]
	}
	// Copy into the entry's own buffer and give zap's back here: freeing
	// it later on the shipper's side would make every Get in zap's pool
	// take the slow, cross-processor path.
	e.val = append(e.val[:0], v...)
	buf.Free()
	e.rec.Value = e.val
	if c.s.keyField != "" {
		if k, ok := zapFieldKey(fields, c.s.keyField, e.key[:0]); ok {
			e.key = k
		} else if c.key != nil {
			e.key = append(e.key[:0], c.key...)
		}
	}
	e.setMeta(ent.Time, zapLevelHeader(ent.Level, e))
	c.s.submit(e)
	if ent.Level > zapcore.ErrorLevel {
		_ = c.s.Sync()
	}
	return nil
}

// encode runs zap's encoder, turning a panic (an ObjectMarshaler or a
// json.Marshaler that panics) into a record with an error marker.
func (c *Core) encode(ent zapcore.Entry, fields []zapcore.Field) (buf *buffer.Buffer, err error) {
	defer func() {
		if r := recover(); r != nil {
			buf, err = c.panicRecord(ent, r)
		}
	}()
	return c.enc.EncodeEntry(ent, fields)
}

// EncoderPanicKey is the field that replaces an entry's fields when
// encoding them panicked.
const EncoderPanicKey = "appenderError"

func (c *Core) panicRecord(ent zapcore.Entry, r any) (buf *buffer.Buffer, err error) {
	defer func() {
		if r2 := recover(); r2 != nil {
			// Even the bare entry does not encode (a panicking level or
			// time encoder): build a minimal record by hand.
			buf = fallbackPool.Get()
			b := append(buf.Bytes(), `{"msg":`...)
			b = appendJSONString(b, ent.Message)
			b = append(b, `,"`+EncoderPanicKey+`":`...)
			b = appendJSONString(b, fmt.Sprintf("panic while encoding: %v", r2))
			b = append(b, '}')
			buf.Reset()
			buf.Write(b)
			err = nil
		}
	}()
	return c.enc.Clone().EncodeEntry(ent, []zapcore.Field{
		zap.String(EncoderPanicKey, fmt.Sprintf("panic while encoding fields: %v", r)),
	})
}

var fallbackPool = buffer.NewPool()

// Sync waits for buffered records, at most Config.SyncTimeout (see
// Shipper.Sync).
func (c *Core) Sync() error { return c.s.Sync() }

// Close closes the core's own shipper (see Shipper.Close). For a core from
// Shipper.Core it only flushes; close the shipper itself.
func (c *Core) Close(ctx context.Context) error {
	if !c.owns {
		return c.s.Flush(ctx)
	}
	return c.s.Close(ctx)
}

// zapFieldKey returns the key-field value among fields (the last one wins)
// appended to dst.
func zapFieldKey(fields []zapcore.Field, name string, dst []byte) ([]byte, bool) {
	for i := len(fields) - 1; i >= 0; i-- {
		f := &fields[i]
		if f.Key != name {
			continue
		}
		if k, ok := zapKeyValue(f, dst); ok {
			return k, true
		}
	}
	return dst, false
}

func zapKeyValue(f *zapcore.Field, dst []byte) (out []byte, ok bool) {
	switch f.Type {
	case zapcore.StringType:
		return append(dst, f.String...), true
	case zapcore.ByteStringType, zapcore.BinaryType:
		b, _ := f.Interface.([]byte)
		return append(dst, b...), true
	case zapcore.Int64Type, zapcore.Int32Type, zapcore.Int16Type, zapcore.Int8Type:
		return strconv.AppendInt(dst, f.Integer, 10), true
	case zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Uint16Type, zapcore.Uint8Type, zapcore.UintptrType:
		return strconv.AppendUint(dst, uint64(f.Integer), 10), true
	case zapcore.BoolType:
		return strconv.AppendBool(dst, f.Integer == 1), true
	case zapcore.StringerType:
		defer func() {
			if recover() != nil {
				out, ok = dst, false
			}
		}()
		if st, isStringer := f.Interface.(fmt.Stringer); isStringer {
			return append(dst, st.String()...), true
		}
	}
	return dst, false
}

var zapLevelNames = [...][]byte{
	[]byte("debug"), []byte("info"), []byte("warn"), []byte("error"),
	[]byte("dpanic"), []byte("panic"), []byte("fatal"),
}

// zapLevelHeader is the level header value: zap's lowercase level name.
func zapLevelHeader(l zapcore.Level, e *entry) []byte {
	if i := int(l) - int(zapcore.DebugLevel); i >= 0 && i < len(zapLevelNames) {
		return zapLevelNames[i]
	}
	n := copy(e.levelBuf[:], l.String())
	return e.levelBuf[:n]
}

// zapMinSize is a lower bound of the bytes an entry's JSON takes: its
// message and its string and byte-string fields, which the encoder writes
// at least whole.
func zapMinSize(ent zapcore.Entry, fields []zapcore.Field) int64 {
	n := int64(len(ent.Message))
	for i := range fields {
		f := &fields[i]
		n += int64(len(f.Key))
		switch f.Type {
		case zapcore.StringType:
			n += int64(len(f.String))
		case zapcore.ByteStringType:
			if b, ok := f.Interface.([]byte); ok {
				n += int64(len(b))
			}
		}
	}
	return n
}
