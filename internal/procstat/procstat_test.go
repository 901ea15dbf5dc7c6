package procstat

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"
	"time"
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

func TestCPUSecondsAndChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// Busy until the count has grown by 0.1 s: on a loaded machine that
	// takes longer, never for ever.
	before := CPUSeconds(os.Getpid())
	for deadline := time.Now().Add(30 * time.Second); CPUSeconds(os.Getpid())-before < 0.1; {
		if time.Now().After(deadline) {
			t.Fatalf("30 s of a busy loop counted as %.2f CPU-s", CPUSeconds(os.Getpid())-before)
		}
	}
	if v := CPUSeconds(-1); v != 0 {
		t.Errorf("no such process: %v", v)
	}
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got := Children(os.Getpid()); len(got) < 2 || got[0] != os.Getpid() || !slices.Contains(got, cmd.Process.Pid) {
		t.Errorf("Children = %v, want this process and %d", got, cmd.Process.Pid)
	}
}

// Two threads busy on more threads than CPUs wait on the run queue; the
// figure only grows.
func TestRunQueueSeconds(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	before := RunQueueSeconds(os.Getpid())
	stop := make(chan struct{})
	for i := 0; i < 2*runtime.NumCPU()+2; i++ {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	defer close(stop)
	for deadline := time.Now().Add(30 * time.Second); RunQueueSeconds(os.Getpid()) <= before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no run-queue wait counted in 30 s (%v)", before)
		}
	}
}
