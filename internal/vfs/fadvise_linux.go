//go:build linux && (amd64 || arm64)

package vfs

import (
	"fmt"
	"syscall"
)

const fadvDontNeed = 4 // POSIX_FADV_DONTNEED

// DropCache implements CacheDropper with posix_fadvise.
func (f osFile) DropCache(off, n int64) error {
	rc, err := f.File.SyscallConn()
	if err != nil {
		return fmt.Errorf("drop cache of %s: %w", f.Name(), err)
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_FADVISE64, fd, uintptr(off), uintptr(n), fadvDontNeed, 0, 0)
	}); err != nil {
		return fmt.Errorf("drop cache of %s: %w", f.Name(), err)
	}
	if errno != 0 {
		return fmt.Errorf("drop cache of %s: %w", f.Name(), errno)
	}
	return nil
}
