package main

import (
	"os"
	"strings"
	"syscall"
)

// quietSysmon is the GODEBUG setting `gregor broker` runs with: schedtrace
// at its largest value (2^31-1 ms, 24.8 days).
//
// Why: the Go runtime's monitor thread (sysmon) sleeps deeply while every P
// is idle, and each time a goroutine then enters a system call it is woken
// and polls every 20 µs for the next millisecond or more. A broker is idle
// between requests and busy in system calls (reads, page-cache writes,
// sendfile) during them, so sysmon polled at 20 µs through most of every
// request: about 3,000 wake-ups a second under a produce load, at some
// 30 µs of CPU each on a virtual machine, 13-18% of the broker's CPU. With
// schedtrace set, sysmon never sleeps deeply and backs off to one wake-up
// every 10 ms. The cost: 0.4% of a core more while idle, and schedtrace
// prints one scheduler line to stderr each time it comes due, every 24.8
// days counted from the machine's boot (so at every start on a machine up
// longer than that).
//
// Whoever sets schedtrace in GODEBUG themselves (schedtrace=0 turns it
// off) is left alone.
const quietSysmon = "schedtrace=2147483647"

// quietSysmonEnv returns env with quietSysmon added to GODEBUG, and
// whether it was added: false when GODEBUG names schedtrace already.
func quietSysmonEnv(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		for setting := range strings.SplitSeq(v, ",") {
			if key, _, _ := strings.Cut(setting, "="); strings.TrimSpace(key) == "schedtrace" {
				return env, false
			}
		}
		if !found { // the first GODEBUG= is the one getenv sees
			found = true
			if v != "" {
				v += ","
			}
			kv = "GODEBUG=" + v + quietSysmon
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+quietSysmon)
	}
	return out, true
}

// execQuietSysmon re-executes this process (same pid, arguments and open
// files) with quietSysmon in GODEBUG, which the runtime reads only at
// start. It returns only when there is nothing to do or the exec failed;
// the broker then runs as it is.
func execQuietSysmon() {
	env, ok := quietSysmonEnv(os.Environ())
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}
