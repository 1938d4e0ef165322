package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	data, err := os.ReadFile("testdata/proc/4242/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name holds spaces and parentheses.
	utime, stime, err := parseProcStat(data)
	if err != nil || utime != 1234 || stime != 567 {
		t.Fatalf("parseProcStat = %d, %d, %v; want 1234, 567", utime, stime, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 zz 5 0"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

func TestParseListeningInodes(t *testing.T) {
	tcp, err := os.ReadFile("testdata/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	// Port 9092 (0x2384) has one listener and established connections,
	// which must not count.
	got, err := parseListeningInodes(tcp, 9092)
	if err != nil || !slices.Equal(got, []uint64{31337}) {
		t.Errorf("port 9092: %v, %v; want [31337]", got, err)
	}
	if got, _ := parseListeningInodes(tcp, 1); len(got) != 0 {
		t.Errorf("port 1: %v", got)
	}
	tcp6, err := os.ReadFile("testdata/proc/net/tcp6")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := parseListeningInodes(tcp6, 9093); err != nil || !slices.Equal(got, []uint64{52000}) {
		t.Errorf("tcp6 port 9093: %v, %v", got, err)
	}
	bad := "header\n 0: 0100007F:ZZZZ 00000000:0000 0A 0:0 0:0 0 0 0 1 1\n"
	if _, err := parseListeningInodes([]byte(bad), 9092); err == nil {
		t.Error("bad port parsed")
	}
}

// fakeProc copies testdata/proc to a temp dir and gives pid 4242 an fd
// for the socket listening on 9092 (inode 31337) and pid 77 unrelated fds.
func fakeProc(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"77/fd/0":   "/dev/null",
		"77/fd/3":   "socket:[41000]",
		"4242/fd/0": "/dev/null",
		"4242/fd/7": "socket:[31337]",
		"4242/fd/8": "socket:[52000]",
	}
	for name, target := range links {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindListeningPID(t *testing.T) {
	root := fakeProc(t)
	for _, port := range []uint16{9092, 9093} {
		pid, err := findListeningPID(root, port)
		if err != nil || pid != 4242 {
			t.Errorf("port %d: pid %d, %v; want 4242", port, pid, err)
		}
	}
	if _, err := findListeningPID(root, 1234); !errors.Is(err, errNoListener) {
		t.Errorf("port 1234: err = %v, want errNoListener", err)
	}
	// A listening socket nobody holds (the fd of 4242 gone).
	if err := os.Remove(filepath.Join(root, "4242/fd/7")); err != nil {
		t.Fatal(err)
	}
	if _, err := findListeningPID(root, 9092); !errors.Is(err, errNoListener) {
		t.Errorf("unheld socket: err = %v, want errNoListener", err)
	}
}

func TestBrokerCPUFromFixture(t *testing.T) {
	root := fakeProc(t)
	b, err := startBrokerCPU(root, 0, []string{"127.0.0.1:9092", "localhost:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.pids, []int{4242}) {
		t.Errorf("pids = %v, want [4242] once", b.pids)
	}
	if b.before != (1234+567)*10*time.Millisecond {
		t.Errorf("cpu before = %v", b.before)
	}
	// The broker burns 1.5 s more.
	stat := []byte("4242 (gregor broker) (x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1334 617 0 0 20 0 12 0\n")
	if err := os.WriteFile(filepath.Join(root, "4242/stat"), stat, 0o644); err != nil {
		t.Fatal(err)
	}
	if used, err := b.used(); err != nil || used != 1500*time.Millisecond {
		t.Errorf("used = %v, %v; want 1.5s", used, err)
	}

	s := &perfSummary{Records: 3_000_000}
	s.finish(time.Second, b, nil)
	if s.BrokerCPUSeconds == nil || *s.BrokerCPUSeconds != 1.5 ||
		s.BrokerCPUSecondsPerMillion == nil || *s.BrokerCPUSecondsPerMillion != 0.5 {
		t.Errorf("summary CPU = %v, %v", s.BrokerCPUSeconds, s.BrokerCPUSecondsPerMillion)
	}

	if _, err := startBrokerCPU(root, -1, nil); err == nil {
		t.Error("pid -1 must disable measuring")
	}
	if b, err := startBrokerCPU(root, 4242, nil); err != nil || !slices.Equal(b.pids, []int{4242}) {
		t.Errorf("explicit pid: %v, %v", b, err)
	}
	if _, err := startBrokerCPU(root, 0, []string{"192.0.2.1:9092"}); err == nil {
		t.Error("a remote bootstrap server must not be measured")
	}
	if _, err := startBrokerCPU(root, 0, []string{"127.0.0.1:1"}); !errors.Is(err, errNoListener) {
		t.Errorf("no listener: %v", err)
	}
}

// TestFindListeningPIDReal finds this test process by a socket it listens
// on, through the real /proc.
func TestFindListeningPIDReal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pid, err := findListeningPID("/proc", uint16(port))
	if err != nil {
		t.Fatal(err)
	}
	if pid != os.Getpid() {
		t.Fatalf("pid = %d, want this process %d", pid, os.Getpid())
	}
	if _, err := processCPU("/proc", pid); err != nil {
		t.Fatal(err)
	}
	b, err := startBrokerCPU("/proc", 0, []string{"localhost:" + strconv.Itoa(port)})
	if err != nil || !slices.Equal(b.pids, []int{os.Getpid()}) {
		t.Fatalf("startBrokerCPU: %v, %v", b, err)
	}
}

func TestIsLocalHost(t *testing.T) {
	for _, h := range []string{"", "localhost", "127.0.0.1", "::1", "0.0.0.0", "127.0.0.2"} {
		if !isLocalHost(h) {
			t.Errorf("%q must be local", h)
		}
	}
	for _, h := range []string{"192.0.2.1", "2001:db8::1"} {
		if isLocalHost(h) {
			t.Errorf("%q must not be local", h)
		}
	}
}
