package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// ErrLocked is returned by Lock when another process (or, for in-memory
// file systems, another holder in this process) holds the lock.
var ErrLocked = errors.New("already locked")

// Locker is implemented by file systems that support exclusive advisory
// locks, used to keep two brokers off one data directory.
type Locker interface {
	// Lock takes an exclusive lock on name, creating the file if needed.
	// Closing the returned Closer releases it.
	Lock(name string) (io.Closer, error)
}

// Lock takes an exclusive lock on name if fs supports locking; otherwise
// it returns a no-op Closer.
func Lock(fs FS, name string) (io.Closer, error) {
	if l, ok := fs.(Locker); ok {
		return l.Lock(name)
	}
	return io.NopCloser(nil), nil
}

// Lock implements Locker with flock(2). The lock dies with the process, so
// a kill -9 never leaves a stale lock behind.
func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", opErr("open", name, err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w (is another process, a broker or an agent, using this data dir?)", name, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}

var memLocks struct {
	sync.Mutex
	held map[string]bool
}

type memLock struct {
	key  string
	once sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		memLocks.Lock()
		delete(memLocks.held, l.key)
		memLocks.Unlock()
	})
	return nil
}

// Lock implements Locker for the in-memory file system: locks are held per
// MemFS and path within this process.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	key := fmt.Sprintf("%p:%s", m, name)
	memLocks.Lock()
	defer memLocks.Unlock()
	if memLocks.held == nil {
		memLocks.held = make(map[string]bool)
	}
	if memLocks.held[key] {
		return nil, fmt.Errorf("lock %s: %w", name, ErrLocked)
	}
	memLocks.held[key] = true
	return &memLock{key: key}, nil
}
