package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"regexp"
	"strings"
	"testing"

	"github.com/gregor-log/gregor/internal/config"
	"github.com/gregor-log/gregor/internal/vfs"
)

func mustRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func TestAckTrackerOutOfOrder(t *testing.T) {
	tr := newAckTracker(100)
	first := tr.add([]trackEntry{{end: 110}, {end: 120}, {end: 130, done: true}, {end: 140}})
	if off, p := tr.acked(); off != 100 || p != 3 {
		t.Fatalf("start: %d %d", off, p)
	}
	tr.ack(first + 1)
	if off, _ := tr.acked(); off != 100 {
		t.Fatalf("advanced past an unacknowledged line: %d", off)
	}
	tr.ack(first)
	if off, _ := tr.acked(); off != 130 { // through the pre-acknowledged marker
		t.Fatalf("after first: %d", off)
	}
	tr.ack(first) // duplicate acks are harmless
	tr.ack(first + 3)
	if off, p := tr.acked(); off != 140 || p != 0 {
		t.Fatalf("end: %d %d", off, p)
	}
	// Many random-order acks: the checkpoint is always the end of the
	// longest acknowledged prefix.
	rng := rand.New(rand.NewSource(1))
	tr = newAckTracker(0)
	const n = 5000
	ents := make([]trackEntry, n)
	for i := range ents {
		ents[i].end = int64(i + 1)
	}
	base := tr.add(ents)
	acked := make([]bool, n)
	for _, i := range rng.Perm(n) {
		tr.ack(base + uint64(i))
		acked[i] = true
		want := 0
		for want < n && acked[want] {
			want++
		}
		if off, _ := tr.acked(); off != int64(want) {
			t.Fatalf("checkpoint %d, want %d", off, want)
		}
	}
}

func TestCheckpointRoundTripAndDamage(t *testing.T) {
	entries := []checkpointEntry{
		{Path: "/a", Dev: 1, Ino: 2, FPLen: 3, FP: strings.Repeat("ab", 32), Offset: 10, State: entryBound, Seen: 5},
		{Path: "/b", Dev: 1, Ino: 3, Offset: 0, State: entryOrphan},
	}
	data := encodeCheckpoint(entries)
	got, errs := decodeCheckpoint("ckpt", data)
	if len(errs) != 0 || len(got) != 2 || got[0] != entries[0] || got[1] != entries[1] {
		t.Fatalf("round trip: %+v %v", got, errs)
	}
	// Flip a byte inside the first entry: only that entry is lost.
	bad := bytes.Replace(data, []byte(`"offset":10`), []byte(`"offset":90`), 1)
	got, errs = decodeCheckpoint("ckpt", bad)
	if len(got) != 1 || got[0].Path != "/b" || len(errs) != 1 || !errors.Is(errs[0], ErrCorruptCheckpoint) {
		t.Fatalf("damaged entry: %+v %v", got, errs)
	}
	if !strings.Contains(errs[0].Error(), "ckpt:2: checksum mismatch") {
		t.Fatalf("message: %v", errs[0])
	}
	// Garbage: nothing survives, everything is reported, nothing panics.
	got, errs = decodeCheckpoint("ckpt", []byte("\x00\xffgarbage\nmore"))
	if len(got) != 0 || len(errs) == 0 {
		t.Fatalf("garbage: %+v %v", got, errs)
	}
}

func TestReadCheckpointKeepsDamagedCopy(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeCheckpoint(fs, "/d", []byte("not a checkpoint\n")); err != nil {
		t.Fatal(err)
	}
	_, damage, err := readCheckpoint(fs, "/d")
	if err != nil || len(damage) == 0 {
		t.Fatalf("readCheckpoint: %v %v", damage, err)
	}
	if b, err := vfs.ReadFile(fs, "/d/checkpoint.corrupt"); err != nil || string(b) != "not a checkpoint\n" {
		t.Fatalf("corrupt copy: %q %v", b, err)
	}
	if e, d, err := readCheckpoint(fs, "/missing"); err != nil || e != nil || d != nil {
		t.Fatalf("missing checkpoint: %v %v %v", e, d, err)
	}
}

// FuzzDecodeCheckpoint: arbitrary bytes never panic, and whatever decodes
// encodes back to entries that decode identically.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint([]checkpointEntry{{Path: "/x", Dev: 1, Ino: 2, Offset: 3, State: entryBound}}))
	f.Add([]byte(checkpointHeader + "\n00000000 {}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := decodeCheckpoint("fuzz", data)
		again, errs := decodeCheckpoint("fuzz", encodeCheckpoint(entries))
		if len(errs) != 0 || len(again) != len(entries) {
			t.Fatalf("re-decode: %d entries, %v", len(again), errs)
		}
	})
}

