package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// runDiskWrite is bench-long's baseline: it appends --gib GiB to one file
// in 1 MiB writes, at --mbps at most, fsyncing once a second as the
// broker's flush.ms=1000 does, and prints per GiB the MB/s and the CPU
// seconds it took. Run on the
// same disk in the same session, it shows how much of a slowdown from the
// first GiB to the last is the machine's (page cache, disk), not the log's.
// The file is removed at the end.
func runDiskWrite(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("diskwrite", flag.ContinueOnError)
	path := fs.String("file", "", "file to write (required; removed at the end)")
	gib := fs.Int("gib", 20, "GiB to write")
	mbps := fs.Float64("mbps", 0, "write at most this many MB (2^20 bytes) a second, to match the broker's pace (0: as fast as possible)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || *gib <= 0 {
		return errors.New("usage: benchctl diskwrite --file PATH [--gib N]")
	}
	f, err := os.OpenFile(*path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("diskwrite: %w", err)
	}
	defer os.Remove(*path)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	lastSync, begin := time.Now(), time.Now()
	written := 0.0 // MB
	for g := 1; g <= *gib; g++ {
		cpu0, start := cpuTime(), time.Now()
		for range 1024 {
			if *mbps > 0 {
				if ahead := time.Duration(written / *mbps * float64(time.Second)) - time.Since(begin); ahead > 0 {
					time.Sleep(ahead)
				}
			}
			if _, err := f.Write(buf); err != nil {
				return fmt.Errorf("diskwrite: %w", err)
			}
			written++
			if time.Since(lastSync) >= time.Second {
				if err := f.Sync(); err != nil {
					return fmt.Errorf("diskwrite: %w", err)
				}
				lastSync = time.Now()
			}
		}
		secs := time.Since(start).Seconds()
		fmt.Fprintf(stdout, "%d %.1f %.2f\n", g, float64(1<<30)/(1<<20)/secs, (cpuTime() - cpu0).Seconds())
	}
	return nil
}

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
