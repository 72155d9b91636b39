// Package embedded runs natter's three dependencies in or beside the natter
// process, so that "natter" with no flags is a complete chat server:
//
//   - StartNATS runs a NATS server in-process (nats.go). Gateways talk to
//     it through in-memory pipes; given a cluster name and routes, several
//     natter processes form one NATS cluster.
//   - StartKafka runs a Kafka-protocol broker in-process (kafka.go), backed
//     by franz-go's kfake, with its log and committed offsets in a data dir.
//   - StartPostgres runs a private PostgreSQL cluster (postgres.go) from the
//     machine's own server binaries, as a child process owned by natter.
//
// Each returns a handle with an idempotent Close that waits until the service
// has stopped. These are stand-ins for a single machine: for anything larger,
// point natter at real NATS, Kafka and PostgreSQL instead.
//
// A port that is already taken is reported as a *PortInUseError, whose text
// is one line that says what to do.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// PortInUseError says that a service could not listen because another
// process holds its address.
type PortInUseError struct {
	Service string // "nats", "kafka" or "postgres"
	Addr    string // host:port
	Hint    string // what the user can do about it
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("%s: %s is in use; %s", e.Service, e.Addr, e.Hint)
}

// listenError turns a failed listen into a *PortInUseError when that is
// what it was, and into a wrapped error otherwise.
func listenError(service, addr, hint string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &PortInUseError{Service: service, Addr: addr, Hint: hint}
	}
	return fmt.Errorf("%s: listen on %s: %w", service, addr, err)
}

// checkPortFree tries to listen on host:port so that a taken port is reported
// at once and clearly, rather than by a server that fails later in its own
// words. Ports <= 0 are chosen by the server and are not checked. Another
// process could still take the port in the instant between this check and
// the server's listen; the server then fails with its own error.
func checkPortFree(service, host string, port int, hint string) error {
	if port <= 0 {
		return nil
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError(service, addr, hint, err)
	}
	return ln.Close()
}

// freePort asks the kernel for a free port on host. The port is free when
// we return, and is only very unlikely to be taken before it is used.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lockDir takes an exclusive lock on dir for service, so that two natter
// processes never run one service on one data dir. The kernel drops the
// lock when the process dies, so a kill -9 leaves no stale lock behind, and
// the file is opened close-on-exec, so child processes do not hold it.
func lockDir(service, dir string) (unlock func() error, err error) {
	path := filepath.Join(dir, "natter-"+service+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%s: open lock file: %w", service, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: data dir %s is in use by another natter process; stop it or use another data dir", service, dir)
		}
		return nil, fmt.Errorf("%s: lock data dir %s: %w", service, dir, err)
	}
	return f.Close, nil // closing the file releases the lock
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
