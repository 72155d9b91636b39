// This file holds the process side of the private PostgreSQL cluster:
// finding the server binaries, running them as another user when natter is
// root, initdb, a postmaster left over from an earlier run, and the bridge
// from PostgreSQL's log lines to slog.

package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// findBinDir returns a directory that holds both postgres and initdb: dir if
// given, otherwise the first found in $NATTER_PG_BIN, `pg_config --bindir`,
// /usr/lib/postgresql/*/bin (newest version first) and PATH.
func findBinDir(dir string) (string, error) {
	var looked []string
	found := func(d string) bool {
		looked = append(looked, d)
		return isExecutable(filepath.Join(d, "postgres")) && isExecutable(filepath.Join(d, "initdb"))
	}
	if dir != "" {
		if found(dir) {
			return dir, nil
		}
		return "", errNoBinaries(looked)
	}
	var candidates []string
	if env := os.Getenv("NATTER_PG_BIN"); env != "" {
		candidates = append(candidates, env)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int { return pgDirVersion(b) - pgDirVersion(a) })
	candidates = append(candidates, versions...)
	if p, err := exec.LookPath("postgres"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	} else {
		looked = append(looked, "PATH")
	}
	for _, d := range candidates {
		if found(d) {
			return d, nil
		}
	}
	return "", errNoBinaries(looked)
}

func errNoBinaries(looked []string) error {
	return fmt.Errorf("postgres: no PostgreSQL server binaries found (looked in %s); install postgresql (apt-get install postgresql) or set DATABASE_URL",
		strings.Join(looked, ", "))
}

// pgDirVersion is the 16 of /usr/lib/postgresql/16/bin, so that 16 sorts
// above 9.6 (-1 for names that are not numbers).
func pgDirVersion(binDir string) int {
	v, err := strconv.Atoi(strings.SplitN(filepath.Base(filepath.Dir(binDir)), ".", 2)[0])
	if err != nil {
		return -1
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// osUser is the user PostgreSQL runs as when natter is root. A nil *osUser
// means "natter's own user" and all its methods do nothing.
type osUser struct {
	name     string
	uid, gid uint32
	gids     map[uint32]bool // primary and supplementary groups
}

// runAsFor returns the user to run PostgreSQL as: nil unless natter is root,
// since PostgreSQL refuses to run as root.
func runAsFor(name string) (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name = orDefault(name, "postgres")
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("postgres: natter runs as root, PostgreSQL refuses to, and user %q to run it as is missing (%v); run natter as a normal user, or set DATABASE_URL", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres: user %s: %w", name, err)
	}
	ou := &osUser{name: name, uid: uint32(uid), gid: uint32(gid), gids: map[uint32]bool{uint32(gid): true}}
	groups, _ := u.GroupIds()
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			ou.gids[uint32(n)] = true
		}
	}
	return ou, nil
}

// prepare makes dir usable by u: every ancestor must let u through, which
// chown cannot fix without opening up someone's home, and dir itself is
// handed to u.
func (u *osUser) prepare(dir string) error {
	if u == nil {
		return nil
	}
	var ancestors []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		ancestors = append(ancestors, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	for _, p := range slices.Backward(ancestors) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if !u.canSearch(fi) {
			return fmt.Errorf("postgres: user %s cannot reach %s (mode %04o); run natter as a normal user, set DATABASE_URL, or use --data-dir under a reachable path",
				u.name, p, fi.Mode().Perm())
		}
	}
	return u.chown(dir)
}

func (u *osUser) canSearch(fi fs.FileInfo) bool {
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return perm&0o100 != 0
	case u.gids[st.Gid]:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// chown hands the tree at dir to u, touching only what is not u's yet.
func (u *osUser) chown(dir string) error {
	if u == nil {
		return nil
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid == u.uid && st.Gid == u.gid {
			return nil
		}
		return os.Lchown(path, int(u.uid), int(u.gid))
	})
	if err != nil {
		return fmt.Errorf("postgres: give %s to user %s: %w", dir, u.name, err)
	}
	return nil
}

// apply makes cmd run as u.
func (u *osUser) apply(cmd *exec.Cmd) {
	if u == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
}

