package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/snomprov/snomprov/internal/redact"
	"github.com/snomprov/snomprov/inventory"
	"github.com/snomprov/snomprov/phone"
)

// migrations are the schema's versions, in order: version N is
// migrations[N-1]. Append, never edit: a database records the versions it
// has and gets only the ones after.
var migrations = []string{
	// 1: phones, their last result per step, and every event.
	`CREATE TABLE snomprov_phones (
		site            text        NOT NULL,
		mac             text        NOT NULL,
		model           text        NOT NULL DEFAULT '',
		firmware        text        NOT NULL DEFAULT '',
		hostname        text        NOT NULL DEFAULT '',
		ip              text        NOT NULL DEFAULT '',
		firmware_target text        NOT NULL DEFAULT '',
		first_seen      timestamptz NOT NULL,
		last_seen       timestamptz NOT NULL,
		PRIMARY KEY (site, mac)
	);
	CREATE INDEX snomprov_phones_mac ON snomprov_phones (mac);
	CREATE TABLE snomprov_steps (
		site   text        NOT NULL,
		mac    text        NOT NULL,
		step   text        NOT NULL,
		time   timestamptz NOT NULL,
		ok     boolean     NOT NULL,
		detail text        NOT NULL,
		PRIMARY KEY (site, mac, step)
	);
	CREATE TABLE snomprov_events (
		site      text        NOT NULL,
		event_key text        NOT NULL,
		seq       bigint      NOT NULL,
		mac       text        NOT NULL,
		time      timestamptz NOT NULL,
		step      text        NOT NULL,
		kind      text        NOT NULL,
		ok        boolean     NOT NULL,
		detail    text        NOT NULL,
		ip        text        NOT NULL,
		PRIMARY KEY (site, event_key)
	);
	CREATE INDEX snomprov_events_phone ON snomprov_events (site, mac, time);`,
	// 2: the key columns compare as bytes. Under a database's default
	// locale (en_US.UTF-8, de_DE.UTF-8: what pg_createcluster gives on
	// most systems) every index comparison of a MAC or an event key went
	// through the C library's collation, which doubled the database's CPU
	// per event. The tables are not rewritten; their indexes are rebuilt
	// once; their statistics are taken again. The locks are taken first, in
	// the order store writes the tables, so that a running appliance's
	// send waits for the migration instead of deadlocking with it.
	`LOCK TABLE snomprov_events, snomprov_phones, snomprov_steps IN ACCESS EXCLUSIVE MODE;
	ALTER TABLE snomprov_phones
		ALTER COLUMN site TYPE text COLLATE "C",
		ALTER COLUMN mac  TYPE text COLLATE "C";
	ALTER TABLE snomprov_steps
		ALTER COLUMN site TYPE text COLLATE "C",
		ALTER COLUMN mac  TYPE text COLLATE "C",
		ALTER COLUMN step TYPE text COLLATE "C";
	ALTER TABLE snomprov_events
		ALTER COLUMN site      TYPE text COLLATE "C",
		ALTER COLUMN event_key TYPE text COLLATE "C",
		ALTER COLUMN mac       TYPE text COLLATE "C";
	ANALYZE snomprov_phones, snomprov_steps, snomprov_events;`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// migrateLock is the advisory lock key that serialises migrations of
// appliances starting at once against one database.
const migrateLock = 0x736e6f6d70726f76 // "snomprov"

// ErrSchemaNewer is returned when the database was migrated by a newer
// snomprov than this one.
var ErrSchemaNewer = errors.New("the database schema is newer than this snomprov")

// Migrate brings the schema to SchemaVersion, in one transaction under an
// advisory lock, recording each version applied.
func Migrate(ctx context.Context, db beginner) error { return migrateTo(ctx, db, len(migrations)) }

type beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// migrateTo brings the schema to version to (a test takes a database to
// where an older snomprov left it).
func migrateTo(ctx context.Context, db beginner, to int) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// A migration waits at most this long for a table another session
	// holds (a dump, a long report) rather than stall every appliance's
	// reads and writes behind its lock; Run tries again.
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS snomprov_schema (
		version    integer     PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var cur int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM snomprov_schema`).Scan(&cur); err != nil {
		return err
	}
	if cur > len(migrations) {
		return fmt.Errorf("%w: version %d, this one knows up to %d: upgrade snomprov", ErrSchemaNewer, cur, len(migrations))
	}
	for v := cur + 1; v <= to; v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("schema version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO snomprov_schema (version) VALUES ($1)`, v); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// store writes recs in one transaction: the events (a key already stored
// is skipped), and the phones and steps they update (newer wins, so a
// replay changes nothing).
func (s *Store) store(ctx context.Context, recs []record) error {
	n := len(recs) // the events' columns, sized once
	eSite, eKey, eMAC, eStep := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	eKind, eDetail, eIP := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	eSeq, eTime, eOK := make([]int64, 0, n), make([]time.Time, 0, n), make([]bool, 0, n)
	type phoneKey struct {
		site string
		mac  phone.MAC
	}
	type phoneRow struct {
		model, firmware, hostname, ip, target string
		first, last                           time.Time
	}
	type stepKey struct {
		phoneKey
		step inventory.Step
	}
	phones := map[phoneKey]*phoneRow{}
	steps := map[stepKey]inventory.Event{}
	for i := range recs {
		r := &recs[i]
		o := r.obs
		pk := phoneKey{r.Site, o.MAC}
		p := phones[pk]
		if p == nil {
			p = &phoneRow{first: o.Event.Time}
			phones[pk] = p
		}
		p.first = minTime(p.first, o.Event.Time)
		// An installer's action is not the phone being seen (as in
		// inventory.Store.Record).
		if o.Event.Step != inventory.StepAction {
			p.last = maxTime(p.last, o.Event.Time)
		}
		setIf(&p.model, o.Model)
		setIf(&p.firmware, o.Firmware)
		setIf(&p.hostname, o.Hostname)
		setIf(&p.target, o.FirmwareTarget)
		if o.IP.IsValid() {
			p.ip = o.IP.String()
		}
		if o.Event.Step == "" {
			continue
		}
		sk := stepKey{pk, o.Event.Step}
		if cur, ok := steps[sk]; !ok || !o.Event.Time.Before(cur.Time) {
			steps[sk] = o.Event
		}
		seq, _ := strconv.ParseInt(r.Key[strings.LastIndexByte(r.Key, '-')+1:], 10, 64)
		eSite, eKey, eSeq, eMAC = append(eSite, r.Site), append(eKey, r.Key), append(eSeq, seq), append(eMAC, o.MAC.String())
		eTime, eStep, eKind = append(eTime, o.Event.Time), append(eStep, string(o.Event.Step)), append(eKind, string(o.Event.Kind))
		eOK, eDetail, eIP = append(eOK, o.Event.OK), append(eDetail, o.Event.Detail), append(eIP, o.Event.IP)
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if len(eKey) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO snomprov_events (site, event_key, seq, mac, time, step, kind, ok, detail, ip)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::boolean[], $9::text[], $10::text[])
			ON CONFLICT (site, event_key) DO NOTHING`,
			eSite, eKey, eSeq, eMAC, eTime, eStep, eKind, eOK, eDetail, eIP); err != nil {
			return fmt.Errorf("storing events: %w", err)
		}
	}
	var pSite, pMAC, pModel, pFirmware, pHostname, pIP, pTarget []string
	var pFirst, pLast []time.Time
	for k, p := range phones {
		pSite, pMAC = append(pSite, k.site), append(pMAC, k.mac.String())
		pModel, pFirmware, pHostname = append(pModel, p.model), append(pFirmware, p.firmware), append(pHostname, p.hostname)
		pIP, pTarget, pFirst, pLast = append(pIP, p.ip), append(pTarget, p.target), append(pFirst, p.first), append(pLast, p.last)
	}
	// An identity field is taken from the batch when it says one and is
	// not older than what is stored.
	if _, err := tx.Exec(ctx, `INSERT INTO snomprov_phones AS p (site, mac, model, firmware, hostname, ip, firmware_target, first_seen, last_seen)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
		ON CONFLICT (site, mac) DO UPDATE SET
			model           = CASE WHEN excluded.model <> '' AND excluded.last_seen >= p.last_seen THEN excluded.model ELSE p.model END,
			firmware        = CASE WHEN excluded.firmware <> '' AND excluded.last_seen >= p.last_seen THEN excluded.firmware ELSE p.firmware END,
			hostname        = CASE WHEN excluded.hostname <> '' AND excluded.last_seen >= p.last_seen THEN excluded.hostname ELSE p.hostname END,
			ip              = CASE WHEN excluded.ip <> '' AND excluded.last_seen >= p.last_seen THEN excluded.ip ELSE p.ip END,
			firmware_target = CASE WHEN excluded.firmware_target <> '' AND excluded.last_seen >= p.last_seen THEN excluded.firmware_target ELSE p.firmware_target END,
			first_seen      = LEAST(p.first_seen, excluded.first_seen),
			last_seen       = GREATEST(p.last_seen, excluded.last_seen)`,
		pSite, pMAC, pModel, pFirmware, pHostname, pIP, pTarget, pFirst, pLast); err != nil {
		return fmt.Errorf("storing phones: %w", err)
	}
	if len(steps) > 0 {
		var sSite, sMAC, sStep, sDetail []string
		var sTime []time.Time
		var sOK []bool
		for k, e := range steps {
			sSite, sMAC, sStep = append(sSite, k.site), append(sMAC, k.mac.String()), append(sStep, string(k.step))
			sTime, sOK, sDetail = append(sTime, e.Time), append(sOK, e.OK), append(sDetail, e.Detail)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO snomprov_steps AS s (site, mac, step, time, ok, detail)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::boolean[], $6::text[])
			ON CONFLICT (site, mac, step) DO UPDATE SET time = excluded.time, ok = excluded.ok, detail = excluded.detail
			WHERE excluded.time >= s.time`,
			sSite, sMAC, sStep, sTime, sOK, sDetail); err != nil {
			return fmt.Errorf("storing steps: %w", err)
		}
	}
	if s.crash != nil {
		if err := s.crash("before-commit", len(recs)); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Filter selects phones; zero fields select all.
type Filter struct {
	Site string
	MAC  phone.MAC
}

// Querier is what Query reads through: a *pgxpool.Pool, a *pgx.Conn or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Query reads the phones f selects with their newest maxEvents events,
// sorted by MAC then site. An event kind this build does not know (written
// by a newer appliance) is shown as it is.
func Query(ctx context.Context, db Querier, f Filter, maxEvents int) ([]inventory.Phone, error) {
	list, err := query(ctx, db, f, maxEvents, nil)
	if _, inTx := db.(pgx.Tx); stalePlan(err) && !inTx { // a transaction is aborted by then
		// Another appliance migrated the schema since this connection
		// prepared its statements: each of them fails once (pgx then
		// forgets it), so this read goes without them.
		list, err = query(ctx, db, f, maxEvents, []any{pgx.QueryExecModeDescribeExec})
	}
	return list, err
}

func stalePlan(err error) bool {
	var pe *pgconn.PgError
	// By where the server raised it: the message is translated
	// (lc_messages), the routine's name is not.
	return errors.As(err, &pe) && pe.Code == "0A000" && pe.Routine == "RevalidateCachedQuery"
}

// query is Query, its statements run with opts (pgx's, before the
// arguments) when there are any.
func query(ctx context.Context, db Querier, f Filter, maxEvents int, opts []any) ([]inventory.Phone, error) {
	mac := ""
	if !f.MAC.IsZero() {
		mac = f.MAC.String()
	}
	const where = `($1 = '' OR site = $1) AND ($2 = '' OR mac = $2)`
	type key struct{ site, mac string }
	byKey := map[key]*inventory.Phone{}
	var out []*inventory.Phone

	rows, err := db.Query(ctx, `SELECT site, mac, model, firmware, hostname, ip, firmware_target, first_seen, last_seen
		FROM snomprov_phones WHERE `+where, append(opts, f.Site, mac)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p inventory.Phone
		var m string
		if err := rows.Scan(&p.Site, &m, &p.Model, &p.Firmware, &p.Hostname, &p.IP, &p.FirmwareTarget, &p.FirstSeen, &p.LastSeen); err != nil {
			rows.Close()
			return nil, err
		}
		if p.MAC, err = phone.ParseMAC(m); err != nil {
			continue
		}
		p.Steps = map[inventory.Step]inventory.StepResult{}
		p.Events = []inventory.Event{}
		byKey[key{p.Site, m}] = &p
		out = append(out, &p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.Query(ctx, `SELECT site, mac, step, time, ok, detail FROM snomprov_steps WHERE `+where, append(opts, f.Site, mac)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var site, m, step string
		var r inventory.StepResult
		if err := rows.Scan(&site, &m, &step, &r.Time, &r.OK, &r.Detail); err != nil {
			rows.Close()
			return nil, err
		}
		if p := byKey[key{site, m}]; p != nil {
			p.Steps[inventory.Step(step)] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = db.Query(ctx, `SELECT site, mac, time, step, kind, ok, detail, ip FROM (
			SELECT *, row_number() OVER (PARTITION BY site, mac ORDER BY time DESC, seq DESC) AS rn
			FROM snomprov_events WHERE `+where+`) e
		WHERE rn <= $3 ORDER BY site, mac, time, seq`, append(opts, f.Site, mac, maxEvents)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var site, m, step, kind string
		var e inventory.Event
		if err := rows.Scan(&site, &m, &e.Time, &step, &kind, &e.OK, &e.Detail, &e.IP); err != nil {
			rows.Close()
			return nil, err
		}
		e.Step, e.Kind = inventory.Step(step), inventory.Kind(kind)
		if p := byKey[key{site, m}]; p != nil {
			p.Events = append(p.Events, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].MAC.String(), out[j].MAC.String()); c != 0 {
			return c < 0
		}
		return out[i].Site < out[j].Site
	})
	list := make([]inventory.Phone, len(out))
	for i, p := range out {
		list[i] = *p
	}
	return list, nil
}

// MaskURL hides the password of the connection string connString wherever
// it appears in text (redact.Secret), for logs and error messages.
func MaskURL(text, connString string) string {
	cfg, err := pgconn.ParseConfig(connString)
	pw := ""
	if err == nil {
		pw = cfg.Password
	} else if u, uerr := url.Parse(connString); uerr == nil && u.User != nil {
		pw, _ = u.User.Password()
	}
	return redact.Secret(text, pw)
}
