package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelpAndUsage(t *testing.T) {
	if code, _, errOut := run(t); code != exitUsage || !strings.Contains(errOut, "Commands:") {
		t.Errorf("no args: %d %q", code, errOut)
	}
	if code, _, _ := run(t, "--help"); code != exitOK {
		t.Errorf("--help: %d", code)
	}
	if code, _, errOut := run(t, "bogus"); code != exitUsage || !strings.Contains(errOut, `unknown command "bogus"`) {
		t.Errorf("bogus: %d %q", code, errOut)
	}
	for name := range commands {
		code, _, errOut := run(t, name, "--help")
		if code != exitOK || !strings.Contains(errOut, "Usage: snomprov "+name) {
			t.Errorf("%s --help: %d %q", name, code, errOut)
		}
		if code, _, _ := run(t, name, "--no-such-flag"); code != exitUsage {
			t.Errorf("%s --no-such-flag: exit %d, want %d", name, code, exitUsage)
		}
	}
	if code, out, _ := run(t, "version"); code != exitOK || !strings.HasPrefix(out, "snomprov ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestCheckReportsEveryProblemWithPosition(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "bad.toml", "[server]\ninterfce = \"eth0\"\n[[phones]]\nmac = \"00:04:13:zz:1f:a7\"\n")
	code, _, errOut := run(t, "check", "-config", p)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; %s", code, exitUsage, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `:2:1: server\.interfce: unknown key`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `:4:1: phones\[0\]\.mac: bad MAC address`),
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), errOut)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %s", i, lines[i], re)
		}
	}
}

func TestCheckAndRender(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(dir, "fw")
	if err := os.Mkdir(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fw, "snomD785-10.1.73.4-SIP-r.bin", "image")
	p := writeFile(t, dir, "ok.toml", `[server]
advertise = "10.0.0.2"
state_dir = "`+filepath.Join(dir, "state")+`"
[http]
firmware_dir = "`+fw+`"
[models.snomD785]
firmware = "snomD785-10.1.73.4-SIP-r.bin"
[[phones]]
mac = "00:04:13:A1:1F:A7"
model = "snomD785"
[phones.settings]
user_name = { 1 = "101" }
user_pass = { 1 = "s3cret" }
`)
	code, out, errOut := run(t, "check", "-config", p)
	if code != exitOK || !strings.Contains(out, "ok (1 phones, 1 models") {
		t.Fatalf("check: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, "render", "-config", p, "000413a11fa7")
	if code != exitOK || !strings.Contains(out, "==> /snomD785-000413A11FA7.htm <==") || strings.Contains(out, "s3cret") || !strings.Contains(out, "********") {
		t.Errorf("render (masked): %d\n%s", code, out)
	}
	if !strings.Contains(out, "http://10.0.0.2/firmware/snomD785-10.1.73.4-SIP-r.bin") {
		t.Errorf("render: no firmware URL on the advertised address:\n%s", out)
	}
	code, out, _ = run(t, "render", "-config", p, "--show-secrets", "00-04-13-A1-1F-A7")
	if code != exitOK || !strings.Contains(out, ">s3cret<") {
		t.Errorf("render --show-secrets: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "render", "-config", p, "not-a-mac"); code != exitUsage {
		t.Errorf("render bad MAC: exit %d", code)
	}
	if code, _, _ := run(t, "render", "-config", p, "--model", "D785", "000413A11FA7"); code != exitUsage {
		t.Errorf("render bad model: exit %d", code)
	}
	if code, out, _ := run(t, "phones", "-config", p); code != exitOK || !strings.Contains(out, "no phones seen yet") {
		t.Errorf("phones on an empty inventory: %d %q", code, out)
	}
	if code, out, _ := run(t, "phones", "-config", p, "--json"); code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("phones --json on an empty inventory: %d %q", code, out)
	}
	if code, _, errOut := run(t, "phone", "-config", p, "000413A11FA7"); code != exitRuntime || !strings.Contains(errOut, "has not been seen") {
		t.Errorf("phone unseen: %d %q", code, errOut)
	}
	if code, out, _ := run(t, "leases", "-config", p); code != exitOK || !strings.Contains(out, "no leases") {
		t.Errorf("leases: %d %q", code, out)
	}
	if code, _, _ := run(t, "resync", "-config", p); code != exitUsage {
		t.Errorf("resync without targets: exit %d", code)
	}
}

func TestRouterConfig(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "rc.toml", "[server]\nadvertise = \"10.0.0.2\"\n[http]\nlisten = \":8080\"\n[dhcp]\nupdate_filename = \"snom.htm\"\n")
	code, out, errOut := run(t, "router-config", "-config", p, "--for", "dnsmasq")
	if code != exitOK || !strings.Contains(out, `dhcp-option-force=tag:snom,66,"http://10.0.0.2:8080/"`) || !strings.Contains(out, "67") {
		t.Errorf("dnsmasq: %d %q\n%s", code, errOut, out)
	}
	code, out, _ = run(t, "router-config", "-config", p, "--for", "windows", "--subnet", "10.0.0.0/24")
	if code != exitOK || !strings.Contains(out, "10.0.0.0") || !strings.Contains(out, "http://10.0.0.2:8080/") {
		t.Errorf("windows: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "router-config", "-config", p, "--for", "bogus"); code != exitUsage {
		t.Errorf("bogus target: exit %d", code)
	}
	if code, _, _ := run(t, "router-config", "-config", p); code != exitUsage {
		t.Errorf("no --for: exit %d", code)
	}
}

func TestModels(t *testing.T) {
	code, out, _ := run(t, "models")
	if code != exitOK || !strings.Contains(out, "snomD785") || !strings.Contains(out, "D7/D7C (max 3)") {
		t.Errorf("models: %d\n%s", code, out)
	}
	code, out, _ = run(t, "models", "--json")
	if code != exitOK || !strings.Contains(out, `"type": "snomM900"`) || !strings.Contains(out, `"source": "https://`) || !strings.Contains(out, "\"D7\": [\n        \"24-41\",\n        \"42-59\",\n        \"60-77\"") {
		t.Errorf("models --json: %d\n%s", code, out)
	}
}

// TestRenderAndCheckContainers: render shows the chained documents and
// the new containers; check places catalogue errors and prints warnings.
func TestRenderAndCheckContainers(t *testing.T) {
	const office = "../../provision/testdata/office/office.toml"
	code, out, errOut := run(t, "render", "-config", office, "000413A11FA7")
	if code != exitOK {
		t.Fatalf("render: %d %s", code, errOut)
	}
	for _, want := range []string{"==> /snomD785.htm <==\n<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<setting-files>", "==> /snomprov/snomD785.xml <==",
		"==> /snomprov/snomD785-gui-languages.xml <==", "<dialplan e=\"2\">", "<ReplacementPlan>", "<certificate type=\"base64\">", `short_label="B"`, "<user_pass idx=\"1\" perm=\"R\">********</user_pass>"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q", want)
		}
	}
	if code, out, _ := run(t, "check", "-config", office); code != exitOK || strings.Contains(out, "warning") {
		t.Errorf("check office: %d\n%s", code, out)
	}

	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.toml", "[models.snomC520.fkeys]\n0 = \"line\"\n")
	code, _, errOut = run(t, "check", "-config", bad)
	if code != exitUsage || !strings.Contains(errOut, bad+":2:1: models.snomC520.fkeys.0: snomC520 has no free function keys") {
		t.Errorf("check bad: %d\n%s", code, errOut)
	}
	both := writeFile(t, dir, "both.toml", "[models.snomX9]\n[models.snomC520.fkeys]\n0 = \"line\"\n")
	if code, out, errOut := run(t, "check", "-config", both); code != exitUsage || !strings.Contains(out, "warning: "+both+":1:1: models.snomX9") || !strings.Contains(errOut, both+":3:1: models.snomC520.fkeys.0") {
		t.Errorf("check with errors and warnings: %d\n%s\n%s", code, out, errOut)
	}
	warn := writeFile(t, dir, "warn.toml", "[models.snomX9]\n")
	code, out, _ = run(t, "check", "-config", warn)
	if code != exitOK || !strings.Contains(out, "warning: "+warn+":1:1: models.snomX9: snomX9 is not in the model catalogue") {
		t.Errorf("check warning: %d\n%s", code, out)
	}
}

