//go:build linux

// Command init is PID 1 of the virtual machine test/vm boots: it loads the
// kernel modules the test needs (vm.Modules, from /modules in the
// initramfs), mounts the host's root file system
// read-only over 9p, and runs the command /vmtest.json names inside it,
// with a fresh /proc, /sys, /dev and a writable /run. It prints the
// command's output and then "vmtest: exit N" on the console, and powers the
// machine off.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/snomprov/snomprov/test/vm"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmtest init:", err)
		code = 125
	}
	fmt.Printf("\n%s%d\n", vm.ExitMarker, code)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit
}

func run() (int, error) {
	var cmd vm.Command
	b, err := os.ReadFile("/vmtest.json")
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, &cmd); err != nil || len(cmd.Args) == 0 {
		return 0, fmt.Errorf("/vmtest.json: %v (args %q)", err, cmd.Args)
	}
	if err := loadModules("/modules"); err != nil {
		return 0, err
	}
	const root = "/host"
	if err := os.MkdirAll(root, 0o755); err != nil {
		return 0, err
	}
	// cache=loose: nothing else changes these files while the machine runs,
	// and every lookup through an emulated CPU is slow.
	if err := unix.Mount("hostroot", root, "9p", unix.MS_RDONLY, "trans=virtio,version=9p2000.L,msize=262144,cache=loose"); err != nil {
		return 0, fmt.Errorf("mounting the host's root over 9p: %w", err)
	}
	for _, m := range []struct{ src, dir, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"devpts", "/dev/pts", "devpts", ""},
		{"tmpfs", "/dev/shm", "tmpfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		dir := root + m.dir
		_ = os.MkdirAll(dir, 0o755) // only below a tmpfs mounted before it
		if err := unix.Mount(m.src, dir, m.fstype, 0, m.data); err != nil {
			return 0, fmt.Errorf("mounting %s on %s: %w", m.fstype, m.dir, err)
		}
	}
	if err := unix.Chroot(root); err != nil {
		return 0, err
	}
	if err := os.MkdirAll("/run/tmp", 0o1777); err != nil {
		return 0, err
	}
	c := exec.Command(cmd.Args[0], cmd.Args[1:]...)
	c.Dir, c.Env = cmd.Dir, cmd.Env
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	err = c.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// loadModules inserts vm.Modules from dir, in order; one the kernel
// already has is skipped.
func loadModules(dir string) error {
	for _, name := range vm.Modules {
		f, err := os.Open(filepath.Join(dir, name+".ko"))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading module %s: %w", name, err)
		}
	}
	return nil
}
