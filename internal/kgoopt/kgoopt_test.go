package kgoopt

import (
	"errors"
	"testing"
)

func TestNames(t *testing.T) {
	for _, n := range []string{"", "none", "gzip", "snappy", "lz4", "zstd"} {
		if _, err := Compression(n); err != nil {
			t.Errorf("Compression(%q): %v", n, err)
		}
	}
	if _, err := Compression("brotli"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Compression(brotli): %v", err)
	}
	for _, n := range []string{"all", "-1", "1", "0"} {
		if _, err := Acks(n); err != nil {
			t.Errorf("Acks(%q): %v", n, err)
		}
	}
	if _, err := Acks("2"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Acks(2): %v", err)
	}
}
