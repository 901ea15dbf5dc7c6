package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/snomprov/snomprov/internal/field"
	"github.com/snomprov/snomprov/phone"
)

// TestParsePhonesCSV: good files as spreadsheets write them.
func TestParsePhonesCSV(t *testing.T) {
	tests := []struct {
		name, text string
	}{
		{"comma", "mac,model,description,line1_account,line1_password,line2_account,language\n" +
			"00:04:13:A1:1F:A7,snomD785,Reception,101,s3cret,,Deutsch\n"},
		{"semicolon with BOM and CRLF", "\ufeffMAC;Model;Description;line1_account;line1_password;line2_account;language\r\n" +
			"000413A11FA7;snomD785;Reception;101;s3cret;;Deutsch\r\n;;;;;;\r\n"},
		{"tab, quoted, comment, blank row", "# exported from the PBX\nmac\tmodel\tdescription\tline1_account\tline1_password\tline2_account\tlanguage\n\n" +
			"\"00-04-13-a1-1f-a7\"\tsnomD785\t\"Reception\"\t101\t\"s3cret\"\t\tDeutsch\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, errs := ParsePhonesCSV("phones.csv", []byte(tt.text))
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			p := rows[0].Phone
			if p.MAC.String() != "000413A11FA7" || p.Model != "snomD785" || p.Description != "Reception" ||
				len(p.Lines) != 1 || p.Lines[0] != (Line{Identity: 1, Account: "101", Password: "s3cret"}) ||
				p.Settings["language"].Value != "Deutsch" || len(p.Settings) != 1 {
				t.Errorf("phone = %+v", p)
			}
		})
	}
}

// TestPhonesCSVFirmwareColumns: group, firmware and firmware_uxm are the
// phone's keys (not settings), each located at its cell.
func TestPhonesCSVFirmwareColumns(t *testing.T) {
	rows, errs := ParsePhonesCSV("p.csv", []byte("mac;Group;firmware;firmware_uxm\n000413A11FA7;sales;snomD785-10.1.73.4-SIP-r.bin;http://fw/uxm.bin\n"))
	if len(errs) > 0 || len(rows) != 1 {
		t.Fatalf("%d rows, %v", len(rows), errs)
	}
	p, pos := rows[0].Phone, rows[0].Pos
	if p.Group != "sales" || p.Firmware != "snomD785-10.1.73.4-SIP-r.bin" || p.FirmwareUXM != "http://fw/uxm.bin" || len(p.Settings) != 0 {
		t.Errorf("phone %+v", p)
	}
	if pos["group"] != (CSVPos{Line: 2, Col: 14, Column: "group"}) || pos["firmware"].Col != 20 || pos["firmware_uxm"].Col != 49 {
		t.Errorf("positions %+v", pos)
	}
}

// TestPhonesCSVErrors: every bad-row case, with its place in the CSV.
func TestPhonesCSVErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"bad mac", "mac,model\n00:04:13,snomD785\n",
			[]string{`p.csv:2:1: mac: bad MAC address: "00:04:13" needs 12 hex digits; write it like "00:04:13:A1:1F:A7" (colons, dashes, dots or none, any case)`}},
		{"no mac", "mac,model\n,snomD785\n",
			[]string{`p.csv:2:1: mac: a phone needs a mac, like 00:04:13:A1:1F:A7`}},
		{"no mac column", "model,description\nsnomD785,x\n",
			[]string{`p.csv:1:1: no mac column; the first row names the columns and one of them must be mac`}},
		{"bad column names", "mac,line0_account,line1_pass,user-name,,mac\n000413A11FA7,1,2,3,,\n",
			[]string{
				`p.csv:1:5: line0_account: "line0_account" is not a line column: write line<N>_<key> with N from 1 to 64 and key one of account, password, name, auth_user, host, outbound, mailbox`,
				`p.csv:1:19: line1_pass: "line1_pass" is not a line column: write line<N>_<key> with N from 1 to 64 and key one of account, password, name, auth_user, host, outbound, mailbox`,
				`p.csv:1:30: user-name: "user-name" is not a column name; a column is mac, model, description, group, firmware, firmware_uxm, line<N>_<account|password|name|auth_user|host|outbound|mailbox> or a setting name (letters, digits and _)`,
				`p.csv:1:40: column 5 has no name; name it, or remove the column`,
				`p.csv:1:41: mac: column "mac" is also column 1; keep one`,
			}},
		{"too many cells", "mac;model\n000413A11FA7;snomD785;extra\n",
			[]string{`p.csv:2:23: this row has more cells (3) than the header has columns (2)`}},
		{"bare quote", "mac,model\n000413A11FA7,snom\"D785\n",
			[]string{`p.csv:2:18: bare " in non-quoted-field; a cell holding the separator or a quote must be quoted, with quotes inside doubled ("")`}},
		{"empty", "", []string{`p.csv: the file is empty; the first row names the columns, e.g. mac,model,description,line1_account,line1_password`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := ParsePhonesCSV("p.csv", []byte(tt.text))
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPhonesCSVInConfig: phones_csv rows join [[phones]]; a problem the
// config's checks find in a row is reported in the CSV under its column,
// and a phone in both the TOML and a CSV is an error.
func TestPhonesCSVInConfig(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"snomprov.toml": "phones_csv = [\"phones.csv\", \"missing.csv\"]\n[[phones]]\nmac = \"000413A11FA7\"\n",
		"phones.csv":    "mac;model;line1_account\n000413000001;snomD785;101\n000413A11FA7;snomD785;102\n000413000003;D785;103\n",
	})
	_, err := Load(filepath.Join(dir, "snomprov.toml"))
	got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
	want := strings.Join([]string{
		"snomprov.toml:1:29: phones_csv[1]: cannot read the phones CSV: open " + filepath.Join(dir, "missing.csv") + ": no such file or directory",
		"phones.csv:3:1: mac: duplicate phone: MAC 000413A11FA7 is also phones[0] (line 2); a phone is listed once, in [[phones]] or in a phones CSV: merge the two",
		`phones.csv:4:14: model: "D785" is not a Snom phone type; write it as the phone reports it, like "snomD785"`,
	}, "\n")
	if got != strings.ReplaceAll(want, dir+string(filepath.Separator), "") {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}

	dir = writeFiles(t, map[string]string{
		"snomprov.toml": "phones_csv = [\"phones.csv\"]\n[[phones]]\nmac = \"000413A11FA7\"\n",
		"phones.csv":    "mac,model,line2_account,line2_password\n000413000001,snomD785,102,pw\n",
	})
	cfg, err := Load(filepath.Join(dir, "snomprov.toml"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := phone.ParseMAC("000413000001")
	p, ok := cfg.Phone(m)
	if !ok || p.Model != "snomD785" || len(p.Lines) != 1 || p.Lines[0].IdentityAt(0) != 2 {
		t.Fatalf("CSV phone = %+v %v", p, ok)
	}
	es := cfg.LocateAll([]*field.Error{{Key: "phones[1].lines[0]", Msg: "x"}, {Key: "phones[1].lines[0].password", Msg: "y"}})
	if g := es[0].Error(); g != filepath.Join(dir, "phones.csv")+":2:23: line2_account: x" {
		t.Errorf("line located at %s", g)
	}
	if g := es[1].Error(); g != filepath.Join(dir, "phones.csv")+":2:27: line2_password: y" {
		t.Errorf("line key located at %s", g)
	}
}
