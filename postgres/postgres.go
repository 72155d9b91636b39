// Package postgres is natter's history store on PostgreSQL (pgx/v5): schema
// migrations applied at start, idempotent batch inserts for the persister,
// and keyset pages for history and resume.
package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/natter-chat/natter"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key held while migrating, so several
// processes starting at once apply each migration once.
const migrateLock = 0x6e61747465720001

// Store reads and writes messages. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Config says how to reach the database.
type Config struct {
	// URL is a PostgreSQL URL or key=value string, as libpq takes, TLS
	// included: sslmode=verify-full&sslrootcert=ca.pem verifies the
	// server against a CA file and its name.
	URL string
	// Password, when set, is used instead of one in URL, so that the
	// password need not be in a URL that shows in ps.
	Password string
}

// Check parses the URL without connecting: a malformed URL, or a TLS
// file it names that does not exist, is reported at once.
func (c Config) Check() error {
	_, err := c.pool()
	return err
}

func (c Config) pool() (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if c.Password != "" {
		cfg.ConnConfig.Password = c.Password
	}
	return cfg, nil
}

// Target describes the database for logs, without its password:
// "127.0.0.1:5432/natter (TLS)".
func (c Config) Target() string {
	cfg, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return "an unparsable URL"
	}
	cc := cfg.ConnConfig
	sec := "plaintext"
	if cc.TLSConfig != nil {
		sec = "TLS"
		if !cc.TLSConfig.InsecureSkipVerify {
			sec = "TLS, verified"
		}
	}
	return fmt.Sprintf("%s:%d/%s (%s, user %s)", cc.Host, cc.Port, cc.Database, sec, cc.User)
}

// Open connects to the database and applies pending migrations.
func Open(ctx context.Context, c Config) (*Store, error) {
	cfg, err := c.pool()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool for tests and tools.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Insert stores msgs in one transaction, skipping any whose id, or whose
// (room, user, cid), is already stored. It returns how many rows were new.
func (s *Store) Insert(ctx context.Context, msgs []natter.Message) (int64, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	n := len(msgs)
	ids, rooms, users, bodies, regions := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	cids := make([]*string, n)
	ts := make([]int64, n)
	for i, m := range msgs {
		ids[i], rooms[i], users[i], bodies[i], regions[i], ts[i] = m.ID, m.Room, m.User, m.Body, m.Region, m.TS
		if m.CID != "" {
			c := m.CID
			cids[i] = &c
		}
	}
	// Rows of one batch may collide with each other (a retried send in the
	// same batch), so DISTINCT ON keeps the first of each id.
	tag, err := s.pool.Exec(ctx, `
INSERT INTO messages (id, room, sender, cid, body, ts, region)
SELECT DISTINCT ON (id) id, room, sender, cid, body, ts, region
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
     AS t(id, room, sender, cid, body, ts, region)
ORDER BY id
ON CONFLICT DO NOTHING`, ids, rooms, users, cids, bodies, ts, regions)
	if err != nil {
		return 0, fmt.Errorf("postgres: insert %d messages: %w", n, err)
	}
	return tag.RowsAffected(), nil
}

// Page returns up to limit messages of room older than before (all if
// before is ""), oldest first, and whether older ones exist.
func (s *Store) Page(ctx context.Context, room, before string, limit int) ([]natter.Message, bool, error) {
	q := `SELECT id, room, sender, coalesce(cid, ''), body, ts, region FROM messages
WHERE room = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3`
	msgs, err := s.query(ctx, q, room, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: history %s: %w", room, err)
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, nil
}

// After returns up to limit messages of room newer than after, oldest first.
func (s *Store) After(ctx context.Context, room, after string, limit int) ([]natter.Message, error) {
	q := `SELECT id, room, sender, coalesce(cid, ''), body, ts, region FROM messages
WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3`
	msgs, err := s.query(ctx, q, room, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: messages after %s in %s: %w", after, room, err)
	}
	return msgs, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]natter.Message, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (natter.Message, error) {
		var m natter.Message
		err := r.Scan(&m.ID, &m.Room, &m.User, &m.CID, &m.Body, &m.TS, &m.Region)
		return m, err
	})
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction, under an advisory lock.
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrateLock)) //nolint:errcheck // released with the session anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimPrefix(f, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("postgres: migration %s: name must start with a number", name)
		}
		var done bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, v).Scan(&done); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
		if done {
			continue
		}
		sql, _ := migrations.ReadFile(f)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
	}
	return nil
}
