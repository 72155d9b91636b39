// This file runs a private PostgreSQL cluster for the one-process default:
// natter finds the machine's PostgreSQL server binaries, creates a cluster
// in its data dir on first start, and runs the postmaster as its own child
// process, stopping it on Close or when natter dies.

package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// pgSuperuser owns the private cluster and the natter database. The
	// cluster trusts every local connection, so it has no password: the
	// postmaster listens only on 127.0.0.1 and a socket inside Dir.
	pgSuperuser = "natter"
	pgDatabase  = "natter"
	// pgStartTimeout bounds the wait for the postmaster to be ready. Crash
	// recovery after a kill -9 is included, so it is generous.
	pgStartTimeout = 2 * time.Minute
	// pgStopTimeout bounds a fast shutdown before Close falls back to an
	// immediate one, which is crash-safe but makes the next start recover.
	pgStopTimeout = 30 * time.Second
)

// PostgresConfig configures StartPostgres.
type PostgresConfig struct {
	// Dir holds the cluster, e.g. "./natter-data/postgres": the data
	// directory is Dir/data and the unix socket is in Dir/run. It is created
	// if missing, and a restart on the same Dir keeps the data.
	Dir string
	// BinDir holds the postgres and initdb binaries. Empty means search
	// $NATTER_PG_BIN, `pg_config --bindir`, /usr/lib/postgresql/*/bin
	// (newest version first) and PATH, in that order.
	BinDir string
	// Port is the 127.0.0.1 port to listen on. 0 picks a free port at each
	// start; URL says which.
	Port int
	// User is the OS user PostgreSQL runs as when natter runs as root,
	// because PostgreSQL refuses to run as root. Empty means "postgres".
	// Ignored when natter is not root: PostgreSQL then runs as natter's user.
	User string
	// Fast turns off fsync and full-page writes: much faster, but a machine
	// crash can corrupt the cluster. For tests only.
	Fast bool
}

// Postgres is a running private PostgreSQL cluster.
//
// The postmaster is natter's child process. It gets SIGINT (fast shutdown)
// when natter dies, even by kill -9, so it does not outlive natter on Linux.
// natter also holds a lock on Dir while it runs, which the kernel drops when
// natter dies. So a postmaster found running on Dir when StartPostgres holds
// the lock has lost its natter (say, an older one killed before Pdeathsig
// could fire): StartPostgres stops it and starts its own, rather than adopt
// it, so that there is one owner and the port is the configured one.
type Postgres struct {
	port    int
	proc    *os.Process
	exited  chan struct{} // closed once the postmaster has exited
	waitErr error         // the postmaster's exit status; read after exited
	stopped chan struct{} // closed when Close begins, so the exit is expected
	sockDir string
	tmpSock bool         // sockDir is ours to remove
	unlock  func() error // releases the lock on Dir
	logw    *pgLogWriter
	log     *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

// StartPostgres starts the private cluster in cfg.Dir, creating it on the
// first start, and returns once the natter database accepts connections.
// ctx bounds the start (and at most pgStartTimeout); the postmaster itself
// runs until Close. Its log lines go to log (nil discards them).
func StartPostgres(ctx context.Context, cfg PostgresConfig, log *slog.Logger) (*Postgres, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("component", "postgres"))
	if cfg.Dir == "" {
		return nil, errors.New("postgres: no data dir given")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("postgres: data dir: %w", err)
	}
	bin, err := findBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	as, err := runAsFor(cfg.User)
	if err != nil {
		return nil, err
	}
	// 0755, not 0700: when root creates the missing parents they must stay
	// traversable for the user PostgreSQL runs as. The data dir inside is
	// 0700, as PostgreSQL demands.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: create data dir: %w", err)
	}
	if err := as.prepare(dir); err != nil {
		return nil, err
	}
	unlock, err := lockDir("postgres", dir)
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		port:    cfg.Port,
		exited:  make(chan struct{}),
		stopped: make(chan struct{}),
		sockDir: filepath.Join(dir, "run"),
		unlock:  unlock,
		logw:    &pgLogWriter{log: log},
		log:     log,
	}
	if err := p.start(ctx, cfg, bin, dir, as); err != nil {
		p.Close()
		return nil, err
	}
	log.Info("postgres started", slog.String("dir", dir), slog.Int("port", p.port), slog.String("bin", bin))
	return p, nil
}

// URL is the connection URL of the natter database, e.g.
// "postgres://natter@127.0.0.1:5432/natter?sslmode=disable".
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgSuperuser, p.port, pgDatabase)
}

// Close stops the postmaster with a fast shutdown (open sessions are ended,
// their transactions rolled back, everything committed is kept) and waits
// until it has exited. It is safe to call more than once.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		close(p.stopped)
		p.closeErr = errors.Join(p.stop(), p.unlock())
		p.removeSockDir()
		if p.proc != nil {
			p.log.Info("postgres stopped")
		}
	})
	return p.closeErr
}

