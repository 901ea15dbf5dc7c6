package provision

import (
	"strconv"

	"github.com/snomprov/snomprov/config"
	"github.com/snomprov/snomprov/internal/field"
)

// A line is written as the user_* settings Snom documents for one
// identity (idx): user_active, user_name, user_pass, user_host,
// user_realname, user_pname, user_outbound and user_mailbox. There is no
// realm setting: the phone answers the realm the registrar's challenge
// names.
const (
	settingActive   = "user_active"
	settingAccount  = "user_name"
	settingPassword = "user_pass"
	settingHost     = "user_host"
	settingRealName = "user_realname"
	settingAuthUser = "user_pname"
	settingOutbound = "user_outbound"
	settingMailbox  = "user_mailbox"
)

// lineSettings is a phone's own settings with its lines written as user_*
// settings underneath: a raw setting of the same name and idx wins.
func (c *Catalog) lineSettings(p *config.Phone) config.Settings {
	if len(p.Lines) == 0 {
		return p.Settings
	}
	d := c.cfg.Lines
	s := make(config.Settings, 8+len(p.Settings))
	add := func(name string, id int, v string) {
		if v == "" {
			return
		}
		st := s[name]
		if st.Indexed == nil {
			st.Indexed = map[int]config.IndexedValue{}
		}
		st.Indexed[id] = config.IndexedValue{Value: v, Perm: d.Perm}
		s[name] = st
	}
	for i, l := range p.Lines {
		id := l.IdentityAt(i)
		add(settingActive, id, "on")
		add(settingAccount, id, l.Account)
		add(settingPassword, id, l.Password)
		add(settingHost, id, or(l.Host, d.Host))
		add(settingRealName, id, l.Name)
		add(settingAuthUser, id, l.AuthUser)
		add(settingOutbound, id, or(l.Outbound, d.Outbound))
		add(settingMailbox, id, l.Mailbox)
	}
	return merge(s, p.Settings)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lines checks a phone's lines: each names an account and a registrar
// (its own host or [lines] host), identities are distinct and within what
// the phone's model has. Without a model, an identity beyond every model
// the phone may be is an error.
func (p *preparer) lines(at string, ph *config.Phone, max int, of string) {
	seen := map[int]int{}
	for i, l := range ph.Lines {
		key := field.Prefix(at, "lines["+strconv.Itoa(i)+"]")
		id := l.IdentityAt(i)
		switch j, dup := seen[id]; {
		case l.Identity < 0:
			p.fail(key+".identity", "must be 1 or more (the idx of the user_* settings)")
		case dup:
			p.fail(key, "identity %d is also lines[%d]; give each line its own identity", id, j)
		case max > 0 && id > max:
			p.fail(key, "identity %d is beyond %s's SIP identities (1-%d); remove the line or give the phone a model with more", id, of, max)
		}
		seen[id] = i
		if l.Account == "" {
			p.fail(key+".account", "a line needs an account (the SIP user, written as user_name)")
		}
		if l.Host == "" && p.c.cfg.Lines.Host == "" {
			p.fail(key+".host", "a line needs a registrar: set host here or in [lines] host = \"pbx.example.com\"")
		}
	}
}

// reachIdentities is the most identities of any model a phone without a
// model may be; 0 when one of them has no known count.
func (p *preparer) reachIdentities() int {
	max := 0
	for _, r := range p.reachable {
		if r.Identities == 0 {
			return 0
		}
		max = maxInt(max, r.Identities)
	}
	return max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// lineDefaults checks [lines].
func (p *preparer) lineDefaults() {
	if perm := p.c.cfg.Lines.Perm; perm != "" && !config.ValidPerm(perm) {
		p.fail("lines.perm", "unknown perm %q; use one of %q", perm, config.Perms)
	}
}
