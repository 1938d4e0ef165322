package broker

import (
	"strconv"
	"sync"
	"time"
)

// refusalLogEvery is how often one client's refusals of one kind (a bad
// or unsupported request of an API and version) are logged: a client that
// reconnects and sends the same request again, as old clients refused a
// version do several times a second, gets one line per interval, which
// says how many it stands for.
const refusalLogEvery = 10 * time.Second

// logLimiter lets a message through at most once per interval for each
// key, counting the ones it held back. Its map is pruned of keys idle for
// an interval once it holds more than limiterPruneAt of them, at most once
// an interval; new keys that find it still full share one entry.
type logLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	keys     map[string]*limiterEntry
	pruned   time.Time    // when keys was last pruned
	overflow limiterEntry // shared by new keys while keys is full
}

type limiterEntry struct {
	logged time.Time // when a message for the key was last let through
	held   int       // messages held back since
}

const limiterPruneAt = 1024

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, keys: make(map[string]*limiterEntry)}
}

// allow reports whether to log a message for key now and, if so, how many
// were held back since the last one.
func (l *logLimiter) allow(key string, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e != nil && now.Sub(e.logged) < l.interval {
		e.held++
		return false, 0
	}
	if e == nil {
		if len(l.keys) >= limiterPruneAt && now.Sub(l.pruned) >= l.interval {
			// At most once an interval: keys are let through only once
			// an interval, so a prune sooner would find few idle ones
			// and cost a pass over the map for every new key.
			l.pruned = now
			for k, old := range l.keys {
				if now.Sub(old.logged) >= l.interval {
					delete(l.keys, k)
				}
			}
		}
		if len(l.keys) >= limiterPruneAt {
			// Full of keys active this interval: new ones share one,
			// so that distinct keys without end cost neither memory
			// nor a line each.
			return l.allowOverflow(now)
		}
		e = &limiterEntry{}
		l.keys[key] = e
	}
	held = e.held
	e.logged, e.held = now, 0
	return true, held
}

// allowOverflow is allow for a new key while the map is full: all such
// keys share one entry. l.mu is held.
func (l *logLimiter) allowOverflow(now time.Time) (ok bool, held int) {
	e := &l.overflow
	if !e.logged.IsZero() && now.Sub(e.logged) < l.interval {
		e.held++
		return false, 0
	}
	held = e.held
	e.logged, e.held = now, 0
	return true, held
}

// refusalKey names a client's refusal kind: its host (not its port,
// which changes with every reconnection), the API and the version.
func refusalKey(remote string, apiKey, version int16) string {
	return hostOf(remote) + "/" + strconv.Itoa(int(apiKey)) + "/" + strconv.Itoa(int(version))
}