func TestEncoder(t *testing.T) {
	mk := func(in config.Input) *encoder {
		t.Helper()
		e, err := newEncoder(&in)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	path := []byte("/var/log/x.log")

	raw := mk(config.Input{Parser: config.Parser{Type: "raw"}, Key: "path", Fields: map[string]string{"b": "2", "a": "1"}})
	garbage := []byte{0xff, 0x00, 'a', 0xc3}
	k, v, err := raw.encode(garbage, path)
	if err != nil || !bytes.Equal(v, garbage) || !bytes.Equal(k, path) {
		t.Fatalf("raw: %q %q %v", k, v, err)
	}
	if strings.Join(raw.fieldKeys, ",") != "a,b" {
		t.Fatalf("field header order: %v", raw.fieldKeys)
	}

	js := mk(config.Input{Parser: config.Parser{Type: "json"}, Key: "field:user", Fields: map[string]string{"env": "prod", "user": "static"}})
	k, v, err = js.encode([]byte(`{"user":"ann","n":1}`), path)
	var obj map[string]any
	if err != nil || string(k) != "ann" || json.Unmarshal(v, &obj) != nil || obj["env"] != "prod" || obj["user"] != "ann" {
		t.Fatalf("json: %q %s %v", k, v, err)
	}
	k, v, err = js.encode([]byte(`{"user":7}`), path)
	if err != nil || string(k) != "7" {
		t.Fatalf("json number key: %q %s %v", k, v, err)
	}
	k, v, err = js.encode([]byte(`not json`), path)
	if !errors.Is(err, ErrParse) || string(v) != "not json" || k != nil {
		t.Fatalf("json parse error: %q %q %v", k, v, err)
	}
	plain := mk(config.Input{Parser: config.Parser{Type: "json"}})
	if _, v, err = plain.encode([]byte(` {"a": 1} `), path); err != nil || string(v) != ` {"a": 1} ` {
		t.Fatalf("json without fields is shipped as written: %q %v", v, err)
	}

	// The line's own bytes are kept: member order, spacing, escapes; the
	// missing static fields are added at the end in name order, without
	// HTML escapes.
	tags := mk(config.Input{Parser: config.Parser{Type: "json"}, Key: "field:env",
		Fields: map[string]string{"env": "a<b>&c", "dc": "eu", "zone": "1"}})
	for line, want := range map[string]string{
		`{"z":1, "a":"<x>\u00e9", "zone":"9"}` + "\r": `{"z":1, "a":"<x>\u00e9", "zone":"9","dc":"eu","env":"a<b>&c"}` + "\r",
		` { } `:                       ` { "dc":"eu","env":"a<b>&c","zone":"1"} `,
		`{"env":"x","dc":1,"zone":2}`: `{"env":"x","dc":1,"zone":2}`,
	} {
		k, v, err = tags.encode([]byte(line), path)
		if err != nil || string(v) != want || json.Unmarshal(v, &obj) != nil {
			t.Errorf("json fields added to %q: %q %v; want %q", line, v, err, want)
		}
		if wantKey := map[bool]string{true: "x", false: "a<b>&c"}[strings.Contains(line, `"env"`)]; string(k) != wantKey {
			t.Errorf("key of %q: %q, want %q (the line's field, else the static one)", line, k, wantKey)
		}
	}

	re := mk(config.Input{Parser: config.Parser{Type: "regex", Pattern: `^(?P<level>\w+) (?P<msg>.*)$`}, Key: "field:level", Fields: map[string]string{"svc": "x"}})
	k, v, err = re.encode([]byte("WARN disk \xff full"), path)
	if err != nil || string(k) != "WARN" || json.Unmarshal(v, &obj) != nil || obj["msg"] != "disk \uFFFD full" || obj["svc"] != "x" {
		t.Fatalf("regex: %q %s %v", k, v, err)
	}
	if _, v, err = re.encode([]byte("INFO a<b>&c"), path); err != nil || string(v) != `{"level":"INFO","msg":"a<b>&c","svc":"x"}` {
		t.Fatalf("regex output escapes: %s %v", v, err)
	}
	if _, v, err = re.encode([]byte("nomatch"), path); !errors.Is(err, ErrParse) || string(v) != "nomatch" {
		t.Fatalf("regex no match: %q %v", v, err)
	}
}
