// Tests for the private PostgreSQL cluster: data kept across restarts, a
// data dir in use, a server left on it, natter killed with -9, and the
// errors a user without PostgreSQL, with a taken port or, as root, with an
// unreachable dir sees.

package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgTestDir is a fresh directory that PostgreSQL can use even when the test
// runs as root and PostgreSQL runs as another user: t.TempDir and its
// parent are 0700, which that user could not traverse.
func pgTestDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dir, "postgres")
}

func startPostgres(t *testing.T, dir string) *Postgres {
	t.Helper()
	p, err := StartPostgres(context.Background(), PostgresConfig{Dir: dir, Fast: true}, testLogger(t))
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	t.Cleanup(func() { mustNotErr(t, "close postgres", p.Close()) })
	return p
}

func pgExec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgCount(t *testing.T, url string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPostgresKeepsDataAcrossRestart(t *testing.T) {
	dir := pgTestDir(t)
	p := startPostgres(t, dir)
	if !strings.HasPrefix(p.URL(), "postgres://natter@127.0.0.1:") || !strings.HasSuffix(p.URL(), "/natter?sslmode=disable") {
		t.Errorf("URL() = %q", p.URL())
	}
	pgExec(t, p.URL(), "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2), (3)")
	for range 2 { // Close is idempotent
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}

	p = startPostgres(t, dir)
	if n := pgCount(t, p.URL()); n != 3 {
		t.Errorf("after restart kept has %d rows, want 3", n)
	}
}

func TestPostgresRefusesDirInUseAndStopsServerLeftOnIt(t *testing.T) {
	dir := pgTestDir(t)
	old := startPostgres(t, dir)
	pgExec(t, old.URL(), "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")

	_, err := StartPostgres(context.Background(), PostgresConfig{Dir: dir, Fast: true}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "in use by another natter process") {
		t.Fatalf("second start on a dir in use: err = %v", err)
	}

	// Drop the lock but leave the postmaster running: what a natter that
	// died without taking its postmaster along leaves behind. The next
	// start must stop that server, not fail and not share it.
	mustNotErr(t, "unlock", old.unlock())
	old.unlock = func() error { return nil }
	p := startPostgres(t, dir)
	select {
	case <-old.exited:
	default:
		t.Error("the old server still runs")
	}
	if n := pgCount(t, p.URL()); n != 1 {
		t.Errorf("kept has %d rows, want 1", n)
	}
}

const (
	helperEnv    = "NATTER_EMBEDDED_TEST_HELPER"
	helperDirEnv = "NATTER_EMBEDDED_TEST_DIR"
)

// postgresHelperMain is the natter process of the kill -9 test: it starts
// PostgreSQL, writes a row, prints the postmaster's pid and waits to die.
func postgresHelperMain() int {
	p, err := StartPostgres(context.Background(), PostgresConfig{Dir: os.Getenv(helperDirEnv), Fast: true}, nil)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.URL())
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)")
		conn.Close(ctx)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("READY", p.proc.Pid)
	select {}
}

func TestPostgresStopsWhenNatterIsKilled(t *testing.T) {
	dir := pgTestDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=postgres", helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said nothing: %v", err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "READY %d", &pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %s", line)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no defer
		t.Fatal(err)
	}
	cmd.Wait()
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if processAlive(pid) {
			return fmt.Errorf("postmaster %d still runs after natter was killed", pid)
		}
		return nil
	})

	p := startPostgres(t, dir)
	if n := pgCount(t, p.URL()); n != 1 {
		t.Errorf("kept has %d rows, want 1", n)
	}
}

func TestPostgresWithoutBinariesSaysWhatToDo(t *testing.T) {
	empty := t.TempDir()
	_, err := StartPostgres(context.Background(), PostgresConfig{Dir: pgTestDir(t), BinDir: empty}, testLogger(t))
	if err == nil {
		t.Fatal("StartPostgres succeeded without binaries")
	}
	want := fmt.Sprintf("postgres: no PostgreSQL server binaries found (looked in %s); install postgresql (apt-get install postgresql) or set DATABASE_URL", empty)
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
}

func TestPostgresReportsTakenPortInOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	p, err := StartPostgres(context.Background(), PostgresConfig{Dir: pgTestDir(t), Port: port, Fast: true}, testLogger(t))
	if err == nil {
		p.Close()
		t.Fatal("StartPostgres succeeded on a taken port")
	}
	var inUse *PortInUseError
	if !errors.As(err, &inUse) || inUse.Service != "postgres" {
		t.Errorf("error = %v, want a PortInUseError", err)
	}
}

func TestPostgresAsRootRefusesDirItsUserCannotReach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	parent := t.TempDir() // 0700, and its parent too
	_, err := StartPostgres(context.Background(), PostgresConfig{Dir: filepath.Join(parent, "pg")}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "postgres: user postgres cannot reach "+filepath.Dir(parent)+" (mode 0700); ") {
		t.Errorf("err = %v", err)
	}
}

func TestPostgresMovesSocketOutOfDeepDirs(t *testing.T) {
	p := &Postgres{sockDir: filepath.Join(t.TempDir(), strings.Repeat("deep/", 25), "run")}
	if err := p.makeSockDir(nil); err != nil {
		t.Fatal(err)
	}
	defer p.removeSockDir()
	if !p.tmpSock || len(p.sockDir)+len("/.s.PGSQL.65535") > 100 {
		t.Errorf("socket dir %s (temporary: %v) is too deep for a unix socket", p.sockDir, p.tmpSock)
	}
}

func TestPostgresRemovesPidFileOfAnUnrelatedProcess(t *testing.T) {
	pgdata := t.TempDir()
	pidFile := filepath.Join(pgdata, "postmaster.pid")
	// This test process is alive and is not a postmaster on pgdata: the
	// pid of a killed postmaster, reused.
	if err := os.WriteFile(pidFile, fmt.Appendf(nil, "%d\n%s\n", os.Getpid(), pgdata), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stopLeftover(pgdata, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid still there: %v", err)
	}
}
