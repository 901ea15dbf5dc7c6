package packaging

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/snomprov/snomprov/systemd"
)

const (
	conffilePath = "/etc/snomprov/snomprov.toml"
	stateDir     = "/var/lib/snomprov"
	unitPath     = "/usr/lib/systemd/system/snomprov.service"
	sysusersPath = "/usr/lib/sysusers.d/snomprov.conf"
	wantsLink    = "/etc/systemd/system/multi-user.target.wants/snomprov.service"
)

// account is one parsed passwd or group entry.
type account struct {
	name       string
	id, gid    int
	home, shel string
}

func parsePasswd(t testing.TB, line string) account {
	t.Helper()
	f := strings.Split(line, ":")
	if len(f) != 7 {
		t.Fatalf("malformed passwd entry %q", line)
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		t.Fatalf("malformed passwd entry %q", line)
	}
	return account{name: f[0], id: uid, gid: gid, home: f[5], shel: f[6]}
}

// checkUser asserts the snomprov system user and group exist as the
// service and sysusers.conf expect, and returns it.
func checkUser(t testing.TB, c *chroot) account {
	t.Helper()
	line := c.passwd("snomprov")
	if line == "" {
		t.Fatal("user snomprov does not exist after install")
	}
	u := parsePasswd(t, line)
	if u.id == 0 || u.id >= 1000 {
		t.Errorf("snomprov uid %d, want a system uid (1..999)", u.id)
	}
	if u.home != stateDir || u.shel != "/usr/sbin/nologin" {
		t.Errorf("snomprov home %q shell %q, want %q and /usr/sbin/nologin", u.home, u.shel, stateDir)
	}
	group := strings.TrimSpace(c.must("getent", "group", "snomprov"))
	if gid := strings.Split(group, ":")[2]; gid != strconv.Itoa(u.gid) {
		t.Errorf("group snomprov has gid %s, but the user's primary gid is %d", gid, u.gid)
	}
	return u
}