func TestCheckInventory(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		body, want string
	}{
		// A missing key is reported at its section ([inventory], line 3).
		{"[inventory]\nurl = \"postgres://snom:s3cret@db.example/snomprov\"\n", `:3:1: inventory\.site: set a site name`},
		{"[inventory]\nurl = \"postgres://snom:s3cret@db:x/snomprov\"\nsite = \"hq\"\n", `:4:1: inventory\.url: not a PostgreSQL connection string`},
		{"[inventory]\nsite = \"two words\"\n", `:4:1: inventory\.site: "two words"`},
	} {
		p := writeFile(t, dir, "inv.toml", "[server]\nstate_dir = \""+dir+"\"\n"+tc.body)
		want := regexp.MustCompile("^" + regexp.QuoteMeta(p) + tc.want)
		code, _, errOut := run(t, "check", "-config", p)
		if code != exitUsage || !want.MatchString(strings.TrimSpace(errOut)) || strings.Contains(errOut, "s3cret") {
			t.Errorf("%q: exit %d, %q; want %s", tc.body, code, errOut, want)
		}
	}
}

func TestRouterConfigKeaHA(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "rc.toml", "[server]\nadvertise = \"10.0.0.2\"\n[http]\nlisten = \":8080\"\n[dhcp]\npool = \"10.0.0.100-10.0.0.199\"\nrouter = \"10.0.0.1\"\n")
	args := []string{"router-config", "-config", p, "--for", "kea-ha", "--subnet", "10.0.0.0/24", "--primary", "10.0.0.5", "--standby", "10.0.0.6"}
	code, out, errOut := run(t, append(args, "--out", dir)...)
	if code != exitOK || !strings.Contains(out, "kea-dhcp4-primary.conf") {
		t.Fatalf("kea-ha --out: %d %q %q", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kea-dhcp4-standby.conf"))
	for _, want := range []string{`"this-server-name": "standby"`, `"pool": "10.0.0.100 - 10.0.0.199"`, `"data": "10.0.0.1"`, `"data": "http://10.0.0.2:8080/"`} {
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("standby config lacks %s (%v)", want, err)
		}
	}
	if code, _, errOut := run(t, args[:len(args)-2]...); code != exitUsage || !strings.Contains(errOut, "--standby") {
		t.Errorf("without --standby: exit %d %q", code, errOut)
	}
	// What check refuses in [dhcp], kea-ha refuses too, at its key.
	bad := writeFile(t, dir, "bad.toml", "[server]\nadvertise = \"10.0.0.2\"\n[dhcp]\npool = \"10.0.0.100-10.0.0.199\"\n"+
		"[[dhcp.options]]\ncode = 66\ntype = \"string\"\nvalue = \"http://x/\"\n")
	bargs := append([]string{}, args...)
	bargs[2] = bad
	if code, _, errOut := run(t, bargs...); code == exitOK || !strings.Contains(errOut, "dhcp.options[0]") {
		t.Errorf("option 66 in [[dhcp.options]]: exit %d %q, want an error at dhcp.options[0]", code, errOut)
	}
}

