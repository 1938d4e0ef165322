package main

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestConsumerStopsAtEnd(t *testing.T) {
	plan := &consumePlan{
		topic: "t",
		start: map[int32]int64{0: 0, 1: 5, 2: 7},
		end:   map[int32]int64{0: 3, 1: 5, 2: 9},
	}
	f, _ := parseRecordFormat(`%p:%o `)
	var out bytes.Buffer
	c := newConsumer(plan, f, false, 0, &out)
	if c.wants(1) || !c.wants(0) || !c.wants(2) {
		t.Fatal("partition 1 starts at its end and must not be fetched")
	}
	rec := func(p int32, o int64) *kgo.Record { return &kgo.Record{Partition: p, Offset: o} }
	if !c.record(rec(0, 0)) || !c.record(rec(0, 1)) {
		t.Fatal("partition 0 ended early")
	}
	if c.record(rec(0, 2)) { // the last offset before the end
		t.Fatal("partition 0 must be done at offset 2")
	}
	if c.record(rec(0, 3)) { // past the end: not printed
		t.Fatal("record past the end accepted")
	}
	if c.finished() {
		t.Fatal("partition 2 is still pending")
	}
	// A control record (a transaction marker) at the end is not printed but
	// ends the partition.
	c.record(rec(2, 7))
	marker := rec(2, 8)
	marker.Attrs = kgo.NewRecordAttrs(kgo.RecordAttrsOpts{Control: true})
	c.record(marker)
	if !c.finished() {
		t.Fatal("not finished after every partition reached its end")
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "0:0 0:1 0:2 2:7 " {
		t.Errorf("printed %q", got)
	}

	// With a limit and follow, it stops at the limit only.
	out.Reset()
	c = newConsumer(plan, f, true, 2, &out)
	if c.finished() || !c.wants(1) {
		t.Fatal("follow must want every partition")
	}
	c.record(rec(1, 100))
	c.record(rec(0, 50))
	if !c.finished() || c.record(rec(0, 51)) {
		t.Fatal("limit not honoured")
	}
	_ = c.flush()
	if got := out.String(); got != "1:100 0:50 " {
		t.Errorf("printed %q", got)
	}
}
