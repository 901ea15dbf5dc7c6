package config

import "testing"

func TestScanPositions(t *testing.T) {
	doc := `# comment [not.a.table]
top = 1
[server]
interface = "eth0"   # trailing [comment]
"quoted key" = 'x'
a.b . c = 2

[[phones]]
mac = "1"
[phones.settings]
user_name = { 1 = "101", 2 = { value = "102", perm = "RW" } }
[[phones]]
  mac = """
multi = "line"
[fake]
"""
[[phones.lines]]
x = 1
[phones.fkeys]
0 = "line"
dns = [
  "10.0.0.1", # first
  "10.0.0.2",
]
lit = '''it's
[also.fake]'''
inline = { a = [1, 2], 'b' = { c = 3 } }
`
	pos := scanPositions(doc)
	want := map[string]position{
		"top":                                 {2, 1},
		"server":                              {3, 1},
		"server.interface":                    {4, 1},
		`server."quoted key"`:                 {5, 1},
		"server.a":                            {6, 1},
		"server.a.b":                          {6, 3},
		"server.a.b.c":                        {6, 7},
		"phones":                              {8, 1},
		"phones[0]":                           {8, 1},
		"phones[0].mac":                       {9, 1},
		"phones[0].settings":                  {10, 1},
		"phones[0].settings.user_name":        {11, 1},
		"phones[0].settings.user_name.1":      {11, 15},
		"phones[0].settings.user_name.2":      {11, 26},
		"phones[0].settings.user_name.2.perm": {11, 47},
		"phones[1]":                           {12, 1},
		"phones[1].mac":                       {13, 3},
		"phones[1].lines[0]":                  {17, 1},
		"phones[1].lines[0].x":                {18, 1},
		"phones[1].fkeys.0":                   {20, 1},
		"phones[1].fkeys.dns[0]":              {22, 3},
		"phones[1].fkeys.dns[1]":              {23, 3},
		"phones[1].fkeys.lit":                 {25, 1},
		"phones[1].fkeys.inline.a[1]":         {27, 20},
		"phones[1].fkeys.inline.b.c":          {27, 32},
	}
	for k, w := range want {
		if got, ok := pos[k]; !ok || got != w {
			t.Errorf("%s: got %v (found %v), want %v", k, got, ok, w)
		}
	}
	for _, k := range []string{"also", "fake", "phones[0].multi", "not"} {
		if _, ok := pos[k]; ok {
			t.Errorf("%s: indexed from inside a string or comment", k)
		}
	}
	if got := pos.lookup("phones[1].settings.nothing.here"); got != (position{12, 1}) {
		t.Errorf("lookup falls back to the nearest ancestor: got %v", got)
	}
}

func TestParentKey(t *testing.T) {
	tests := map[string]string{
		"a":                       "",
		"a.b":                     "a",
		"phones[2]":               "phones",
		"phones[2].mac":           "phones[2]",
		`settings."a.b[1]".x`:     `settings."a.b[1]"`,
		`settings."a.b[1]"`:       "settings",
		`s."q\"uote.d"`:           "s",
		"dhcp.reservations[0].ip": "dhcp.reservations[0]",
	}
	for in, want := range tests {
		if got := parentKey(in); got != want {
			t.Errorf("parentKey(%q) = %q, want %q", in, got, want)
		}
	}
}
