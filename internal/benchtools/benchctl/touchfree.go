package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runTouchFree touches the machine's free memory once and gives it back,
// leaving --leave-mib untouched and touching at most --max-mib: on a VM
// whose free page reporting is paused (see scripts/bench.sh) that memory
// is then backed by the host until the bench ends, so that no server's first touch of it pays the
// hypervisor's fault. It prints how much it touched and how long it took.
func runTouchFree(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("touchfree", flag.ContinueOnError)
	leave := fs.Int64("leave-mib", 1024, "MiB of free memory to leave untouched")
	most := fs.Int64("max-mib", 0, "touch at most this many MiB (0: no limit)")
	workers := fs.Int("workers", 2, "goroutines touching memory at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *leave < 0 || *most < 0 || *workers < 1 {
		return errors.New("touchfree: --leave-mib and --max-mib must not be negative and --workers must be positive")
	}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return fmt.Errorf("touchfree: %w", err)
	}
	freeKiB, err := meminfoKiB(data, "MemFree")
	if err != nil {
		return fmt.Errorf("touchfree: %w", err)
	}
	const chunk = 64 << 20
	total := freeKiB<<10 - *leave<<20
	if *most > 0 {
		total = min(total, *most<<20)
	}
	if total < chunk {
		fmt.Fprintln(stdout, "touchfree: nothing to touch")
		return nil
	}
	start := time.Now()
	page := int64(os.Getpagesize())
	// Chunks are mapped, touched and kept until the end, so that each
	// touch takes memory that is still free; all are unmapped at once.
	maps := make([][]byte, total/chunk)
	errs := make([]error, len(maps))
	var next atomic.Int64
	var failed atomic.Bool // one failed map stops every worker
	var wg sync.WaitGroup
	for range *workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(maps) && !failed.Load(); i = int(next.Add(1) - 1) {
				m, err := syscall.Mmap(-1, 0, chunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
				if err != nil {
					errs[i] = fmt.Errorf("touchfree: map %d MiB: %w", chunk>>20, err)
					failed.Store(true)
					return
				}
				for off := int64(0); off < chunk; off += page {
					m[off] = 1
				}
				maps[i] = m
			}
		})
	}
	wg.Wait()
	var touched int64
	for _, m := range maps {
		if m != nil {
			touched += chunk
			_ = syscall.Munmap(m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "touchfree: touched %d MiB in %.1f s\n", touched>>20, time.Since(start).Seconds())
	return nil
}

// meminfoKiB returns a /proc/meminfo field, in KiB.
func meminfoKiB(data []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(name) != field {
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meminfo %s: %w", field, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("meminfo has no %s", field)
}
