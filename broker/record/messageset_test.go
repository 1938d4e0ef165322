package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// testMessage is one message of a hand-built message set.
type testMessage struct {
	magic      int8
	attrs      int8
	ts         int64
	key, value []byte // nil for null
}

// appendMessage appends m, framed with offset off, to set.
func appendMessage(set []byte, off int64, m testMessage) []byte {
	var body []byte
	body = append(body, byte(m.magic), byte(m.attrs))
	if m.magic == 1 {
		body = binary.BigEndian.AppendUint64(body, uint64(m.ts))
	}
	for _, b := range [][]byte{m.key, m.value} {
		if b == nil {
			body = binary.BigEndian.AppendUint32(body, 0xffffffff)
			continue
		}
		body = binary.BigEndian.AppendUint32(body, uint32(len(b)))
		body = append(body, b...)
	}
	set = binary.BigEndian.AppendUint64(set, uint64(off))
	set = binary.BigEndian.AppendUint32(set, uint32(4+len(body)))
	set = binary.BigEndian.AppendUint32(set, crc32.ChecksumIEEE(body))
	return append(set, body...)
}

func messageSet(ms ...testMessage) []byte {
	var set []byte
	for i, m := range ms {
		set = appendMessage(set, int64(i), m)
	}
	return set
}

// wrapped is a compressed wrapper message of magic holding ms.
func wrapped(t *testing.T, c Codec, magic int8, ts int64, ms ...testMessage) testMessage {
	t.Helper()
	inner, err := Compress(c, nil, messageSet(ms...))
	if err != nil {
		t.Fatal(err)
	}
	return testMessage{magic: magic, attrs: int8(c), ts: ts, value: inner}
}

type gotRecord struct {
	key, value []byte
	ts         int64
}