// TestCheckDHCPSubnetsOnly: check accepts a [dhcp] without a pool beside
// [[dhcp.subnets]], and names a reservation there as a problem.
func TestCheckDHCPSubnetsOnly(t *testing.T) {
	dir := t.TempDir()
	base := "[server]\nstate_dir = \"" + filepath.Join(dir, "state") + "\"\n[dhcp]\nenabled = true\n"
	subnet := "[[dhcp.subnets]]\nnetwork = \"10.30.0.0/24\"\npool = \"10.30.0.100-10.30.0.199\"\n"
	tests := []struct {
		name, text string
		code       int
		want       string
	}{
		{"subnets only", base + subnet, exitOK, "note: DHCP serves only its 1 [[dhcp.subnets]], not the LAN (10.0.0.0/24)"},
		{"subnets only, PnP off", base + "[pnp]\nenabled = false\n" + subnet, exitOK, "PnP is off, so phones there need option 66 from that server"},
		{"a reservation without a pool", base + "[[dhcp.reservations]]\nmac = \"000413A11FA7\"\nip = \"10.0.0.50\"\n" + subnet, exitUsage,
			":5:1: dhcp.reservations[0]: [dhcp] has no pool, so the LAN subnet is not served"},
		{"no pool, no subnets", base, exitUsage, ":3:1: dhcp.pool: DHCP needs a pool to serve from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "c.toml", tt.text)
			code, out, errOut := run(t, "check", "-config", p, "-interface", "eth0", "-network", "10.0.0.2/24")
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// The [[dhcp.subnets]] reach the pair as serve compiles them. The LAN is
// lo, so the compile runs the same on any machine; the subnets are relayed
// (a local one needs its interface, see routerconfig's namespace test).
func TestRouterConfigKeaHASubnets(t *testing.T) {
	dir := t.TempDir()
	base := "[server]\ninterface = \"lo\"\nadvertise = \"10.0.0.2\"\n[http]\nlisten = \":8080\"\n" +
		"[dhcp]\npool = \"127.0.0.100-127.0.0.199\"\nntp = [\"10.0.0.1\"]\n"
	args := []string{"router-config", "--for", "kea-ha", "--subnet", "10.0.0.0/24", "--pool", "10.0.0.100-10.0.0.199",
		"--primary", "10.0.0.5", "--standby", "10.0.0.6", "-config"}
	good := base + "[[dhcp.subnets]]\nnetwork = \"10.250.0.0/24\"\npool = \"10.250.0.100-10.250.0.199\"\nrouter = \"10.250.0.1\"\n" +
		"[[dhcp.subnets]]\nnetwork = \"10.251.0.0/24\"\npool = \"10.251.0.10-10.251.0.20\"\nupdate_server = \"http://10.0.0.9/\"\n"
	code, out, errOut := run(t, append(args, writeFile(t, dir, "good.toml", good))...)
	if code != exitOK {
		t.Fatalf("exit %d %q", code, errOut)
	}
	for _, want := range []string{`"subnet": "10.250.0.0/24"`, `"pool": "10.250.0.100 - 10.250.0.199"`, `"data": "10.250.0.1"`,
		`"subnet": "10.251.0.0/24"`, `"data": "http://10.0.0.9/"`, `"data": "http://10.0.0.2:8080/"`,
		`"name": "ntp-servers"`, "its relays must forward to both 10.0.0.5 and 10.0.0.6"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	bad := base + "[[dhcp.subnets]]\nnetwork = \"10.250.0.0/24\"\npool = \"10.251.0.100-10.251.0.199\"\n"
	if code, _, errOut := run(t, append(args, writeFile(t, dir, "bad.toml", bad))...); code == exitOK || !strings.Contains(errOut, "dhcp.subnets[0].pool") {
		t.Errorf("a subnet's pool outside its network: exit %d %q, want an error naming dhcp.subnets[0].pool", code, errOut)
	}
}
