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
	"syscall"
	"time"
)

// runTouchFree touches the machine's free memory once and gives it back,
// leaving --leave-mib untouched and touching at most --max-mib: on a VM whose free page reporting is
// paused (see scripts/bench.sh) that memory is then backed by the host
// until the bench ends, so that no server's first touch of it pays the
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
	var (
		mu     sync.Mutex
		maps   [][]byte
		next   int64
		mapErr error
		wg     sync.WaitGroup
	)
	for range *workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if next+chunk > total || mapErr != nil {
					mu.Unlock()
					return
				}
				next += chunk
				mu.Unlock()
				m, err := syscall.Mmap(-1, 0, chunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
				if err != nil {
					mu.Lock()
					mapErr = fmt.Errorf("touchfree: map %d MiB: %w", chunk>>20, err)
					mu.Unlock()
					return
				}
				for i := int64(0); i < chunk; i += page {
					m[i] = 1
				}
				mu.Lock()
				maps = append(maps, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	touched := int64(len(maps)) * chunk
	for _, m := range maps {
		_ = syscall.Munmap(m)
	}
	if mapErr != nil {
		return mapErr
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
