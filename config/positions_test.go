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
		"top":                                 {Line: 2, Col: 1},
		"server":                              {Line: 3, Col: 1},
		"server.interface":                    {Line: 4, Col: 1},
		`server."quoted key"`:                 {Line: 5, Col: 1},
		"server.a":                            {Line: 6, Col: 1},
		"server.a.b":                          {Line: 6, Col: 3},
		"server.a.b.c":                        {Line: 6, Col: 7},
		"phones":                              {Line: 8, Col: 1},
		"phones[0]":                           {Line: 8, Col: 1},
		"phones[0].mac":                       {Line: 9, Col: 1},
		"phones[0].settings":                  {Line: 10, Col: 1},
		"phones[0].settings.user_name":        {Line: 11, Col: 1},
		"phones[0].settings.user_name.1":      {Line: 11, Col: 15},
		"phones[0].settings.user_name.2":      {Line: 11, Col: 26},
		"phones[0].settings.user_name.2.perm": {Line: 11, Col: 47},
		"phones[1]":                           {Line: 12, Col: 1},
		"phones[1].mac":                       {Line: 13, Col: 3},
		"phones[1].lines[0]":                  {Line: 17, Col: 1},
		"phones[1].lines[0].x":                {Line: 18, Col: 1},
		"phones[1].fkeys.0":                   {Line: 20, Col: 1},
		"phones[1].fkeys.dns[0]":              {Line: 22, Col: 3},
		"phones[1].fkeys.dns[1]":              {Line: 23, Col: 3},
		"phones[1].fkeys.lit":                 {Line: 25, Col: 1},
		"phones[1].fkeys.inline.a[1]":         {Line: 27, Col: 20},
		"phones[1].fkeys.inline.b.c":          {Line: 27, Col: 32},
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
	if got := pos.lookup("phones[1].settings.nothing.here"); got != (position{Line: 12, Col: 1}) {
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
