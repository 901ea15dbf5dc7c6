package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snomprov/snomprov/internal/servetest"
)

// KernelDir holds the Debian kernel package the machine boots;
// .ci/install-deps.sh downloads it there (apt-get download, not installed).
const KernelDir = "/var/cache/snomprov-test"

// TestVLANsInVM runs test/e2e's TestSubnetsVLANsAndRelay on a kernel with
// 802.1Q, so that its two subnets are VLAN sub-interfaces of one veth
// through the LAN's bridge, as on an installer's trunk port. On a kernel
// without VLANs that test gives each subnet a veth pair instead; here it
// must not.
func TestVLANsInVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	qemu := servetest.NeedTool(t, "qemu-system-x86_64")
	servetest.NeedTool(t, "cpio")
	servetest.NeedTool(t, "dpkg-deb")
	debs, _ := filepath.Glob(filepath.Join(KernelDir, "linux-image-*.deb"))
	if len(debs) == 0 {
		msg := "no Debian kernel package in " + KernelDir + "; .ci/install-deps.sh downloads one"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	work := t.TempDir()
	kernel := extractKernel(t, debs[len(debs)-1], filepath.Join(work, "initramfs", "modules"))

	// What the machine runs: the host's builds, read through 9p.
	bin := servetest.Binary(t)
	e2e := filepath.Join(work, "e2e.test")
	goBuild(t, "test", "-c", "-o", e2e, "./test/e2e")
	goBuild(t, "build", "-o", filepath.Join(work, "initramfs", "init"), "./test/vm/init")
	cmd := Command{
		Dir:  filepath.Join(servetest.Root(), "test", "e2e"),
		Args: []string{e2e, "-test.run", "^TestSubnetsVLANsAndRelay$", "-test.v", "-test.timeout", "8m"},
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/run/tmp", "TMPDIR=/run/tmp", "CI=true",
			servetest.BinaryEnv + "=" + bin,
		},
	}
	b, _ := json.Marshal(cmd)
	if err := os.WriteFile(filepath.Join(work, "initramfs", "vmtest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(work, "initrd.cpio")
	pack := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet >"+initrd)
	pack.Dir = filepath.Join(work, "initramfs")
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("packing the initramfs: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	// TCG unless SNOMPROV_VM_ACCEL=kvm: on a VM that offers /dev/kvm
	// (nested), QEMU aborted at start with "-cpu max" ("failed to set MSR
	// 0x10a"), and without that MSR ("max,-arch-capabilities",
	// "host,-arch-capabilities") the guest had not finished after 3 and
	// 10 minutes, where the emulated machine passes in two.
	accel, cpu := "tcg", "max"
	if os.Getenv("SNOMPROV_VM_ACCEL") == "kvm" {
		accel, cpu = "kvm", "host"
	}
	// No network device (-nic none): nothing the machine does leaves it.
	q := exec.CommandContext(ctx, qemu,
		"-machine", "q35,accel="+accel, "-cpu", cpu, "-smp", "2", "-m", "2048",
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "none", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
	var console bytes.Buffer
	q.Stdout, q.Stderr = &console, &console
	q.WaitDelay = 5 * time.Second
	t0 := time.Now()
	err := q.Run()
	out := console.String()
	t.Logf("the machine ran %v", time.Since(t0).Round(time.Second))
	if err != nil || !strings.Contains(out, ExitMarker+"0\n") && !strings.Contains(out, ExitMarker+"0\r\n") {
		t.Fatalf("qemu: %v; the machine's console:\n%s", err, out)
	}
	if !strings.Contains(out, "--- PASS: TestSubnetsVLANsAndRelay") {
		t.Fatalf("TestSubnetsVLANsAndRelay did not pass in the machine:\n%s", out)
	}
	if strings.Contains(out, "no 802.1Q VLANs") {
		t.Fatalf("the machine's kernel had no VLANs either:\n%s", out)
	}
	if testing.Verbose() {
		t.Logf("the machine's console:\n%s", out)
	}
}

// extractKernel unpacks the kernel image and Modules of a Debian kernel
// package, the modules into modDir, and returns the image's path.
func extractKernel(t *testing.T, deb, modDir string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "deb")
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	patterns := []string{"./boot/vmlinuz-*"}
	for _, m := range Modules {
		patterns = append(patterns, "*/"+m+".ko")
	}
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	x := exec.Command("sh", append([]string{"-c", `deb=$1 dir=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"`, "sh", deb, tree}, patterns...)...)
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("unpacking %s: %v\n%s", deb, err, out)
	}
	images, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		t.Fatalf("%s: kernel images %v", deb, images)
	}
	mods := map[string]string{}
	err := filepath.WalkDir(filepath.Join(tree, "lib"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			mods[strings.TrimSuffix(d.Name(), ".ko")] = p
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Modules {
		if mods[m] == "" {
			t.Fatalf("%s has no module %s", deb, m)
		}
		if err := os.Rename(mods[m], filepath.Join(modDir, m+".ko")); err != nil {
			t.Fatal(err)
		}
	}
	return images[0]
}

// goBuild runs the go command in the repository, statically linked.
func goBuild(t *testing.T, args ...string) {
	t.Helper()
	c := exec.Command("go", args...)
	c.Dir = servetest.Root()
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatal(fmt.Errorf("go %v: %w\n%s", args, err, out))
	}
}
