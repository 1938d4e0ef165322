package broker

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap/zaptest"
)

// failingListener fails its first n Accepts with err, then accepts.
type failingListener struct {
	net.Listener
	n   atomic.Int32
	err error
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsDoNotStopServing: a failed accept other than the
// listener closing (the system out of descriptors, out of buffers) is
// retried, as Kafka's acceptor does; before, anything but EMFILE and
// timeouts ended Serve, and with it the broker.
func TestAcceptErrorsDoNotStopServing(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EMFILE} {
		t.Run(errno.Error(), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Listen, cfg.HTTPAddr, cfg.DataDir = "127.0.0.1:0", "", t.TempDir()
			b, err := New(cfg, Options{Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			fl := &failingListener{Listener: b.listener, err: &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}}
			fl.n.Store(3)
			b.listener = fl
			done := make(chan error, 1)
			go func() { done <- b.Serve() }()
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := cl.Ping(ctx); err != nil {
				t.Fatalf("ping after %v from accept: %v", errno, err)
			}
			cl.Close()
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("serve: %v", err)
			}
		})
	}
}
