package appender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Handler is an slog.Handler that encodes records as JSON, exactly as
// slog.JSONHandler does, and ships them through a Shipper. It honours the
// shipper's level, WithAttrs, WithGroup, AddSource and ReplaceAttr. It
// never panics on an attribute value: LogValuer loops, values whose
// String, Error or MarshalJSON panics, nil pointers and groups nested
// deeper than maxGroupDepth become error markers.
type Handler struct {
	s    *Shipper
	c    *handlerCommon
	owns bool // Close closes s
}

// handlerCommon is what WithAttrs and WithGroup accumulate. Immutable once
// built.
type handlerCommon struct {
	addSource bool
	replace   func([]string, slog.Attr) slog.Attr
	pre       []byte   // WithAttrs attributes, encoded, groups opened
	groups    []string // every WithGroup name
	nOpen     int      // groups already opened in pre
	key       []byte   // record key found in WithAttrs
	hasKey    bool
}

var _ slog.Handler = (*Handler)(nil)

// maxGroupDepth bounds nesting of groups (a LogValuer that returns a group
// containing itself would otherwise recurse until the stack overflows).
const maxGroupDepth = 64

// NewHandler validates the options and returns a Handler with its own
// Shipper. It does not contact the brokers. Close it when done.
func NewHandler(opts ...Option) (*Handler, error) {
	st := newSettings(opts)
	s, err := newShipper(st)
	if err != nil {
		return nil, err
	}
	h := s.Handler()
	h.owns = true
	return h, nil
}

// Handler returns an slog handler shipping through s; closing it does not
// close s.
func (s *Shipper) Handler() *Handler {
	return &Handler{s: s, c: &handlerCommon{addSource: s.cfg.AddSource, replace: s.replace}}
}

// Shipper returns the shipper behind h (for Stats, Collector, SetLevel).
func (h *Handler) Shipper() *Shipper { return h.s }

// Stats returns the shipper's counters.
func (h *Handler) Stats() Stats { return h.s.Stats() }

// Sync waits for buffered records (see Shipper.Sync).
func (h *Handler) Sync() error { return h.s.Sync() }

// Close closes the handler's own shipper (see Shipper.Close). For a
// handler from Shipper.Handler it only flushes; close the shipper itself.
func (h *Handler) Close(ctx context.Context) error {
	if !h.owns {
		return h.s.Flush(ctx)
	}
	return h.s.Close(ctx)
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.s.level.Level() }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	empty := 0
	for _, a := range attrs {
		if a.Value.Kind() == slog.KindGroup && len(a.Value.Group()) == 0 {
			empty++
		}
	}
	if empty == len(attrs) {
		return h
	}
	c := *h.c
	c.pre = slices.Clip(h.c.pre)
	c.groups = slices.Clip(h.c.groups)
	var st slogState
	st.init(h.s, &c, c.pre, nil)
	st.sep = len(c.pre) > 0 && c.pre[len(c.pre)-1] != '{'
	st.groups = append(st.groups, c.groups[:c.nOpen]...)
	pos := len(st.buf)
	st.openGroups()
	if !st.attrs(attrs) {
		st.buf = st.buf[:pos]
	} else {
		c.nOpen = len(c.groups)
	}
	c.pre = st.buf
	if st.keyFound {
		c.key, c.hasKey = st.key, true
	}
	return &Handler{s: h.s, c: &c, owns: h.owns}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h.c
	c.groups = append(slices.Clip(h.c.groups), name)
	return &Handler{s: h.s, c: &c, owns: h.owns}
}

// Handle encodes r and hands it to the shipper. It never waits on the
// network and always returns nil: records that cannot be shipped are
// counted in Stats.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	e := h.s.getEntry()
	st := &e.js
	st.init(h.s, h.c, e.val[:0], e.key[:0])
	st.record(&r)
	e.val, e.key = st.buf, st.key
	if !st.keyFound {
		e.key = e.key[:0]
		if h.c.hasKey {
			e.key = append(e.key, h.c.key...)
		}
	}
	st.release()
	if st.tooLarge {
		h.s.c.tooLarge.Add(1)
		h.s.drop(e, int64(len(e.val)))
		return nil
	}
	e.rec.Value = e.val
	e.setMeta(r.Time, slogLevelHeader(r.Level, e))
	h.s.submit(e)
	return nil
}

