package packaging

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

// maxArm64Binary is the size bar for the linux/arm64 binary (a Pi's SD card
// and RAM are small; the issue sets < 20 MB).
const maxArm64Binary = 20 << 20

// debField reads one control field of a .deb.
func debField(t *testing.T, deb, field string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field))
}

// debMember extracts one file from a .deb's data or control archive.
func debMember(t *testing.T, deb, mode, member string) []byte {
	t.Helper()
	tarball, err := exec.Command("dpkg-deb", mode, deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s %s: %v", mode, deb, err)
	}
	cmd := exec.Command("tar", "-xO", member)
	cmd.Stdin = bytes.NewReader(tarball)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s has no %s: %v", deb, member, err)
	}
	return out
}

// TestDebContents builds the three packages with `make deb` and checks each
// one: its architecture, its files, its conffile and maintainer scripts,
// and that the binary is a static Go binary for the right CPU.
func TestDebContents(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: skipping the cross builds")
	}
	needTool(t, "dpkg-deb", "dpkg")
	needTool(t, "make", "make")
	tests := []struct {
		arch    string
		machine elf.Machine
		goarch  string
		goarm   string // GOARM build setting, armhf only
	}{
		{"amd64", elf.EM_X86_64, "amd64", ""},
		{"arm64", elf.EM_AARCH64, "arm64", ""},
		{"armhf", elf.EM_ARM, "arm", "7"},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			t.Parallel()
			deb := debFor(t, tt.arch)
			if got := debField(t, deb, "Architecture"); got != tt.arch {
				t.Errorf("Architecture: %q, want %q", got, tt.arch)
			}
			if got := debField(t, deb, "Package"); got != "snomprov" {
				t.Errorf("Package: %q, want snomprov", got)
			}
			version := debField(t, deb, "Version")
			if version == "" || version[0] < '0' || version[0] > '9' {
				t.Errorf("Version %q does not start with a digit, as Debian requires", version)
			}
			if want := "snomprov_" + version + "_" + tt.arch + ".deb"; filepath.Base(deb) != want {
				t.Errorf("package file %s, want %s (the name must carry the control file's version)", filepath.Base(deb), want)
			}

			listing := run(t, "dpkg-deb", "-c", deb)
			for _, p := range []string{
				"./usr/bin/snomprov", "." + unitPath, "." + sysusersPath, "." + conffilePath,
				"./usr/share/doc/snomprov/README.md",
				"./usr/share/doc/snomprov/raspberry-pi.md", "./usr/share/doc/snomprov/router-setup.md",
			} {
				if !strings.Contains(listing, " "+p+"\n") {
					t.Errorf("package lacks %s; it has:\n%s", p, listing)
				}
			}
			if got := strings.TrimSpace(string(debMember(t, deb, "--ctrl-tarfile", "./conffiles"))); got != conffilePath {
				t.Errorf("conffiles = %q, want %q", got, conffilePath)
			}
			for member, src := range map[string]string{
				"./postinst": "packaging/scripts/postinst",
				"./prerm":    "packaging/scripts/prerm",
				"./postrm":   "packaging/scripts/postrm",
			} {
				if string(debMember(t, deb, "--ctrl-tarfile", member)) != readRepo(t, src) {
					t.Errorf("%s in the package differs from %s", member, src)
				}
			}

			bin := debMember(t, deb, "--fsys-tarfile", "./usr/bin/snomprov")
			f, err := elf.NewFile(bytes.NewReader(bin))
			if err != nil {
				t.Fatalf("/usr/bin/snomprov is not an ELF file: %v", err)
			}
			if f.Machine != tt.machine {
				t.Errorf("binary machine %v, want %v", f.Machine, tt.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("binary has a dynamic loader (PT_INTERP); it must be static (CGO_ENABLED=0)")
				}
			}
			info, err := buildinfo.Read(bytes.NewReader(bin))
			if err != nil {
				t.Fatalf("reading Go build info: %v", err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["GOARCH"] != tt.goarch || settings["GOARM"] != tt.goarm {
				t.Errorf("built with CGO_ENABLED=%q GOARCH=%q GOARM=%q, want 0, %q, %q",
					settings["CGO_ENABLED"], settings["GOARCH"], settings["GOARM"], tt.goarch, tt.goarm)
			}
			t.Logf("%s: %s, binary %.1f MB", deb, version, float64(len(bin))/(1<<20))
			if tt.arch == "arm64" && len(bin) >= maxArm64Binary {
				t.Errorf("linux/arm64 binary is %d bytes, the bar is < %d", len(bin), maxArm64Binary)
			}
		})
	}
}
