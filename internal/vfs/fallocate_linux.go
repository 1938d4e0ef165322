//go:build linux

package vfs

import (
	"errors"
	"fmt"
	"syscall"
)

const fallocKeepSize = 0x1 // FALLOC_FL_KEEP_SIZE

// Preallocate implements Preallocator with fallocate(2), keeping the size.
func (f osFile) Preallocate(off, n int64) error {
	rc, err := f.File.SyscallConn()
	if err != nil {
		return fmt.Errorf("preallocate %s: %w", f.Name(), err)
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		for {
			_, _, errno = syscall.Syscall6(syscall.SYS_FALLOCATE, fd, fallocKeepSize, uintptr(off), uintptr(n), 0, 0)
			if errno != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("preallocate %s: %w", f.Name(), err)
	}
	switch errno {
	case 0:
		return nil
	case syscall.EOPNOTSUPP, syscall.ENOSYS:
		return fmt.Errorf("preallocate %s: %w (%w)", f.Name(), errors.ErrUnsupported, errno)
	}
	return fmt.Errorf("preallocate %s: %w", f.Name(), errno)
}

// Allocated implements Preallocator from fstat(2)'s block count.
func (f osFile) Allocated() (int64, error) {
	var st syscall.Stat_t
	rc, err := f.File.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if serr != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), serr)
	}
	return st.Blocks * 512, nil
}
