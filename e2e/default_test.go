// The one-process default: embedded broker and private PostgreSQL, and
// what survives a restart.

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// reachableTempDir returns a temporary directory the postgres user can
// reach when the tests run as root (t.TempDir is private to its owner).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEmbeddedDefaultRestartKeepsHistory(t *testing.T) {
	data := filepath.Join(reachableTempDir(t), "natter-data")
	p := startNatter(t, "--data-dir", data)
	c := dial(t, p)
	c.connect("keeper")
	c.join("kept", "")
	const n = 50
	for k := 0; k < n; k++ {
		c.sendJSON(map[string]any{"op": "send", "room": "kept", "cid": fmt.Sprint(k), "body": fmt.Sprint("before restart ", k)})
	}
	var lastID string
	for k := 0; k < n; k++ {
		if id := c.expect("ack").ID; id > lastID {
			lastID = id
		}
	}
	c.close()
	p.stop()

	p2 := startNatter(t, "--data-dir", data)
	var h struct {
		Messages []frame `json:"messages"`
		More     bool    `json:"more"`
	}
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		getJSON(t, p2.url("/api/rooms/kept/messages?limit=200"), &h)
		if len(h.Messages) != n {
			return fmt.Errorf("history has %d messages after restart, want %d", len(h.Messages), n)
		}
		return nil
	})
	if h.Messages[n-1].ID != lastID {
		t.Errorf("newest id %s, want %s", h.Messages[n-1].ID, lastID)
	}
	// Resume across the restart comes from the kept log and store.
	c2 := dial(t, p2)
	c2.connect("keeper")
	j := c2.join("kept", h.Messages[n-11].ID)
	if j.Resumed != 10 {
		t.Errorf("resumed %d after restart, want 10", j.Resumed)
	}
	// New messages after the restart sort after the old ones.
	c2.sendJSON(map[string]any{"op": "send", "room": "kept", "cid": "after", "body": "after restart"})
	if id := c2.expect("ack").ID; id <= lastID {
		t.Errorf("id after restart %s does not sort after %s", id, lastID)
	}
}
