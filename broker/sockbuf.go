package broker

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// Socket buffer sizes (socket.send.buffer.bytes and
// socket.receive.buffer.bytes, as in Kafka; -1 leaves the kernel's
// autotuning on).
//
// The send buffer is fixed by default (512 KiB) where Kafka's is 100 KiB:
// on loopback, where the benchmarks run, a 4 MiB fetch response sent with
// sendfile reached the consumer 15-20% sooner through a fixed 128 KiB to
// 1 MiB buffer than through one the kernel autotuned (up to
// net.ipv4.tcp_wmem's 4 MiB), and cost the broker less CPU (docs/benchmarks.md).
// A fixed buffer caps what one connection can have in flight: at 512 KiB
// (the kernel doubles it for its own bookkeeping) a consumer 50 ms away
// reads at most about 20 MB/s, so a broker serving distant consumers
// should raise it or set -1.
//
// The receive buffer is left to the kernel by default (Kafka fixes it at
// 100 KiB): fixed receive buffers made produce slower and costlier here.

// sockBufMin is the smallest buffer size the properties take, besides -1.
const sockBufMin = 1024

// listenConfig returns the listener configuration that sizes the receive
// buffer of accepted connections: set on the listening socket, so that the
// window scale agreed in the handshake fits it.
func (c *Config) listenConfig() net.ListenConfig {
	rcv := c.prop("socket.receive.buffer.bytes")
	if rcv <= 0 {
		return net.ListenConfig{}
	}
	return net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, int(rcv))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set socket.receive.buffer.bytes=%d: %w", rcv, serr)
		}
		return nil
	}}
}

// listen opens the client listener.
func (c *Config) listen() (net.Listener, error) {
	lc := c.listenConfig()
	return lc.Listen(context.Background(), "tcp", c.Listen)
}

// sizeSendBuffer fixes an accepted connection's send buffer at
// socket.send.buffer.bytes, unless that is -1. A failure is not fatal: the
// connection works with the kernel's buffer.
func (c *Config) sizeSendBuffer(nc net.Conn) error {
	snd := c.prop("socket.send.buffer.bytes")
	tc, ok := nc.(*net.TCPConn)
	if snd <= 0 || !ok {
		return nil
	}
	if err := tc.SetWriteBuffer(int(snd)); err != nil {
		return fmt.Errorf("set socket.send.buffer.bytes=%d: %w", snd, err)
	}
	return nil
}

// isSockBuf reports whether a broker property is a socket buffer size.
func isSockBuf(key string) bool {
	return key == "socket.send.buffer.bytes" || key == "socket.receive.buffer.bytes"
}
