// Package procstat reads a process's memory figures from /proc, for
// benchmarks that report RSS.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MB returns one kB field of /proc/PID/status ("VmHWM" the peak RSS,
// "RssAnon", "RssFile") in MB; pid 0 is this process. 0 when unreadable.
func MB(pid int, field string) float64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}