// slogLevelHeader is the level header value: lowercase, like zap's names.
func slogLevelHeader(l slog.Level, e *entry) []byte {
	switch l {
	case slog.LevelDebug:
		return zapLevelNames[0]
	case slog.LevelInfo:
		return zapLevelNames[1]
	case slog.LevelWarn:
		return zapLevelNames[2]
	case slog.LevelError:
		return zapLevelNames[3]
	}
	b := e.levelBuf[:0]
	for _, c := range []byte(l.String()) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if len(b) < cap(b) {
			b = append(b, c)
		}
	}
	return b
}

// slogState encodes one record (or one WithAttrs call). It lives in the
// entry so that encoding allocates nothing.
type slogState struct {
	s        *Shipper
	h        *handlerCommon
	buf      []byte
	sep      bool     // a comma goes before the next key
	groups   []string // open groups, for ReplaceAttr and the key path
	arr      [8]string
	depth    int
	key      []byte
	keyFound bool
	limit    int
	tooLarge bool
	eachAttr func(slog.Attr) bool // bound once: r.Attrs(eachAttr)
	attrSeen bool                 // eachAttr's result accumulator
}

func (st *slogState) init(s *Shipper, h *handlerCommon, buf, key []byte) {
	st.s, st.h, st.buf, st.key = s, h, buf, key
	st.sep, st.depth, st.keyFound, st.tooLarge = false, 0, false, false
	st.groups = st.arr[:0]
	st.limit = s.cfg.MaxRecordBytes
	if st.eachAttr == nil {
		st.eachAttr = func(a slog.Attr) bool {
			if st.attr(a) {
				st.attrSeen = true
			}
			return !st.tooLarge
		}
	}
}

// release drops references the state holds into the handler and record.
func (st *slogState) release() {
	st.h, st.buf, st.key = nil, nil, nil
	clear(st.arr[:])
	st.groups = nil
}

// record encodes r as slog's JSONHandler would.
func (st *slogState) record(r *slog.Record) {
	st.buf = append(st.buf, '{')
	rep := st.h.replace
	// Built-ins are not in any group.
	saved := st.groups
	st.groups = nil
	if !r.Time.IsZero() {
		t := r.Time.Round(0)
		if rep == nil {
			st.appendKey(slog.TimeKey)
			st.appendTime(t)
		} else {
			st.attr(slog.Time(slog.TimeKey, t))
		}
	}
	if rep == nil {
		st.appendKey(slog.LevelKey)
		st.buf = appendJSONString(st.buf, r.Level.String())
	} else {
		st.attr(slog.Any(slog.LevelKey, r.Level))
	}
	if st.h.addSource {
		st.source(r.PC)
	}
	if rep == nil {
		st.appendKey(slog.MessageKey)
		st.appendString(r.Message)
	} else {
		st.attr(slog.String(slog.MessageKey, r.Message))
	}
	st.groups = saved[:0]
	st.groups = append(st.groups, st.h.groups[:st.h.nOpen]...)

	if pre := st.h.pre; len(pre) > 0 {
		if st.sep {
			st.buf = append(st.buf, ',')
		}
		st.buf = append(st.buf, pre...)
		st.sep = pre[len(pre)-1] != '{'
	}
	nOpen := st.h.nOpen
	if r.NumAttrs() > 0 {
		pos := len(st.buf)
		st.openGroups()
		nOpen = len(st.h.groups)
		st.attrSeen = false
		r.Attrs(st.eachAttr)
		if !st.attrSeen {
			st.buf = st.buf[:pos]
			nOpen = st.h.nOpen
		}
	}
	for range nOpen {
		st.buf = append(st.buf, '}')
	}
	st.buf = append(st.buf, '}')
	if len(st.buf) > st.limit {
		st.tooLarge = true
	}
}

// source appends the "source" attribute for pc. Without ReplaceAttr the
// encoded form is cached per program counter, so only the first record
// from a call site pays for the symbol lookup.
func (st *slogState) source(pc uintptr) {
	if st.h.replace == nil && pc != 0 {
		if enc, ok := sourceCache.Load(pc); ok {
			st.appendKey(slog.SourceKey)
			st.buf = append(st.buf, enc.([]byte)...)
			return
		}
	}
	src := &slog.Source{}
	if pc != 0 {
		f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
		src = &slog.Source{Function: f.Function, File: f.File, Line: f.Line}
	}
	if st.h.replace != nil || pc == 0 {
		st.attr(slog.Any(slog.SourceKey, src))
		return
	}
	var enc []byte
	enc = append(enc, '{')
	sep := false
	field := func(k string) {
		if sep {
			enc = append(enc, ',')
		}
		enc = appendJSONString(enc, k)
		enc = append(enc, ':')
		sep = true
	}
	if src.Function != "" {
		field("function")
		enc = appendJSONString(enc, src.Function)
	}
	if src.File != "" {
		field("file")
		enc = appendJSONString(enc, src.File)
	}
	if src.Line != 0 {
		field("line")
		enc = strconv.AppendInt(enc, int64(src.Line), 10)
	}
	enc = append(enc, '}')
	if len(enc) == 2 {
		return // an empty source is elided
	}
	sourceCache.Store(pc, enc)
	st.appendKey(slog.SourceKey)
	st.buf = append(st.buf, enc...)
}

