package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` score the unit may
// have (0 = fully sandboxed, 10 = not at all).
const maxExposure = 2.0

// directives parses a unit file into section.key → values, in file order.
func directives(t *testing.T, unit string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q is neither a section nor key=value", line)
			}
			out[section+"."+key] = append(out[section+"."+key], value)
		}
	}
	return out
}

func TestUnitDirectives(t *testing.T) {
	d := directives(t, Unit)
	tests := []struct {
		key, want string
	}{
		{"Service.Type", "notify"},
		{"Service.NotifyAccess", "main"},
		{"Service.ExecStart", "/usr/bin/snomprov serve -config /etc/snomprov/snomprov.toml"},
		{"Service.ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service.Restart", "on-failure"},
		{"Service.WatchdogSec", "30s"},
		{"Service.User", "snomprov"},
		{"Service.Group", "snomprov"},
		{"Service.StateDirectory", "snomprov"},
		{"Service.ProtectSystem", "strict"},
		{"Service.ProtectHome", "yes"},
		{"Service.PrivateTmp", "yes"},
		{"Service.PrivateDevices", "yes"},
		{"Service.NoNewPrivileges", "yes"},
		{"Service.MemoryDenyWriteExecute", "yes"},
		{"Service.SystemCallArchitectures", "native"},
		{"Service.RestrictNamespaces", "yes"},
		{"Service.ProtectKernelTunables", "yes"},
		{"Service.ProtectKernelModules", "yes"},
		{"Service.ProtectControlGroups", "yes"},
		{"Install.WantedBy", "multi-user.target"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := d[tt.key]
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s = %q, want exactly [%q]", tt.key, got, tt.want)
			}
		})
	}
}

// The unit grants exactly the capabilities the code uses, and the bounding
// set equals the ambient set so nothing else can be regained.
func TestUnitCapabilities(t *testing.T) {
	d := directives(t, Unit)
	want := []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
	for _, key := range []string{"Service.AmbientCapabilities", "Service.CapabilityBoundingSet"} {
		vals := d[key]
		if len(vals) != 1 {
			t.Fatalf("%s appears %d times, want once", key, len(vals))
		}
		got := strings.Fields(vals[0])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
}

// needAnalyze returns the path of systemd-analyze, skipping the test when
// it is missing (failing under CI=true, where .ci/install-deps.sh installs it).
func needAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not installed; .ci/install-deps.sh must install the systemd package")
		}
		t.Skip("systemd-analyze not installed (Debian package systemd); skipping")
	}
	return p
}

// writeUnitCopy writes the unit to a temp dir with ExecStart pointing at an
// executable that exists on this machine (the test binary itself), because
// verify checks that the command is executable and /usr/bin/snomprov is not
// installed here. Everything else is byte-for-byte the shipped unit.
func writeUnitCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "ExecStart=/usr/bin/snomprov "
	if !strings.Contains(Unit, shipped) {
		t.Fatalf("unit has no %q line", shipped)
	}
	text := strings.Replace(Unit, shipped, "ExecStart="+self+" ", 1)
	p := filepath.Join(t.TempDir(), "snomprov.service")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnitVerify(t *testing.T) {
	analyze := needAnalyze(t)
	unit := writeUnitCopy(t)
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify failed: %v\n%s", err, out)
	}
	// verify exits 0 on some warnings (unknown keys, bad values it ignores);
	// any line about our unit is a defect.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "snomprov.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

var exposureLine = regexp.MustCompile(`Overall exposure level for snomprov\.service: ([0-9.]+)`)

func TestUnitSecurityExposure(t *testing.T) {
	analyze := needAnalyze(t)
	unit := writeUnitCopy(t)
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=true failed: %v\n%s", err, out)
	}
	m := exposureLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure score in systemd-analyze output:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f; the unit lost sandboxing:\n%s", score, maxExposure, out)
	}
}