// start gets the cluster in dir running: it stops a leftover postmaster,
// runs initdb on the first start, starts the postmaster and waits for it.
func (p *Postgres) start(ctx context.Context, cfg PostgresConfig, bin, dir string, as *osUser) error {
	pgdata := filepath.Join(dir, "data")
	if err := stopLeftover(pgdata, p.log); err != nil {
		return err
	}
	if p.port == 0 {
		var err error
		if p.port, err = freePort("127.0.0.1"); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	} else if err := checkPortFree("postgres", "127.0.0.1", p.port,
		"pass --embedded-postgres-port 0 to pick a free port, or stop the other process"); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(pgdata, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initdb(ctx, bin, dir, cfg.Fast, as, p.log); err != nil {
			return err
		}
	}
	if err := p.makeSockDir(as); err != nil {
		return err
	}

	args := []string{"-D", pgdata, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + p.sockDir,
		// Our slog handler adds the time; keep the lines plain.
		"-c", "log_line_prefix=",
		"-c", "logging_collector=off",
	}
	if cfg.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = p.logw, p.logw
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Fast shutdown when natter dies: SIGTERM would be a smart shutdown,
		// which waits for every client, and an idle psql would keep it up.
		Pdeathsig: syscall.SIGINT,
		// Its own process group, so a Ctrl-C in natter's terminal reaches
		// natter only, and natter stops the database after its own writers.
		Setpgid: true,
	}
	as.apply(cmd)
	if err := p.spawn(cmd); err != nil {
		return fmt.Errorf("postgres: start %s: %w", cmd.Path, err)
	}
	return p.waitReady(ctx, pgdata)
}

// spawn starts cmd and a goroutine that waits for it. The goroutine keeps
// its OS thread for the child's lifetime because Pdeathsig fires when the
// thread that forked the child exits, not the process: if Go retired that
// thread, PostgreSQL would be told to shut down while natter is alive.
func (p *Postgres) spawn(cmd *exec.Cmd) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.exited)
			return
		}
		p.proc = cmd.Process
		started <- nil
		p.waitErr = cmd.Wait()
		select {
		case <-p.stopped:
		default:
			p.log.Error("postgres exited unexpectedly", slog.Any("err", p.waitErr))
		}
		close(p.exited)
	}()
	return <-started
}

// waitReady waits until the postmaster says it is ready, the way pg_ctl -w
// does, by reading the status line of postmaster.pid: polling with client
// connections instead would log a FATAL line for each try while PostgreSQL
// starts up. Then it creates the natter database if it is missing.
func (p *Postgres) waitReady(ctx context.Context, pgdata string) error {
	ctx, cancel := context.WithTimeout(ctx, pgStartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !postmasterReady(pgdata, p.proc.Pid) {
		select {
		case <-p.exited:
			return fmt.Errorf("postgres: server exited while starting: %s", p.logw.lastProblem())
		case <-ctx.Done():
			return fmt.Errorf("postgres: server not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}

	adminURL := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", pgSuperuser, p.port)
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres: connect to new server: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", pgDatabase).Scan(&exists)
	if err != nil {
		return fmt.Errorf("postgres: look for database %s: %w", pgDatabase, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgDatabase); err != nil {
			return fmt.Errorf("postgres: create database %s: %w", pgDatabase, err)
		}
		p.log.Info("postgres database created", slog.String("database", pgDatabase))
	}
	return nil
}

// stop asks for a fast shutdown and waits; if that takes too long it asks
// for an immediate one, which loses nothing committed but makes the next
// start run crash recovery.
func (p *Postgres) stop() error {
	if p.proc == nil {
		return nil
	}
	p.logw.stopping.Store(true)
	_ = p.proc.Signal(syscall.SIGINT) // fails only if it already exited
	select {
	case <-p.exited:
		return nil
	case <-time.After(pgStopTimeout):
	}
	_ = p.proc.Signal(syscall.SIGQUIT)
	<-p.exited
	return fmt.Errorf("postgres: fast shutdown took over %s; used immediate shutdown (%v)", pgStopTimeout, p.waitErr)
}

// makeSockDir creates the unix socket dir: Dir/run, or a short directory
// under os.TempDir when Dir is so deep that the socket path would pass the
// kernel's limit of about 100 bytes.
func (p *Postgres) makeSockDir(as *osUser) error {
	if len(p.sockDir)+len("/.s.PGSQL.65535.lock") > 100 {
		tmp, err := os.MkdirTemp("", "natter-pg-")
		if err != nil {
			return fmt.Errorf("postgres: socket dir: %w", err)
		}
		p.sockDir, p.tmpSock = tmp, true
	} else if err := os.MkdirAll(p.sockDir, 0o700); err != nil {
		return fmt.Errorf("postgres: socket dir: %w", err)
	}
	if err := as.chown(p.sockDir); err != nil {
		p.removeSockDir()
		return err
	}
	return nil
}

func (p *Postgres) removeSockDir() {
	if p.tmpSock {
		os.RemoveAll(p.sockDir)
	}
}