// sourceCache maps a program counter to its encoded source object. It
// grows with the number of distinct logging call sites, which is bounded
// by the program.
var sourceCache sync.Map

func (st *slogState) openGroups() {
	for _, g := range st.h.groups[st.h.nOpen:] {
		st.openGroup(g)
	}
}

func (st *slogState) openGroup(name string) {
	st.appendKey(name)
	st.buf = append(st.buf, '{')
	st.sep = false
	st.groups = append(st.groups, name)
}

func (st *slogState) closeGroup() {
	st.buf = append(st.buf, '}')
	st.sep = true
	st.groups = st.groups[:len(st.groups)-1]
}

// attrs appends each attribute and reports whether any was appended.
func (st *slogState) attrs(as []slog.Attr) bool {
	any := false
	for _, a := range as {
		if st.attr(a) {
			any = true
		}
		if st.tooLarge {
			break
		}
	}
	return any
}

// attr appends one attribute with slog's rules (resolve, ReplaceAttr,
// elide empty attributes, inline groups with an empty key) and reports
// whether something was appended.
func (st *slogState) attr(a slog.Attr) bool {
	a.Value = a.Value.Resolve()
	if rep := st.h.replace; rep != nil && a.Value.Kind() != slog.KindGroup {
		a = st.replace(rep, a)
		a.Value = a.Value.Resolve()
	}
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return false
	}
	if src, ok := sourceValue(a.Value); ok {
		if *src == (slog.Source{}) {
			return false
		}
		a.Value = sourceGroup(src)
	}
	if st.s.keyField != "" && a.Value.Kind() != slog.KindGroup && st.isKeyField(a.Key) {
		st.takeKey(a.Value)
	}
	if a.Value.Kind() != slog.KindGroup {
		st.appendKey(a.Key)
		st.appendValue(a.Value)
		if len(st.buf) > st.limit {
			st.tooLarge = true
		}
		return true
	}
	as := a.Value.Group()
	if len(as) == 0 {
		return true // as slog does: nothing written, yet not "empty"
	}
	if st.depth >= maxGroupDepth {
		st.appendKey(a.Key)
		st.appendString("!ERROR:groups nested too deep")
		return true
	}
	pos := len(st.buf)
	sep := st.sep
	if a.Key != "" {
		st.openGroup(a.Key)
	}
	st.depth++
	ok := st.attrs(as)
	st.depth--
	if !ok {
		st.buf = st.buf[:pos]
		st.sep = sep
		if a.Key != "" {
			st.groups = st.groups[:len(st.groups)-1]
		}
		return false
	}
	if a.Key != "" {
		st.closeGroup()
	}
	return true
}

// replace calls the user's ReplaceAttr, turning a panic into an error
// marker.
func (st *slogState) replace(rep func([]string, slog.Attr) slog.Attr, a slog.Attr) (out slog.Attr) {
	defer func() {
		if r := recover(); r != nil {
			out = slog.String(a.Key, fmt.Sprintf("!PANIC: ReplaceAttr: %v", r))
		}
	}()
	var gs []string
	if st.groups != nil {
		gs = st.groups
	}
	return rep(gs, a)
}

func sourceValue(v slog.Value) (*slog.Source, bool) {
	if v.Kind() != slog.KindAny {
		return nil, false
	}
	src, ok := v.Any().(*slog.Source)
	return src, ok && src != nil
}

func sourceGroup(src *slog.Source) slog.Value {
	var as []slog.Attr
	if src.Function != "" {
		as = append(as, slog.String("function", src.Function))
	}
	if src.File != "" {
		as = append(as, slog.String("file", src.File))
	}
	if src.Line != 0 {
		as = append(as, slog.Int("line", src.Line))
	}
	return slog.GroupValue(as...)
}

