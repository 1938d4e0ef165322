package storage

import (
	"context"
	"time"
)

// throttler limits the cleaner's I/O to a byte rate, as Kafka's Throttler
// does for log.cleaner.io.max.bytes.per.second: after each read or write it
// sleeps long enough that the bytes counted since the window began do not
// exceed the rate. Windows restart every second so an idle spell does not
// buy a burst. Not safe for concurrent use.
type throttler struct {
	rate  float64 // bytes per second; <= 0 is unlimited
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	windowStart time.Time
	windowBytes int64
	// slept is the total time spent throttled, for the cleaner's stats.
	slept time.Duration
}

// throttleWindow is how long bytes are counted against the rate before
// the count restarts.
const throttleWindow = time.Second

func newThrottler(bytesPerSecond int64) *throttler {
	return &throttler{rate: float64(bytesPerSecond), now: time.Now, sleep: sleepCtx}
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wait accounts n bytes of I/O and sleeps if they take the rate over the
// limit. It returns early with ctx's error when ctx is done.
func (t *throttler) wait(ctx context.Context, n int64) error {
	if t.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	now := t.now()
	if t.windowStart.IsZero() || now.Sub(t.windowStart) >= throttleWindow {
		t.windowStart, t.windowBytes = now, 0
	}
	t.windowBytes += n
	due := time.Duration(float64(t.windowBytes) / t.rate * float64(time.Second))
	if elapsed := now.Sub(t.windowStart); due > elapsed {
		d := due - elapsed
		t.slept += d
		if err := t.sleep(ctx, d); err != nil {
			return err
		}
		// Carry the sleep into the next window so a long sleep does not
		// count as idle time.
		t.windowStart, t.windowBytes = t.now(), 0
	}
	return ctx.Err()
}