// initdb creates the cluster in dir/data. It runs in dir/data.initdb and
// renames that when done, so a start that was killed halfway leaves no
// half-made cluster for the next start to trip over.
func initdb(ctx context.Context, bin, dir string, fast bool, as *osUser, log *slog.Logger) error {
	tmp := filepath.Join(dir, "data.initdb")
	var out []byte
	var err error
	// C.UTF-8 sorts like C but knows the case of every letter; older
	// systems lack it, and plain C is fine for natter.
	for _, locale := range []string{"C.UTF-8", "C"} {
		if err = os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("postgres: remove unfinished %s: %w", tmp, err)
		}
		args := []string{"-D", tmp, "-A", "trust", "-U", pgSuperuser, "-E", "UTF8", "--locale=" + locale}
		if fast {
			args = append(args, "--no-sync")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
		cmd.Dir = dir
		as.apply(cmd)
		if out, err = cmd.CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: initdb: %w: %s", err, lastLines(out, 3))
	}
	log.Debug("postgres initdb done", slog.String("output", string(out)))
	if err := os.Rename(tmp, filepath.Join(dir, "data")); err != nil {
		return fmt.Errorf("postgres: initdb: %w", err)
	}
	log.Info("postgres cluster created", slog.String("dir", dir))
	return nil
}

// stopLeftover stops a postmaster still running on pgdata. The caller holds
// the lock on the data dir, so that postmaster's natter is gone: it died in
// a way Pdeathsig did not cover (an older natter, another OS, a server
// started by hand). A postmaster.pid whose process is gone is left for
// PostgreSQL, which replaces it; one whose pid now belongs to an unrelated
// process is removed, because PostgreSQL would refuse to start.
func stopLeftover(pgdata string, log *slog.Logger) error {
	pidFile := filepath.Join(pgdata, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil || pid <= 0 || !processAlive(pid) {
		return nil
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !slices.Contains(strings.Split(string(cmdline), "\x00"), pgdata) {
		log.Warn("postgres removing stale postmaster.pid", slog.Int("pid", pid))
		return os.Remove(pidFile)
	}
	log.Warn("postgres stopping a server left running on its data dir", slog.Int("pid", pid))
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("postgres: stop leftover server (pid %d) on %s: %w", pid, pgdata, err)
	}
	// It is not our child, so we cannot wait for it: poll until it is gone.
	// A zombie counts as gone, since its parent may never reap it.
	for deadline := time.Now().Add(pgStopTimeout); processAlive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: leftover server (pid %d) on %s did not stop; stop it by hand", pid, pgdata)
		}
	}
	return nil
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')') // the command name may hold spaces
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// postmasterReady reports whether postmaster.pid says the postmaster with
// this pid accepts connections (line 1 is the pid, line 8 the status).
func postmasterReady(pgdata string, pid int) bool {
	data, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	return len(lines) >= 8 && strings.TrimSpace(lines[0]) == strconv.Itoa(pid) && strings.TrimSpace(lines[7]) == "ready"
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// pgLogWriter turns the postmaster's stderr into slog records, one per line,
// and remembers the last problem so a failed start can say why.
type pgLogWriter struct {
	log *slog.Logger
	// stopping is set when natter stops the server. Sessions it ends then
	// log FATAL lines that are no news, so only PANIC stays loud.
	stopping atomic.Bool

	mu      sync.Mutex
	partial []byte
	problem string
}

func (w *pgLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.logLine(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}

// logLine maps PostgreSQL's severities to slog levels. FATAL ends one
// session (often a client's mistake) and ERROR one statement, which the
// client already hears about; only PANIC is the server failing.
func (w *pgLogWriter) logLine(line string) {
	level := slog.LevelDebug
	switch sev, _, _ := strings.Cut(line, ":"); sev {
	case "PANIC":
		level = slog.LevelError
	case "FATAL", "WARNING":
		level = slog.LevelWarn
	case "ERROR":
		level = slog.LevelInfo
	}
	if w.stopping.Load() && level < slog.LevelError {
		level = slog.LevelDebug
	}
	if level >= slog.LevelWarn {
		w.problem = line
	}
	w.log.Log(context.Background(), level, line)
}

func (w *pgLogWriter) lastProblem() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.problem == "" {
		return "no error logged"
	}
	return w.problem
}
