package redact

import "testing"

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://prov:s3cret@host/x", "http://prov:" + Mask + "@host/x"},
		{"https://prov@host/", "https://prov@host/"},
		{"http://host/a@b", "http://host/a@b"},
		{"user@host", "user@host"},
		{"", ""},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSecret(t *testing.T) {
	for _, tc := range []struct{ text, secret, want string }{
		{"password=s3cret user=u", "s3cret", "password=" + Mask + " user=u"},
		{"postgres://u:p%40ss@db/x and p@ss", "p@ss", "postgres://u:" + Mask + "@db/x and " + Mask},
		{"a b c", "", "a b c"},
		{"two s and s", "s", "two " + Mask + " and " + Mask},
		{"sp%20ce or sp+ce", "sp ce", Mask + " or " + Mask},
	} {
		if got := Secret(tc.text, tc.secret); got != tc.want {
			t.Errorf("Secret(%q, %q) = %q, want %q", tc.text, tc.secret, got, tc.want)
		}
	}
}
