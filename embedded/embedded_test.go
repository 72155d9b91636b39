// This file holds what the embedded tests share: the leak check, a
// checkFor-style wait, and a test logger.

package embedded

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The kill -9 test runs this binary again as the natter process.
	if os.Getenv(helperEnv) != "" {
		os.Exit(postgresHelperMain())
	}
	goleak.VerifyTestMain(m,
		// sarama meters its clients with go-metrics, which starts one
		// package-wide ticker goroutine on first use and never stops it.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}

// checkFor calls f every interval until it returns nil, and fails the test
// with f's last error if that has not happened within timeout.
func checkFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// testLogger logs through t, so a test's log lines show only when it fails
// or runs with -v. Lines that come after the test has ended (kfake's
// connection goroutines end a moment after its Close) are dropped, since
// t.Log would panic then.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { // registered first, so it runs after every Close
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// mustNotErr is for deferred and cleanup calls, where a test cannot return.
func mustNotErr(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Error(fmt.Errorf("%s: %w", what, err))
	}
}
