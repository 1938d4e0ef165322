//go:build !linux

package vfs

import (
	"errors"
	"fmt"
)

// Preallocate implements Preallocator; elsewhere it is not supported.
func (f osFile) Preallocate(off, n int64) error {
	return fmt.Errorf("preallocate %s: %w", f.Name(), errors.ErrUnsupported)
}

// Allocated implements Preallocator; elsewhere it reports the size.
func (f osFile) Allocated() (int64, error) { return f.Size() }
