package agent

import (
	"regexp"
	"time"
)

// multiline joins consecutive lines into records. In start mode a line
// matching the pattern begins a record and every other line belongs to the
// record before it; in continuation mode a matching line belongs to the
// record before it and every other line begins one. A record is complete
// when the next one begins, when it reaches maxLines lines or maxBytes
// bytes, or when no line arrived for the flush timeout (the caller checks
// deadline). Joined lines are separated by "\n". Not safe for concurrent
// use.
type multiline struct {
	start        *regexp.Regexp // start mode when non-nil
	continuation *regexp.Regexp // continuation mode when non-nil
	maxLines     int
	maxBytes     int
	flushTimeout time.Duration

	rec      line // the record being built; rec.data is owned (copied)
	lines    int
	lastLine time.Time
}

// add feeds one line and appends the records it completes to out.
func (m *multiline) add(l line, now time.Time, out []line) []line {
	if l.marker {
		if m.lines > 0 {
			m.rec.end = l.end // the pending record holds the over-long line
			return out
		}
		return append(out, l)
	}
	begins := m.lines == 0
	if !begins {
		if m.start != nil {
			begins = m.start.Match(l.data)
		} else {
			begins = !m.continuation.Match(l.data)
		}
	}
	if !begins && (m.lines >= m.maxLines || len(m.rec.data)+1+len(l.data) > m.maxBytes) {
		begins = true
	}
	if begins && m.lines > 0 {
		out = append(out, m.take())
	}
	if m.lines == 0 {
		m.rec = line{data: append([]byte(nil), l.data...), start: l.start, end: l.end, truncated: l.truncated}
	} else {
		m.rec.data = append(append(m.rec.data, '\n'), l.data...)
		m.rec.end = l.end
		m.rec.truncated = m.rec.truncated || l.truncated
	}
	m.lines++
	m.lastLine = now
	return out
}

// deadline is when the pending record must be flushed; zero when nothing
// is pending.
func (m *multiline) deadline() time.Time {
	if m.lines == 0 {
		return time.Time{}
	}
	return m.lastLine.Add(m.flushTimeout)
}

// flush appends the pending record, if any, to out.
func (m *multiline) flush(out []line) []line {
	if m.lines == 0 {
		return out
	}
	return append(out, m.take())
}

// pending reports whether a record is being built.
func (m *multiline) pending() bool { return m.lines > 0 }

func (m *multiline) take() line {
	r := m.rec
	m.rec, m.lines = line{}, 0
	return r
}
