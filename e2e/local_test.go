// natter local starts the multi-region topology as processes and stops
// all of them on SIGTERM.

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLocalClusterRunsAndStopsCleanly(t *testing.T) {
	uniq := fmt.Sprint(time.Now().UnixNano())
	// Two regions of one gateway each: natter local puts them on
	// 127.0.0.2 and 127.0.0.3.
	port := freePortOn(t, "127.0.0.2", "127.0.0.3")
	cmd := exec.Command(natterBin, "local", "--regions", "2", "--gateways", "1", "--port", port,
		"--kafka-brokers", service(t, "NATTER_TEST_KAFKA_BROKERS"), "--redis-url", service(t, "NATTER_TEST_REDIS_URL"),
		"--database-url", freshDatabase(t), "--kafka-topic", "e2e.local."+uniq)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("natter local logs:\n%s", tail(logs.String(), 80))
		}
	}()
	var urls []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "http://"); i >= 0 {
			urls = append(urls, line[i:])
		}
		if len(urls) == 2 {
			break
		}
	}
	if len(urls) != 2 {
		t.Fatalf("natter local printed %d gateway URLs, want 2", len(urls))
	}
	go func() {
		for sc.Scan() {
		}
	}()
	procs := make([]*proc, 2)
	for i, u := range urls {
		procs[i] = &proc{t: t, addr: strings.TrimPrefix(u, "http://"), done: make(chan struct{})}
	}
	a, b := dial(t, procs[0]), dial(t, procs[1])
	a.connect("alice")
	b.connect("bob")
	a.join("local", "")
	b.join("local", "")
	a.sendJSON(map[string]any{"op": "send", "room": "local", "cid": "x", "body": "across regions"})
	if f := b.expect("msg"); f.Body != "across regions" {
		t.Fatalf("bob got %q", f.Body)
	}
	a.close()
	b.close()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("natter local exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("natter local did not stop within 60s")
	}
	for _, u := range urls {
		if resp, err := http.Get(u + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after natter local stopped", u)
		}
	}
}