func convertedRecords(t *testing.T, set []byte) (Header, []gotRecord) {
	t.Helper()
	batch, err := FromMessageSet(set)
	if err != nil {
		t.Fatalf("FromMessageSet: %v", err)
	}
	h, err := Validate(batch)
	if err != nil {
		t.Fatalf("converted batch does not validate: %v", err)
	}
	var out []gotRecord
	if err := Records(h, batch, func(r *Record) error {
		out = append(out, gotRecord{bytes.Clone(r.Key), bytes.Clone(r.Value), h.BaseTimestamp + r.TimestampDelta})
		if r.Key != nil && len(r.Key) == 0 {
			out[len(out)-1].key = []byte{}
		}
		if r.Value != nil && len(r.Value) == 0 {
			out[len(out)-1].value = []byte{}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return h, out
}

func sameRecords(t *testing.T, got []gotRecord, want []testMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		wantTs := w.ts
		if w.magic == 0 {
			wantTs = -1
		}
		if (g.key == nil) != (w.key == nil) || !bytes.Equal(g.key, w.key) ||
			(g.value == nil) != (w.value == nil) || !bytes.Equal(g.value, w.value) || g.ts != wantTs {
			t.Errorf("record %d: key %q (nil %v) value %q (nil %v) ts %d; want %q (nil %v) %q (nil %v) %d",
				i, g.key, g.key == nil, g.value, g.value == nil, g.ts, w.key, w.key == nil, w.value, w.value == nil, wantTs)
		}
	}
}

func TestFromMessageSet(t *testing.T) {
	const ts = 1_700_000_000_000
	plain := []testMessage{
		{magic: 1, ts: ts, key: []byte("k1"), value: []byte("v1")},
		{magic: 1, ts: ts + 5, key: nil, value: []byte("no key")},
		{magic: 1, ts: ts - 3, key: []byte{}, value: []byte{}},
		{magic: 1, ts: ts + 1, key: []byte("tombstone"), value: nil},
	}
	t.Run("magic1", func(t *testing.T) {
		h, got := convertedRecords(t, messageSet(plain...))
		sameRecords(t, got, plain)
		if h.Codec() != CodecNone || h.ProducerID != -1 || h.NumRecords != 4 {
			t.Errorf("header %+v", h)
		}
	})
	t.Run("magic0", func(t *testing.T) {
		ms := []testMessage{{magic: 0, key: []byte("a"), value: []byte("b")}, {magic: 0, value: []byte("c")}}
		_, got := convertedRecords(t, messageSet(ms...))
		sameRecords(t, got, ms)
	})
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4} {
		t.Run("compressed-"+c.String(), func(t *testing.T) {
			// Two wrappers, then an uncompressed message: all in order,
			// in one batch compressed with the first wrapper's codec.
			set := messageSet(
				wrapped(t, c, 1, ts, plain[:2]...),
				wrapped(t, c, 1, ts, plain[2:]...),
				testMessage{magic: 1, ts: ts + 9, value: []byte("last")},
			)
			h, got := convertedRecords(t, set)
			sameRecords(t, got, append(append([]testMessage{}, plain...), testMessage{magic: 1, ts: ts + 9, value: []byte("last")}))
			if h.Codec() != c {
				t.Errorf("codec %v, want %v", h.Codec(), c)
			}
		})
	}

	bad := map[string][]byte{
		"empty":     nil,
		"short":     messageSet(plain[0])[:10],
		"truncated": messageSet(plain...)[:40],
		"crc": func() []byte {
			s := messageSet(plain[0])
			s[len(s)-1] ^= 1
			return s
		}(),
		"magic 2":        messageSet(testMessage{magic: 2, value: []byte("x")}),
		"attributes":     messageSet(testMessage{magic: 1, attrs: 0x40, value: []byte("x")}),
		"codec 4":        messageSet(testMessage{magic: 1, attrs: 4, value: []byte("x")}),
		"nested":         messageSet(wrapped(t, CodecGzip, 1, ts, wrapped(t, CodecGzip, 1, ts, plain[0]))),
		"empty wrapper":  messageSet(wrapped(t, CodecGzip, 1, ts)),
		"not compressed": messageSet(testMessage{magic: 1, attrs: int8(CodecGzip), value: []byte("not gzip")}),
		"key length": func() []byte {
			s := messageSet(plain[0])
			binary.BigEndian.PutUint32(s[12+4+2+8:], 1000)
			binary.BigEndian.PutUint32(s[12:], crc32.ChecksumIEEE(s[16:]))
			return s
		}(),
		"trailing bytes in message": func() []byte {
			s := messageSet(plain[0])
			s = append(s, 'x')
			binary.BigEndian.PutUint32(s[8:], binary.BigEndian.Uint32(s[8:])+1)
			binary.BigEndian.PutUint32(s[12:], crc32.ChecksumIEEE(s[16:]))
			return s
		}(),
	}
	for name, set := range bad {
		if _, err := FromMessageSet(set); err == nil {
			t.Errorf("%s: converted", name)
		} else if ce := (*CorruptionError)(nil); !errors.As(err, &ce) {
			t.Errorf("%s: %v is not a CorruptionError", name, err)
		}
	}
}

// FuzzFromMessageSet: any bytes either convert into a batch that validates
// or fail with a CorruptionError; never a panic.
func FuzzFromMessageSet(f *testing.F) {
	f.Add(messageSet(testMessage{magic: 1, ts: 5, key: []byte("k"), value: []byte("v")}, testMessage{magic: 0, value: []byte("w")}))
	inner := messageSet(testMessage{magic: 1, ts: 5, value: []byte("inner")})
	gz, _ := Compress(CodecGzip, nil, inner)
	f.Add(messageSet(testMessage{magic: 1, attrs: int8(CodecGzip), value: gz}))
	f.Fuzz(func(t *testing.T, set []byte) {
		batch, err := FromMessageSet(set)
		if err != nil {
			if ce := (*CorruptionError)(nil); !errors.As(err, &ce) {
				t.Fatalf("%v is not a CorruptionError", err)
			}
			return
		}
		if _, err := Validate(batch); err != nil {
			t.Fatalf("converted batch does not validate: %v", err)
		}
	})
}

// TestAppendMessageSet down-converts plain, compressed, LogAppendTime and
// control batches, from an offset inside the first, to message sets of
// both formats and compares them with sets built by hand: every record at
// or after the offset, at its absolute offset, without headers, markers
// or compression.
func TestAppendMessageSet(t *testing.T) {
	var log []byte
	b := NewBuilder()
	b.Add(nil, []byte("a"), nil, 1000)
	b.Add([]byte("k"), []byte("b"), []RecordHeader{{Key: "h", Value: []byte("x")}}, 1001)
	b.Add([]byte("k2"), nil, nil, 1002)
	log = append(log, b.Build()...)

	gz := NewBuilder().SetBaseOffset(3)
	if err := gz.SetCodec(CodecGzip); err != nil {
		t.Fatal(err)
	}
	gz.Add(nil, []byte("c"), nil, 2000)
	gz.Add(nil, []byte{}, nil, 2005)
	log = append(log, gz.Build()...)

	marker := NewBuilder().SetBaseOffset(5).SetControl(true).SetTransactional(true)
	marker.Add([]byte{0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 0}, nil, 2010)
	log = append(log, marker.Build()...)

	lat := NewBuilder().SetBaseOffset(6).SetLogAppendTime(true)
	lat.Add(nil, []byte("d"), nil, 3000)
	batch := lat.Build()
	h, err := ParseHeader(batch)
	if err != nil {
		t.Fatal(err)
	}
	SetLogAppendTime(batch, &h, 9999)
	log = append(log, batch...)
	torn := NewBuilder().SetBaseOffset(7)
	torn.Add(nil, []byte("torn"), nil, 4000)
	log = append(log, torn.Build()[:30]...)

	for _, magic := range []int8{0, 1} {
		var want []byte
		for _, m := range []struct {
			off        int64
			attrs      int8
			ts         int64
			key, value []byte
		}{
			{1, 0, 1001, []byte("k"), []byte("b")},
			{2, 0, 1002, []byte("k2"), nil},
			{3, 0, 2000, nil, []byte("c")},
			{4, 0, 2005, nil, []byte{}},
			{6, 0x08, 9999, nil, []byte("d")},
		} {
			if magic == 0 {
				m.attrs = 0
			}
			want = appendMessage(want, m.off, testMessage{magic: magic, attrs: m.attrs, ts: m.ts, key: m.key, value: m.value})
		}
		got, _, err := AppendMessageSet([]byte("prefix"), log, magic, 1, 1<<20)
		if err != nil {
			t.Fatalf("magic %d: %v", magic, err)
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("magic %d:\n got %x\nwant %x", magic, got, want)
		}
		// What Produce v0-v2 takes back in is what went out.
		if _, err := FromMessageSet(got[len("prefix"):]); err != nil {
			t.Errorf("magic %d: the set does not read back: %v", magic, err)
		}
		// A limit stops the set before the message that would pass
		// it, and always lets one through.
		for _, tc := range []struct{ limit, msgs int }{{1, 1}, {len(want) - 1, 4}, {len(want), 5}} {
			part, _, err := AppendMessageSet(nil, log, magic, 1, tc.limit)
			if err != nil {
				t.Fatalf("magic %d, limit %d: %v", magic, tc.limit, err)
			}
			n := 0
			for p := 0; p < len(part); n++ {
				p += 12 + int(binary.BigEndian.Uint32(part[p+8:]))
			}
			if n != tc.msgs || !bytes.HasPrefix(want, part) {
				t.Errorf("magic %d, limit %d: %d messages, want %d (a prefix of the whole set)", magic, tc.limit, n, tc.msgs)
			}
		}
	}
	if _, _, err := AppendMessageSet(nil, log, 2, 0, 1<<20); err == nil {
		t.Error("magic 2 accepted")
	}
	bad := bytes.Clone(log)
	bad[HeaderSize] = 0x7e // the first record's length: 63, past its batch
	if _, _, err := AppendMessageSet(nil, bad, 1, 0, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a record longer than its batch: %v", err)
	}
}
