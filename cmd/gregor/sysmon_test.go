package main

import (
	"slices"
	"testing"
)

func TestQuietSysmonEnv(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		want []string // nil: left alone
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", "GODEBUG=" + quietSysmon}},
		{"empty GODEBUG", []string{"GODEBUG=", "B=2"}, []string{"GODEBUG=" + quietSysmon, "B=2"}},
		{"other settings kept", []string{"GODEBUG=gctrace=1,madvdontneed=1"}, []string{"GODEBUG=gctrace=1,madvdontneed=1," + quietSysmon}},
		{"user's schedtrace wins", []string{"GODEBUG=schedtrace=0"}, nil},
		{"user's schedtrace among others", []string{"GODEBUG=gctrace=1, schedtrace=1000"}, nil},
		{"a longer name is not schedtrace", []string{"GODEBUG=schedtracex=1"}, []string{"GODEBUG=schedtracex=1," + quietSysmon}},
		{"only the first GODEBUG is changed", []string{"GODEBUG=a=1", "GODEBUG=b=2"}, []string{"GODEBUG=a=1," + quietSysmon, "GODEBUG=b=2"}},
	} {
		got, changed := quietSysmonEnv(c.env)
		if c.want == nil {
			if changed || !slices.Equal(got, c.env) {
				t.Errorf("%s: changed to %q", c.name, got)
			}
			continue
		}
		if !changed || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q (changed %v), want %q", c.name, got, changed, c.want)
		}
		// Running again (the re-executed broker) changes nothing.
		if again, changed := quietSysmonEnv(got); changed {
			t.Errorf("%s: a second pass changed %q to %q", c.name, got, again)
		}
	}
}
