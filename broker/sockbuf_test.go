package broker

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverSockBufs returns SO_SNDBUF and SO_RCVBUF of the broker's side of
// its only client connection, waiting for the broker to accept it.
func serverSockBufs(t *testing.T, b *Broker) (snd, rcv int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		var nc net.Conn
		for c := range b.mu.conns {
			nc = c.nc
		}
		b.mu.Unlock()
		if nc != nil {
			rc, err := nc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr, rerr error
			if err := rc.Control(func(fd uintptr) {
				snd, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
				rcv, rerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			}); err != nil {
				t.Fatal(err)
			}
			if serr != nil || rerr != nil {
				t.Fatal(serr, rerr)
			}
			return snd, rcv
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker did not accept the connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSocketBufferSizes(t *testing.T) {
	b := startBroker(t, nil, "", func(c *Config) {
		c.Props["socket.send.buffer.bytes"] = "65536"
		c.Props["socket.receive.buffer.bytes"] = "98304"
	})
	nc, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	snd, rcv := serverSockBufs(t, b)
	// Linux doubles what it is given, for its bookkeeping.
	if snd != 2*65536 || rcv != 2*98304 {
		t.Fatalf("SO_SNDBUF %d, SO_RCVBUF %d; want %d and %d", snd, rcv, 2*65536, 2*98304)
	}
}

func TestSocketBufferDefaults(t *testing.T) {
	b := startBroker(t, nil, "", nil)
	nc, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	snd, _ := serverSockBufs(t, b)
	// 512 KiB doubled, unless net.core.wmem_max is lower.
	if snd != 2*524288 && snd != 2*sysctlInt(t, "/proc/sys/net/core/wmem_max") {
		t.Fatalf("SO_SNDBUF %d; want the default 512 KiB doubled", snd)
	}

	auto := startBroker(t, nil, "", func(c *Config) { c.Props["socket.send.buffer.bytes"] = "-1" })
	nc2, err := net.Dial("tcp", auto.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if snd, _ := serverSockBufs(t, auto); snd == 2*524288 {
		t.Fatalf("SO_SNDBUF %d with socket.send.buffer.bytes=-1: fixed, not the kernel's", snd)
	}
}

func sysctlInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("read %s: %v", path, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func TestSocketBufferValidation(t *testing.T) {
	for _, v := range []string{"0", "1023", "-2", "2147483648", "x"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props["socket.send.buffer.bytes"] = v
		cfg.Props["socket.receive.buffer.bytes"] = v
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%s accepted", v)
			continue
		}
		for _, k := range []string{"socket.send.buffer.bytes", "socket.receive.buffer.bytes"} {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("value %s: error %q does not name %s", v, err, k)
			}
		}
	}
	for _, v := range []string{"-1", "1024", "1048576"} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Props["socket.send.buffer.bytes"] = v
		cfg.Props["socket.receive.buffer.bytes"] = v
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
}
