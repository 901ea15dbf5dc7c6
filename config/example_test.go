package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const exampleFile = "../packaging/snomprov.toml"

// TestExampleAsInstalled: the conffile as shipped runs HTTP on :80 and PnP
// answering Snom phones, with DHCP off.
func TestExampleAsInstalled(t *testing.T) {
	cfg, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != ":80" || cfg.HTTPPort() != 80 || !cfg.PnP.Enabled || (cfg.PnP.Answer != "" && cfg.PnP.Answer != "snom") || cfg.DHCP.Enabled {
		t.Fatalf("installed config: http %+v pnp %+v dhcp.enabled %v", cfg.HTTP, cfg.PnP, cfg.DHCP.Enabled)
	}
	if len(cfg.Phones) != 0 || len(cfg.Models) != 0 || len(cfg.Settings) != 0 {
		t.Fatal("the installed config provisions phones, models or settings; they must stay examples")
	}
}

// uncommentExamples turns every "#: " example line into a live line.
func uncommentExamples(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	n := 0
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "#: "); ok {
			lines[i] = rest
			n++
		}
	}
	if n < 50 {
		t.Fatalf("only %d example lines found; the #: marker changed?", n)
	}
	return strings.Join(lines, "\n")
}

// examplesConfig loads the un-commented examples with a firmware_dir that
// holds the firmware file they name.
func examplesConfig(t *testing.T, edit func(string) string) *Config {
	t.Helper()
	text := uncommentExamples(t)
	fwDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(fwDir, "snomD785-10.1.73.4-SIP-r.bin"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	const line = `firmware_dir = "/var/lib/snomprov/firmware"`
	if !strings.Contains(text, line) {
		t.Fatalf("example has no %s line", line)
	}
	text = strings.Replace(text, line, `firmware_dir = "`+fwDir+`"`, 1)
	if edit != nil {
		text = edit(text)
	}
	cfg, err := Parse(exampleFile+" (examples un-commented)", []byte(text))
	if err != nil {
		t.Fatalf("the un-commented examples do not load:\n%v", err)
	}
	return cfg
}

// TestExampleEveryKey: with every example un-commented the file loads, and
// every key the config knows was set by it, so each one is documented and
// proven to parse.
func TestExampleEveryKey(t *testing.T) {
	cfg := examplesConfig(t, nil)
	// Model, group and DECT handset names are the example's own (a DECT base's
	// keys are shown on [models.snomM900]).
	anyName := regexp.MustCompile(`^(models|groups|[a-z_.\[\]0-9]*handsets)\.[A-Za-z0-9]+`)
	norm := func(k string) string {
		k = anyName.ReplaceAllString(k, "$1.*")
		return regexp.MustCompile(`handsets\.[A-Za-z0-9]+`).ReplaceAllString(k, "handsets.*")
	}
	set := map[string]bool{}
	for k := range cfg.explicit {
		set[norm(k)] = true
	}
	for _, key := range configKeys(reflect.TypeFor[Config](), "") {
		if !set[norm(key)] {
			t.Errorf("packaging/snomprov.toml has no example for %s", key)
		}
	}
	p, ok := cfg.Phones[0], len(cfg.Phones) == 3 // one [[phones]], two rows of phones-example.csv
	if !ok || p.Settings["user_pass"].Indexed[1].Value != "s3cret" || p.FKeys[2].Label != "Reception" {
		t.Errorf("phone example decoded wrongly: %+v", cfg.Phones)
	}
	if cfg.DHCP.Enabled {
		t.Error("un-commenting the examples turned DHCP on")
	}
}

// ExamplesConfig is examplesConfig for the external tests (compile_test.go),
// which may import package plan.
var ExamplesConfig = examplesConfig

// configKeys lists every leaf key of the config's TOML layout, naming
// arrays of tables by their first entry and [models] by snomD785.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			keys = append(keys, configKeys(f.Type, prefix)...) // inline keys (Containers)
			continue
		}
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key := joinKey(prefix, name)
		ft := f.Type
		leaf := func(t reflect.Type) bool { return reflect.PointerTo(t).Implements(tomlUnmarshalerType) }
		switch {
		case leaf(ft) || ft.Kind() == reflect.Slice && leaf(ft.Elem()):
			keys = append(keys, key)
		case ft.Kind() == reflect.Struct && ft.PkgPath() == reflect.TypeFor[Config]().PkgPath() && ft != reflect.TypeFor[Duration]():
			keys = append(keys, configKeys(ft, key)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem().PkgPath() == reflect.TypeFor[Config]().PkgPath():
			keys = append(keys, configKeys(ft.Elem(), indexKey(key, 0))...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct && ft.Elem() != reflect.TypeFor[Setting]() && ft.Elem() != reflect.TypeFor[FKey]():
			keys = append(keys, configKeys(ft.Elem(), joinKey(key, "snomD785"))...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

func TestConfigKeysWalk(t *testing.T) {
	keys := strings.Join(configKeys(reflect.TypeFor[Config](), ""), " ")
	for _, k := range []string{"server.interface", "dhcp.reservations[0].mac", "models.snomD785.fkeys", "phones[0].settings", "phonebook[0].type", "dhcp.lease_time"} {
		if !strings.Contains(" "+keys+" ", " "+k+" ") {
			t.Errorf("configKeys misses %s: %s", k, keys)
		}
	}
}

// TestDocsNameEveryKey: docs/configuration.md mentions every key in backticks.
func TestDocsNameEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range configKeys(reflect.TypeFor[Config](), "") {
		name := key[strings.LastIndexAny(key, ".]")+1:]
		// `name`, `name, ...`, [name] or [x.name] as a table header
		if !regexp.MustCompile("[`\\[.]" + regexp.QuoteMeta(name) + "[`\\],]").Match(doc) {
			t.Errorf("docs/configuration.md does not name %s", key)
		}
	}
}
