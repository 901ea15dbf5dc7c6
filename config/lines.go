package config

// LineDefaults is [lines]: what a phone's line leaves out. With the PBX's
// host here, a line is one short entry: { account = "101", password = "…" }.
type LineDefaults struct {
	Host     string `toml:"host"`     // user_host: the registrar (PBX host[:port])
	Outbound string `toml:"outbound"` // user_outbound: an outbound proxy, if the PBX needs one
	Perm     string `toml:"perm"`     // perm of the written user_* settings; default provision.default_perm
}

// Line is one SIP account of a phone: one identity, written by the
// provision package as Snom's user_* settings of its idx. Raw settings of
// the same name and idx win over what a line writes.
type Line struct {
	// Identity is the idx of the user_* settings (1-based); default the
	// line's place in the list (the first line is identity 1).
	Identity int    `toml:"identity"`
	Account  string `toml:"account"`   // user_name: the SIP user (extension)
	Password string `toml:"password"`  // user_pass
	Name     string `toml:"name"`      // user_realname: the display name
	AuthUser string `toml:"auth_user"` // user_pname: authentication user, when it is not the account
	Host     string `toml:"host"`      // user_host; default [lines] host
	Outbound string `toml:"outbound"`  // user_outbound; default [lines] outbound
	Mailbox  string `toml:"mailbox"`   // user_mailbox: the voicemail number
}

// IdentityAt is the identity of the line at index i of its list.
func (l Line) IdentityAt(i int) int {
	if l.Identity > 0 {
		return l.Identity
	}
	return i + 1
}
