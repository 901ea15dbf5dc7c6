// Package packaging tests the snomprov .debs: their contents for every
// architecture, a full install → reinstall → remove → purge cycle of the
// amd64 package in a scratch Debian bookworm root made with debootstrap,
// and the installed service in that root booted with systemd (nspawn).
package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rootfsRecipe names the cached root: bump the suffix when the debootstrap
// arguments change so stale caches are not reused.
const (
	rootfsSuite = "bookworm"
	// systemd: sysusers and systemctl as on a real install; adduser: its
	// fallback; procps: /bin/kill, a dependency of the package.
	rootfsIncludes = "systemd,adduser,procps"
	rootfsTarball  = "bookworm-minbase-systemd-adduser-procps-amd64.v2.tar"
	defaultMirror  = "http://deb.debian.org/debian"
	defaultCache   = "/var/cache/snomprov-test"
)

// repoRoot is the snomprov checkout this test file lives in.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// needRoot skips without root, and fails under CI=true where the test must run.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the packaging test needs root (chroot, dpkg in a scratch root); CI runs as root")
	}
	t.Skip("not root; skipping the chroot install test")
}

// needTool returns the path of an external program, skipping the test when
// it is missing (failing under CI=true, where .ci/install-deps.sh installs it).
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed; .ci/install-deps.sh must install the Debian package %s", name, pkg)
		}
		t.Skipf("%s not installed (Debian package %s); skipping", name, pkg)
	}
	return p
}

// run executes a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debDir holds the packages this test run builds; TestMain removes it.
var (
	debDirOnce sync.Once
	debDir     string
	debDirErr  error

	debBuilds sync.Map // Debian arch → *debBuild
)

type debBuild struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// debFor builds the package for one Debian architecture once per test run,
// with the Makefile's own `make deb`, and returns its path. Each arch is
// built on first use, so the install test does not wait for the ARM builds.
func debFor(t testing.TB, arch string) string {
	t.Helper()
	debDirOnce.Do(func() { debDir, debDirErr = os.MkdirTemp("", "snomprov-debs-") })
	if debDirErr != nil {
		t.Fatal(debDirErr)
	}
	v, _ := debBuilds.LoadOrStore(arch, &debBuild{})
	b := v.(*debBuild)
	b.once.Do(func() {
		cmd := exec.Command("make", "--no-print-directory", "-C", repoRoot(t), "deb", "DIST="+debDir, "DEB_ARCHES="+arch)
		b.out, b.err = cmd.CombinedOutput()
		if b.err != nil {
			return
		}
		matches, _ := filepath.Glob(filepath.Join(debDir, "snomprov_*_"+arch+".deb"))
		if len(matches) != 1 {
			b.err = fmt.Errorf("want exactly one snomprov_*_%s.deb in %s, found %v", arch, debDir, matches)
			return
		}
		b.path = matches[0]
	})
	if b.err != nil {
		t.Fatalf("make deb DEB_ARCHES=%s: %v\n%s", arch, b.err, b.out)
	}
	return b.path
}

// cachedRootfs returns a tarball of a minimal Debian bookworm root, made
// with debootstrap on first use and cached (SNOMPROV_TEST_CACHE, default
// /var/cache/snomprov-test) so later runs take seconds. A file lock keeps
// parallel test processes from building it twice.
func cachedRootfs(t testing.TB) string {
	t.Helper()
	cache := os.Getenv("SNOMPROV_TEST_CACHE")
	if cache == "" {
		cache = defaultCache
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatalf("creating the rootfs cache: %v", err)
	}
	tarball := filepath.Join(cache, rootfsTarball)

	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	if _, err := os.Stat(tarball); err == nil {
		return tarball
	}
	debootstrap := needTool(t, "debootstrap", "debootstrap")
	mirror := os.Getenv("SNOMPROV_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = defaultMirror
	}
	build, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(build)
	root := filepath.Join(build, "root")
	start := time.Now()
	run(t, debootstrap, "--variant=minbase", "--include="+rootfsIncludes, rootfsSuite, root, mirror)
	// Drop the downloaded .debs: they double the tarball for nothing.
	debCache, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, f := range debCache {
		os.Remove(f)
	}
	run(t, "tar", "--numeric-owner", "-C", root, "-cf", tarball+".tmp", ".")
	if err := os.Rename(tarball+".tmp", tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap %s from %s: %s, cached in %s", rootfsSuite, mirror, time.Since(start).Round(time.Second), tarball)
	return tarball
}

// chroot is a scratch Debian root the package is installed into.
type chroot struct {
	t    testing.TB
	root string
}

// newChroot unpacks the cached root into a fresh temp dir.
func newChroot(t testing.TB) *chroot {
	t.Helper()
	tarball := cachedRootfs(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "--numeric-owner", "-xpf", tarball, "-C", root)
	return &chroot{t: t, root: root}
}

// path is a path inside the chroot, as seen from outside.
func (c *chroot) path(p string) string { return filepath.Join(c.root, p) }

// exec runs a command inside the chroot with a clean environment and
// returns its combined output and error.
func (c *chroot) exec(userspec string, name string, args ...string) (string, error) {
	argv := []string{}
	if userspec != "" {
		argv = append(argv, "--userspec="+userspec)
	}
	argv = append(argv, c.root, name)
	argv = append(argv, args...)
	cmd := exec.Command("chroot", argv...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8", "HOME=/root", "DEBIAN_FRONTEND=noninteractive",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// must runs a command inside the chroot as root and fails on error.
func (c *chroot) must(name string, args ...string) string {
	c.t.Helper()
	out, err := c.exec("", name, args...)
	if err != nil {
		c.t.Fatalf("in chroot: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// install copies a .deb into the chroot and installs it with dpkg -i.
func (c *chroot) install(deb string) string {
	c.t.Helper()
	data, err := os.ReadFile(deb)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.path("/tmp/snomprov.deb"), data, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return c.must("dpkg", "-i", "/tmp/snomprov.deb")
}

// status is dpkg's status of the snomprov package ("" when unknown to dpkg).
func (c *chroot) status() string {
	out, err := c.exec("", "dpkg-query", "-W", "-f=${Status}", "snomprov")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// passwd returns the snomprov entry of the chroot's passwd ("" if none).
func (c *chroot) passwd(name string) string {
	out, err := c.exec("", "getent", "passwd", name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func (c *chroot) exists(p string) bool {
	_, err := os.Lstat(c.path(p))
	return err == nil
}

// sameFile reports whether link, a symlink inside the chroot, resolves to
// the same file as target within the chroot. systemctl writes
// /lib/systemd/system/... on merged-/usr Debian, which is the same file as
// /usr/lib/systemd/system/....
func (c *chroot) sameFile(link, target string) bool {
	dest, err := os.Readlink(c.path(link))
	if err != nil {
		return false
	}
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(filepath.Dir(link), dest)
	}
	a, err1 := os.Stat(c.path(dest))
	b, err2 := os.Stat(c.path(target))
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
