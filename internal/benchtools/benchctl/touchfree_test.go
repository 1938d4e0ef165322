package main

import "testing"

func TestMeminfoKiB(t *testing.T) {
	data := []byte("MemTotal:       24684084 kB\nMemFree:        24380080 kB\nHugePages_Total:       0\n")
	if v, err := meminfoKiB(data, "MemFree"); err != nil || v != 24380080 {
		t.Fatalf("MemFree = %d, %v; want 24380080", v, err)
	}
	if v, err := meminfoKiB(data, "HugePages_Total"); err != nil || v != 0 {
		t.Fatalf("HugePages_Total = %d, %v; want 0", v, err)
	}
	if _, err := meminfoKiB(data, "MemAvailable"); err == nil {
		t.Fatal("a missing field was found")
	}
	if _, err := meminfoKiB([]byte("MemFree: lots kB\n"), "MemFree"); err == nil {
		t.Fatal("a malformed value was accepted")
	}
}
