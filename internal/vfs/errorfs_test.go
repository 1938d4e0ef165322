package vfs

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

func TestErrorFSWriteLimit(t *testing.T) {
	for _, inner := range []struct {
		name string
		fs   FS
		dir  func(t *testing.T) string
	}{
		{"mem", NewMem(), func(*testing.T) string { return "/" }},
		{"os", OS, func(t *testing.T) string { return t.TempDir() }},
	} {
		t.Run(inner.name, func(t *testing.T) {
			efs := NewErrorFS(inner.fs)
			name := inner.dir(t) + "/f"
			f, err := Create(efs, name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			efs.SetWriteLimit(10)
			mustWrite(t, f, "0123")
			n, err := f.Write([]byte("456789ABCD"))
			if n != 6 || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("write crossing the limit: n=%d err=%v; want 6, ENOSPC", n, err)
			}
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Path != name {
				t.Errorf("error %v does not name the file", err)
			}
			if n, err := f.Write([]byte("x")); n != 0 || !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("write when full: n=%d err=%v", n, err)
			}
			if n, err := f.Write(nil); n != 0 || err != nil {
				t.Errorf("empty write when full: n=%d err=%v", n, err)
			}
			// Reads and syncs still work on a full disk.
			if got := mustRead(t, efs, name); got != "0123456789" {
				t.Errorf("content = %q", got)
			}
			if err := f.Sync(); err != nil {
				t.Errorf("sync on full disk: %v", err)
			}
			if got := efs.Injected(); got != 2 {
				t.Errorf("Injected() = %d, want 2", got)
			}
			efs.SetWriteLimit(-1)
			mustWrite(t, f, "more")
			if got := mustRead(t, efs, name); got != "0123456789more" {
				t.Errorf("after lifting the limit: %q", got)
			}
		})
	}
}

func TestErrorFSRules(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name     string
		arm      func(e *ErrorFS)
		op       func(fs FS) error
		wantErr  error // nil: must succeed
		twiceErr error // result of running op a second time
	}{
		{
			name:     "FailSync fails file sync",
			arm:      func(e *ErrorFS) { e.FailSync(syscall.EIO) },
			op:       func(fs FS) error { return withFile(fs, "/d/seg.log", File.Sync) },
			wantErr:  syscall.EIO,
			twiceErr: syscall.EIO,
		},
		{
			name:     "FailSync fails SyncDir",
			arm:      func(e *ErrorFS) { e.FailSync(syscall.EIO) },
			op:       func(fs FS) error { return fs.SyncDir("/d") },
			wantErr:  syscall.EIO,
			twiceErr: syscall.EIO,
		},
		{
			name:     "FailOn matches path substring",
			arm:      func(e *ErrorFS) { e.FailOn(OpWrite, ".index", errBoom) },
			op:       func(fs FS) error { return withFile(fs, "/d/0.index", writeX) },
			wantErr:  errBoom,
			twiceErr: errBoom,
		},
		{
			name: "FailOn ignores other paths",
			arm:  func(e *ErrorFS) { e.FailOn(OpWrite, ".index", errBoom) },
			op:   func(fs FS) error { return withFile(fs, "/d/0.log", writeX) },
		},
		{
			name: "FailOn ignores other ops",
			arm:  func(e *ErrorFS) { e.FailOn(OpSync, "", errBoom) },
			op:   func(fs FS) error { return withFile(fs, "/d/0.log", writeX) },
		},
		{
			name:    "FailOnce fails once",
			arm:     func(e *ErrorFS) { e.FailOnce(OpOpen, "", syscall.EMFILE) },
			op:      func(fs FS) error { return withFile(fs, "/d/f", writeX) },
			wantErr: syscall.EMFILE,
		},
		{
			name:     "OpAny matches everything",
			arm:      func(e *ErrorFS) { e.FailOn(OpAny, "/d", errBoom) },
			op:       func(fs FS) error { _, err := fs.ReadDir("/d"); return err },
			wantErr:  errBoom,
			twiceErr: errBoom,
		},
		{
			name:     "rename matches the new name",
			arm:      func(e *ErrorFS) { e.FailOn(OpRename, "target", syscall.EROFS) },
			op:       func(fs FS) error { return renameFresh(fs, "/d/src", "/d/target") },
			wantErr:  syscall.EROFS,
			twiceErr: syscall.EROFS,
		},
		{
			name: "Clear removes rules",
			arm: func(e *ErrorFS) {
				e.FailOn(OpAny, "", errBoom)
				e.SetWriteLimit(0)
				e.Clear()
			},
			op: func(fs FS) error { return withFile(fs, "/d/f", writeX) },
		},
		{
			name:     "close error still closes",
			arm:      func(e *ErrorFS) { e.FailOn(OpClose, "", syscall.EIO) },
			op:       func(fs FS) error { return withFile(fs, "/d/f", writeX) },
			wantErr:  syscall.EIO,
			twiceErr: syscall.EIO,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mem := NewMem()
			if err := mem.MkdirAll("/d", 0o755); err != nil {
				t.Fatal(err)
			}
			efs := NewErrorFS(mem)
			tt.arm(efs)
			for i, want := range []error{tt.wantErr, tt.twiceErr} {
				err := tt.op(efs)
				if want == nil && err != nil {
					t.Errorf("run %d: %v, want success", i+1, err)
				}
				if want != nil && !errors.Is(err, want) {
					t.Errorf("run %d: %v, want %v", i+1, err, want)
				}
			}
		})
	}
}

func writeX(f File) error { _, err := f.Write([]byte("x")); return err }

// withFile opens name for appending, runs fn on it and closes it.
func withFile(fs FS, name string, fn func(File) error) error {
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func renameFresh(fs FS, from, to string) error {
	if err := withFile(fs, from, writeX); err != nil {
		return err
	}
	return fs.Rename(from, to)
}

func TestOpString(t *testing.T) {
	if OpSyncDir.String() != "syncdir" || Op(99).String() != "op(99)" {
		t.Errorf("Op.String: %q %q", OpSyncDir, Op(99))
	}
}
