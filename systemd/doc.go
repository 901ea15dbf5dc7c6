// Package systemd holds snomprov's systemd unit, snomprov.service, which
// the .deb installs as /usr/lib/systemd/system/snomprov.service. Its tests
// check the unit with systemd-analyze (verify, and the offline security
// exposure score).
package systemd

import _ "embed"

// Unit is the text of snomprov.service.
//
//go:embed snomprov.service
var Unit string
