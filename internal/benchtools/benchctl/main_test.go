package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLastJSONLine(t *testing.T) {
	got := string(lastJSONLine([]byte("progress 1\n{\"records\":1}\nprogress 2\n{\"records\":2}\n")))
	if got != `{"records":2}` {
		t.Fatalf("lastJSONLine = %q", got)
	}
}

// TestPrintTable checks medians over rounds, the ratio column and the
// verdicts, including a missing baseline.
func TestPrintTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gregor-produce-100B-1p.r1.json", `{"records":10,"records_per_sec":100,"mb_per_sec":1,"broker_cpu_seconds_per_million_records":1}`)
	write("gregor-produce-100B-1p.r2.json", `{"records":10,"records_per_sec":300,"mb_per_sec":3,"broker_cpu_seconds_per_million_records":1}`)
	write("gregor-produce-100B-1p.r3.json", `{"records":10,"records_per_sec":200,"mb_per_sec":2,"broker_cpu_seconds_per_million_records":1}`)
	write("null-produce-100B-1p.r1.json", `{"records":10,"records_per_sec":150,"mb_per_sec":1.5,"broker_cpu_seconds_per_million_records":0.5}`)
	write("kfake-disk-produce-100B-1p.r1.json", `{"records":10,"records_per_sec":100,"mb_per_sec":1,"broker_cpu_seconds_per_million_records":4}`)
	write("gregor-e2e-5000rps.r1.json", `{"records":10,"records_per_sec":5000,"e2e_latency_ms":{"p50":0.5,"p99":3}}`)
	write("gregor-consume-100B-1p.r1.json", `not json`)

	var b strings.Builder
	if err := printTable(dir, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	rowWith := func(parts ...string) string {
		t.Helper()
		for _, line := range strings.Split(out, "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		t.Fatalf("no row with %q in:\n%s", parts, out)
		return ""
	}
	// Median of 100, 300, 200 is 200; ratio 2.00x meets >= 1.2x. The null
	// broker's 150 against kfake's 100 is the ceiling column's 1.50x.
	if row := rowWith("produce 100 B", "records/s"); !strings.Contains(row, "200") || !strings.Contains(row, "2.00x") || !strings.Contains(row, "1.50x") || !strings.HasSuffix(row, "yes") {
		t.Errorf("produce records/s row: %q", row)
	}
	// CPU 1 vs 4: 0.25x meets <= 0.5x.
	if row := rowWith("produce 100 B", "CPU"); !strings.Contains(row, "0.25x") || !strings.HasSuffix(row, "yes") {
		t.Errorf("produce CPU row: %q", row)
	}
	// p99 3 ms misses the 2 ms goal with no baseline needed.
	if row := rowWith("e2e", "p99"); !strings.HasSuffix(row, "NO") {
		t.Errorf("e2e p99 row: %q", row)
	}
	// No kfake result: no verdict.
	if row := rowWith("produce 1 KB", "records/s"); !strings.HasSuffix(row, "?") {
		t.Errorf("produce 1 KB row: %q", row)
	}
	if !strings.Contains(out, "unreadable result") {
		t.Errorf("bad JSON not reported:\n%s", out)
	}
	if !strings.Contains(out, "median of up to 3 runs") {
		t.Errorf("rounds not reported:\n%s", out)
	}
}