// isKeyField reports whether the attribute key, inside the open groups, is
// Config.KeyField (groups joined with dots).
func (st *slogState) isKeyField(key string) bool {
	want := st.s.keyField
	if len(st.groups) == 0 {
		return key == want
	}
	for _, g := range st.groups {
		if len(want) <= len(g) || want[:len(g)] != g || want[len(g)] != '.' {
			return false
		}
		want = want[len(g)+1:]
	}
	return key == want
}

// takeKey makes v the record key, if it is of a kind that makes sense.
func (st *slogState) takeKey(v slog.Value) {
	k := st.key[:0]
	switch v.Kind() {
	case slog.KindString:
		k = append(k, v.String()...)
	case slog.KindInt64:
		k = strconv.AppendInt(k, v.Int64(), 10)
	case slog.KindUint64:
		k = strconv.AppendUint(k, v.Uint64(), 10)
	case slog.KindBool:
		k = strconv.AppendBool(k, v.Bool())
	case slog.KindFloat64:
		k = strconv.AppendFloat(k, v.Float64(), 'g', -1, 64)
	case slog.KindAny:
		s, ok := safeString(v.Any())
		if !ok {
			return
		}
		k = append(k, s...)
	default:
		return
	}
	st.key, st.keyFound = k, true
}

// safeString returns the String or Error of v, if it has one that does
// not panic.
func safeString(v any) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	switch x := v.(type) {
	case string:
		return x, true
	case fmt.Stringer:
		return x.String(), true
	case error:
		return x.Error(), true
	}
	return "", false
}

func (st *slogState) appendKey(key string) {
	if st.sep {
		st.buf = append(st.buf, ',')
	}
	st.buf = appendJSONString(st.buf, key)
	st.buf = append(st.buf, ':')
	st.sep = true
}

func (st *slogState) appendString(s string) {
	if len(st.buf)+len(s) > st.limit {
		// Do not copy a huge string only to drop the record.
		st.tooLarge = true
		st.buf = append(st.buf, `""`...)
		return
	}
	st.buf = appendJSONString(st.buf, s)
}

// appendTime appends t as slog's JSONHandler does (RFC 3339 with
// nanoseconds); a year JSON cannot carry becomes an error marker.
func (st *slogState) appendTime(t time.Time) {
	if y := t.Year(); y < 0 || y >= 10000 {
		st.appendString("!ERROR:time.Time year outside of range [0,9999]")
		return
	}
	st.buf = append(st.buf, '"')
	st.buf = appendRFC3339Nano(st.buf, t)
	st.buf = append(st.buf, '"')
}

// appendValue appends a non-group value. A panic in the value's methods
// becomes "<nil>" (for a nil pointer receiver) or a "!PANIC: …" string, as
// in slog.
func (st *slogState) appendValue(v slog.Value) {
	pos := len(st.buf)
	defer func() {
		if r := recover(); r != nil {
			st.buf = st.buf[:pos]
			if rv := reflect.ValueOf(v.Any()); rv.Kind() == reflect.Pointer && rv.IsNil() {
				st.appendString("<nil>")
				return
			}
			st.appendString(fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	switch v.Kind() {
	case slog.KindString:
		st.appendString(v.String())
	case slog.KindInt64:
		st.buf = strconv.AppendInt(st.buf, v.Int64(), 10)
	case slog.KindUint64:
		st.buf = strconv.AppendUint(st.buf, v.Uint64(), 10)
	case slog.KindFloat64:
		var ok bool
		if st.buf, ok = appendJSONFloat(st.buf, v.Float64()); !ok {
			st.appendString("!ERROR:json: unsupported value: " + strconv.FormatFloat(v.Float64(), 'g', -1, 64))
		}
	case slog.KindBool:
		st.buf = strconv.AppendBool(st.buf, v.Bool())
	case slog.KindDuration:
		st.buf = strconv.AppendInt(st.buf, int64(v.Duration()), 10)
	case slog.KindTime:
		st.appendTime(v.Time())
	case slog.KindAny, slog.KindLogValuer:
		a := v.Any()
		_, isJSON := a.(json.Marshaler)
		if err, ok := a.(error); ok && !isJSON {
			st.appendString(err.Error())
			return
		}
		var err error
		if st.buf, err = appendJSONMarshal(st.buf, a); err != nil {
			st.buf = st.buf[:pos]
			st.appendString("!ERROR:" + err.Error())
		}
	default:
		st.appendString("!ERROR:" + errBadKind.Error() + " " + v.Kind().String())
	}
}

var errBadKind = errors.New("unknown slog value kind")
