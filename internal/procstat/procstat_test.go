package procstat

import (
	"os"
	"testing"
)

func TestMB(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if hwm := MB(0, "VmHWM"); hwm <= 0 {
		t.Errorf("VmHWM of this process = %v", hwm)
	}
	if v := MB(os.Getpid(), "VmRSS"); v <= 0 {
		t.Errorf("VmRSS by pid = %v", v)
	}
	if v := MB(0, "NoSuchField"); v != 0 {
		t.Errorf("unknown field = %v", v)
	}
}
