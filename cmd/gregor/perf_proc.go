package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Broker CPU accounting for perf: find the local process listening on the
// bootstrap port through /proc/net/tcp{,6} and /proc/PID/fd, and read its
// user+system CPU time from /proc/PID/stat. Linux only; elsewhere the
// lookups fail and perf reports no CPU figure.

// clockTicksPerSecond is USER_HZ, the unit of /proc/PID/stat times. It is
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicksPerSecond = 100

// errNoListener means no local process listens on the port.
var errNoListener = errors.New("no local process listens on the port")

// parseProcStat returns utime and stime (fields 14 and 15, in clock ticks)
// from the contents of /proc/PID/stat. The command name (field 2) may
// hold spaces and parentheses, so fields are counted from its last ')'.
func parseProcStat(data []byte) (utime, stime uint64, err error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, 0, errors.New("parse stat: no command name")
	}
	// After ")" come field 3 (state) onwards.
	fields := strings.Fields(string(data[end+1:]))
	const utimeAt = 14 - 3
	if len(fields) <= utimeAt+1 {
		return 0, 0, fmt.Errorf("parse stat: %d fields after the command name, want %d", len(fields), utimeAt+2)
	}
	if utime, err = strconv.ParseUint(fields[utimeAt], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse stat utime: %w", err)
	}
	if stime, err = strconv.ParseUint(fields[utimeAt+1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("parse stat stime: %w", err)
	}
	return utime, stime, nil
}

// processCPU returns the CPU time (user + system) a process has used.
func processCPU(procRoot string, pid int) (time.Duration, error) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	utime, stime, err := parseProcStat(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicksPerSecond, nil
}

// tcpListenState is TCP_LISTEN as /proc/net/tcp prints it.
const tcpListenState = "0A"

// parseListeningInodes returns the socket inodes of the LISTEN entries on
// port in the contents of /proc/net/tcp or /proc/net/tcp6. Lines look like
//
//	sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 ...
//
// with the port in hex after the colon of local_address.
func parseListeningInodes(data []byte, port uint16) ([]uint64, error) {
	var inodes []uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		if f[3] != tcpListenState {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("parse socket table: local address %q", f[1])
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("parse socket table: port %q: %w", hexPort, err)
		}
		if uint16(p) != port {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse socket table: inode %q: %w", f[9], err)
		}
		inodes = append(inodes, inode)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse socket table: %w", err)
	}
	return inodes, nil
}

// findListeningPID returns the process holding a socket listening on port,
// searching procRoot (normally /proc).
func findListeningPID(procRoot string, port uint16) (int, error) {
	want := map[string]bool{}
	for _, table := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(procRoot, table))
		if err != nil {
			continue // no IPv6, say
		}
		inodes, err := parseListeningInodes(data, port)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", table, err)
		}
		for _, ino := range inodes {
			want["socket:["+strconv.FormatUint(ino, 10)+"]"] = true
		}
	}
	if len(want) == 0 {
		return 0, fmt.Errorf("port %d: %w", port, errNoListener)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", procRoot, err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to look at
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err == nil && want[target] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("port %d: socket found but no process holds it (permissions?): %w", port, errNoListener)
}

// isLocalHost reports whether host names this machine: a loopback or
// unspecified address, "localhost", or an address of a local interface.
func isLocalHost(host string) bool {
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		addrs, err := net.LookupIP(host)
		if err != nil {
			return false
		}
		ips = addrs
	}
	ifAddrs, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		if ip.IsLoopback() || ip.IsUnspecified() {
			return true
		}
		for _, a := range ifAddrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// brokerCPU measures the CPU time of local broker processes over a run.
type brokerCPU struct {
	procRoot string
	pids     []int
	before   time.Duration
}

// startBrokerCPU finds the broker processes (pid > 0: that one; pid < 0:
// none; 0: those listening on the ports of the local bootstrap servers)
// and reads their CPU time. It returns nil, with a reason, when there is
// nothing to measure.
func startBrokerCPU(procRoot string, pid int, seeds []string) (*brokerCPU, error) {
	if pid < 0 {
		return nil, errors.New("disabled")
	}
	b := &brokerCPU{procRoot: procRoot}
	if pid > 0 {
		b.pids = []int{pid}
	} else {
		seen := map[int]bool{}
		var firstErr error
		for _, s := range seeds {
			host, portStr, err := net.SplitHostPort(s)
			if err != nil {
				firstErr = cmpOr(firstErr, fmt.Errorf("bootstrap server %q: %w", s, err))
				continue
			}
			port, err := strconv.ParseUint(portStr, 10, 16)
			if err != nil {
				firstErr = cmpOr(firstErr, fmt.Errorf("bootstrap server %q: bad port: %w", s, err))
				continue
			}
			if !isLocalHost(host) {
				firstErr = cmpOr(firstErr, fmt.Errorf("bootstrap server %q is not local", s))
				continue
			}
			p, err := findListeningPID(procRoot, uint16(port))
			if err != nil {
				firstErr = cmpOr(firstErr, err)
				continue
			}
			if !seen[p] {
				seen[p] = true
				b.pids = append(b.pids, p)
			}
		}
		if len(b.pids) == 0 {
			return nil, firstErr
		}
	}
	total, err := b.read()
	if err != nil {
		return nil, err
	}
	b.before = total
	return b, nil
}

// read returns the summed CPU time of the processes.
func (b *brokerCPU) read() (time.Duration, error) {
	var total time.Duration
	for _, pid := range b.pids {
		d, err := processCPU(b.procRoot, pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// used returns the CPU time used since startBrokerCPU.
func (b *brokerCPU) used() (time.Duration, error) {
	total, err := b.read()
	if err != nil {
		return 0, err
	}
	return total - b.before, nil
}

// cmpOr returns a if it is non-nil, else b.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
