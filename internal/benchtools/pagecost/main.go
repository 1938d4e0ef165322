// Command pagecost measures what the kernel charges a writer per GiB
// written into the page cache, in the cases a broker meets: appending to a
// new file (fresh pages), overwriting pages already cached, and appending
// right after another file's pages were freed, and again some seconds
// later. On a VM whose balloon reports free pages back to the host, fresh
// pages cost a host fault on first touch; this tool shows how much of a
// broker's CPU per byte that is. It is a benchmark tool, not part of the
// product.
//
// Usage:
//
//	pagecost [--dir DIR] [--mib 800] [--wait 5s]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory to write the test files in")
	mib := flag.Int("mib", 800, "MiB written per case")
	wait := flag.Duration("wait", 5*time.Second, "pause before the last case, after freeing the previous file's pages")
	flag.Parse()
	if err := run(*dir, *mib, *wait); err != nil {
		fmt.Fprintln(os.Stderr, "pagecost:", err)
		os.Exit(1)
	}
}

func run(dir string, mib int, wait time.Duration) error {
	n := mib * 16 // 64 KiB writes
	// cases writes a new file named name, measuring each label in turn
	// (the second and later overwrite what the first wrote), then removes
	// it, freeing its pages.
	cases := func(name string, labels ...string) error {
		path := filepath.Join(dir, "pagecost-"+name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer os.Remove(path)
		defer f.Close()
		for i, label := range labels {
			if err := measure(f, label, n, i > 0); err != nil {
				return err
			}
		}
		return nil
	}
	if err := cases("a", "append to a new file", "overwrite cached pages"); err != nil {
		return err
	}
	if err := cases("b", "append right after a free"); err != nil {
		return err
	}
	time.Sleep(wait)
	return cases("c", fmt.Sprintf("append %s after a free", wait))
}

// measure writes n 64 KiB buffers to f (at offset 0 onwards if overwrite,
// else at its end) and prints the system CPU and wall time per GiB.
func measure(f *os.File, label string, n int, overwrite bool) error {
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	s0, t0 := sysTime(), time.Now()
	for i := range n {
		var err error
		if overwrite {
			_, err = f.WriteAt(buf, int64(i)*int64(len(buf)))
		} else {
			_, err = f.Write(buf)
		}
		if err != nil {
			return err
		}
	}
	gib := float64(n*len(buf)) / (1 << 30)
	fmt.Printf("%-30s system CPU %.3f s/GiB, wall %.3f s/GiB\n", label,
		(sysTime()-s0).Seconds()/gib, time.Since(t0).Seconds()/gib)
	return nil
}

func sysTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Stime.Nano())
}