// owner returns a path's uid, gid and permission bits inside the chroot.
func owner(t testing.TB, c *chroot, p string) (uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(c.path(p))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

func readRepo(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readChroot(t testing.TB, c *chroot, p string) string {
	t.Helper()
	b, err := os.ReadFile(c.path(p))
	if err != nil {
		t.Fatalf("reading %s in the chroot: %v", p, err)
	}
	return string(b)
}

// TestDebInstallRemovePurge installs the amd64 .deb into a bookworm root
// with no systemd running (as in an image build), then reinstalls it over a
// locally edited conffile, removes it and purges it, checking what dpkg and
// the maintainer scripts leave behind at every step.
func TestDebInstallRemovePurge(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: skipping the chroot install test")
	}
	needRoot(t)
	needTool(t, "chroot", "coreutils")
	// The root first: on a cold cache debootstrap (network-bound) then runs
	// while TestDebContents cross-builds (CPU-bound).
	c := newChroot(t)
	deb := debFor(t, "amd64")

	// Install.
	out := c.install(deb)
	t.Logf("dpkg -i:\n%s", out)
	if s := c.status(); s != "install ok installed" {
		t.Fatalf("dpkg status after install = %q, want %q", s, "install ok installed")
	}
	files := []struct {
		path string
		mode os.FileMode
		want string // expected content; "" = only check it exists
	}{
		{"/usr/bin/snomprov", 0o755, ""},
		{unitPath, 0o644, systemd.Unit},
		{sysusersPath, 0o644, readRepo(t, "packaging/sysusers.conf")},
		{conffilePath, 0o640, readRepo(t, "packaging/snomprov.toml")},
		{"/usr/share/doc/snomprov/raspberry-pi.md", 0o644, readRepo(t, "docs/raspberry-pi.md")},
		{"/usr/share/doc/snomprov/router-setup.md", 0o644, readRepo(t, "docs/router-setup.md")},
	}
	for _, f := range files {
		_, _, mode := owner(t, c, f.path)
		if mode != f.mode {
			t.Errorf("%s mode %v, want %v", f.path, mode, f.mode)
		}
		if f.want != "" && readChroot(t, c, f.path) != f.want {
			t.Errorf("%s differs from the repository's copy", f.path)
		}
	}
	conffiles := c.must("dpkg-query", "-W", "-f=${Conffiles}", "snomprov")
	if !strings.Contains(conffiles, conffilePath+" ") {
		t.Errorf("%s is not registered as a conffile; dpkg has:%s", conffilePath, conffiles)
	}

	u := checkUser(t, c)
	if uid, gid, mode := owner(t, c, stateDir); uid != u.id || gid != u.gid || mode != 0o750 {
		t.Errorf("%s is %d:%d %v, want %d:%d 0750", stateDir, uid, gid, mode, u.id, u.gid)
	}
	if uid, gid, _ := owner(t, c, conffilePath); uid != 0 || gid != u.gid {
		t.Errorf("%s is owned %d:%d, want root:snomprov (0:%d) so the service can read it", conffilePath, uid, gid, u.gid)
	}
	// No systemd runs in the chroot, yet the service must be enabled so an
	// image built this way starts it on first boot.
	if !c.sameFile(wantsLink, unitPath) {
		t.Errorf("service not enabled: %s does not lead to %s", wantsLink, unitPath)
	}
	if out, err := c.exec("", "systemd-analyze", "verify", "--man=no", unitPath); err != nil || strings.Contains(out, "snomprov") {
		t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
	}

	// The binary runs there; check runs as the service user, which proves it
	// can read the 0640 conffile and that the shipped config is valid.
	if out := c.must("/usr/bin/snomprov", "version"); !strings.HasPrefix(out, "snomprov ") {
		t.Errorf("snomprov version printed %q, want \"snomprov <version>\"", out)
	}
	if out, err := c.exec("snomprov:snomprov", "/usr/bin/snomprov", "check", "-config", conffilePath); err != nil {
		t.Errorf("snomprov check -config %s as user snomprov: %v\n%s", conffilePath, err, out)
	}

	// Reinstall over a local edit: dpkg runs postinst with the old version
	// (the upgrade path) and must keep the edited conffile without asking.
	edited := readChroot(t, c, conffilePath) + "\n# local edit by the installer\n"
	if err := os.WriteFile(c.path(conffilePath), []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	c.install(deb)
	if got := readChroot(t, c, conffilePath); got != edited {
		t.Error("reinstall replaced the locally edited conffile")
	}
	if c.exists(conffilePath+".dpkg-new") || c.exists(conffilePath+".dpkg-dist") {
		t.Error("reinstall left a .dpkg-new/.dpkg-dist next to the conffile")
	}
	if again := checkUser(t, c); again != u {
		t.Errorf("reinstall changed the user: %+v → %+v", u, again)
	}
	if err := os.WriteFile(c.path(stateDir+"/phones.json"), []byte("{}\n"), 0o640); err != nil {
		t.Fatal(err)
	}

	// Remove: program files go, configuration and state stay.
	c.must("dpkg", "--remove", "snomprov")
	if s := c.status(); s != "deinstall ok config-files" {
		t.Errorf("dpkg status after remove = %q, want %q", s, "deinstall ok config-files")
	}
	for _, p := range []string{"/usr/bin/snomprov", unitPath, sysusersPath} {
		if c.exists(p) {
			t.Errorf("%s still exists after dpkg --remove", p)
		}
	}
	for _, p := range []string{conffilePath, stateDir + "/phones.json"} {
		if !c.exists(p) {
			t.Errorf("%s is gone after dpkg --remove; only purge may delete it", p)
		}
	}

	// Purge: configuration, state and the enablement symlink go; the user stays.
	c.must("dpkg", "--purge", "snomprov")
	if s := c.status(); s != "" && !strings.Contains(s, "not-installed") {
		t.Errorf("dpkg status after purge = %q, want not installed", s)
	}
	for _, p := range []string{stateDir, conffilePath, "/etc/snomprov", wantsLink} {
		if c.exists(p) {
			t.Errorf("%s still exists after dpkg --purge", p)
		}
	}
	if c.passwd("snomprov") == "" {
		t.Error("purge deleted the snomprov user; it must be kept")
	}
}

// TestDebUserFallbacks installs the package with only one way of creating
// the user available at a time: sysusers (Raspberry Pi OS, Debian), adduser
// and plain useradd (containers and minimal roots without systemd).
func TestDebUserFallbacks(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: skipping the chroot install test")
	}
	needRoot(t)
	needTool(t, "chroot", "coreutils")
	tests := []struct {
		name string
		hide []string // programs made unavailable in the chroot
	}{
		// adduser itself calls useradd, so only the sysusers case can hide it.
		{"sysusers", []string{"/usr/sbin/adduser", "/usr/sbin/useradd", "/usr/sbin/groupadd"}},
		{"adduser", []string{"/usr/bin/systemd-sysusers"}},
		{"useradd", []string{"/usr/bin/systemd-sysusers", "/usr/sbin/adduser"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChroot(t)
			deb := debFor(t, "amd64")
			for _, p := range tt.hide {
				if err := os.Rename(c.path(p), c.path(p)+".hidden"); err != nil {
					t.Fatalf("hiding %s: %v", p, err)
				}
			}
			c.install(deb)
			checkUser(t, c)
			c.must("dpkg", "--purge", "snomprov")
			if c.passwd("snomprov") == "" {
				t.Error("purge deleted the snomprov user")
			}
		})
	}
}
