// Transport-level abuse: a reader that never reads, a compressed frame
// that inflates past the limit, and TLS.

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestSlowConsumerIsCutOthersKeepTheirLatency: a member that never reads
// its socket is disconnected as a slow consumer, while another member of
// the same room receives every message with the latency it had before
// the slow one joined (compared, not bounded by a wall-clock figure).
func TestSlowConsumerIsCutOthersKeepTheirLatency(t *testing.T) {
	k := newTokenKeys(t)
	p, _ := startHostile(t, k, "--rate-per-conn", "0", "--rate-per-user", "0", "--send-queue-bytes", "262144")
	all := []string{"*"}
	sender := dialToken(t, p, hs(t, claims("sender", all, all, nil)))
	reader := dialToken(t, p, hs(t, claims("reader", all, all, nil)))
	sender.join("firehose", "")
	reader.join("firehose", "")
	pad := strings.Repeat("x", 4000)
	seq := 0
	// round sends one message and returns how long until the reader has
	// it; messages arrive in order, so the reader never skips one.
	round := func() time.Duration {
		seq++
		tag := fmt.Sprintf("%07d:", seq)
		start := time.Now()
		sender.sendJSON(map[string]any{"op": "send", "room": "firehose", "cid": tag, "body": tag + pad})
		for {
			f := reader.next(30 * time.Second)
			if f.Op != "msg" {
				continue
			}
			if !strings.HasPrefix(f.Body, tag) {
				t.Fatalf("reader got %.8q, want %s: out of order or lost", f.Body, tag)
			}
			return time.Since(start)
		}
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	var before []time.Duration
	for i := 0; i < 300; i++ {
		before = append(before, round())
	}

	lazy, _, err := dialFrom(p, "127.0.0.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	readUntil := func(op string) {
		for {
			_, data, err := lazy.ReadMessage()
			if err != nil {
				t.Fatalf("lazy: %v", err)
			}
			if strings.Contains(string(data), `"op":"`+op+`"`) {
				return
			}
		}
	}
	_ = lazy.WriteJSON(map[string]any{"op": "connect", "token": hs(t, claims("lazy", all, nil, nil))})
	readUntil("connected")
	_ = lazy.WriteJSON(map[string]any{"op": "join", "room": "firehose"})
	readUntil("joined")
	// From here on lazy never reads: its socket buffers fill, then its
	// queue, and the gateway cuts it.
	const cut = `natter_disconnects_total{reason="slow_consumer"}`
	var during []time.Duration
	for metric(t, p, cut) == 0 {
		if seq > 40000 {
			t.Fatalf("no slow_consumer disconnect after %d messages of 4 KB", seq)
		}
		for i := 0; i < 200; i++ {
			during = append(during, round())
		}
	}
	mb, md := median(before), median(during)
	t.Logf("reader median latency: %v before, %v with the slow consumer (%d messages)", mb, md, len(during))
	// A generous factor: the point is that the slow member does not
	// stall the room (that would cost seconds: the write timeout).
	if floor := time.Millisecond; mb < floor {
		mb = floor
	}
	if md > 10*mb {
		t.Errorf("reader median latency %v with a slow consumer, %v without", md, mb)
	}
	assertAlive(t, reader)
}

// TestCompressedFrameIsCappedAfterDecompression: with permessage-deflate
// on, a small compressed frame that inflates past the hard limit closes
// the connection (1009) instead of being inflated without end.
func TestCompressedFrameIsCappedAfterDecompression(t *testing.T) {
	k := newTokenKeys(t)
	p, _ := startHostile(t, k, "--compression")
	d := websocket.Dialer{EnableCompression: true}
	ws, resp, err := d.Dial("ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if !strings.Contains(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate") {
		t.Fatalf("compression not negotiated: %q", resp.Header.Get("Sec-Websocket-Extensions"))
	}
	c := &client{t: t, ws: ws, frames: make(chan frame, 1024), closed: make(chan struct{})}
	go c.readLoop()
	c.sendJSON(map[string]any{"op": "connect", "token": hs(t, claims("zipper", []string{"*"}, nil, nil))})
	c.expect("connected")
	// 64 MiB of one letter deflates to a few tens of KB on the wire.
	bomb := `{"op":"send","room":"r","cid":"z","body":"` + strings.Repeat("a", 64<<20) + `"}`
	c.wmu.Lock()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(bomb))
	c.wmu.Unlock()
	select {
	case <-c.closed:
	case <-time.After(60 * time.Second):
		t.Fatal("connection not closed after a 64 MiB inflated frame")
	}
	if !websocket.IsCloseError(c.err, websocket.CloseMessageTooBig) {
		t.Errorf("closed with %v, want 1009", c.err)
	}
	ctl := dialToken(t, p, hs(t, claims("control", []string{"*"}, nil, nil)))
	assertUp(t, p, ctl)
}

// TestTLSServesHTTPSAndWSS: with --tls-cert/--tls-key the gateway speaks
// only TLS.
func TestTLSServesHTTPSAndWSS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	addr := freeAddr(t)
	cmd := exec.Command(natterBin, "--open", "--addr", addr, "--data-dir", t.TempDir(), "--database-url", freshDatabase(t),
		"--tls-cert", certFile, "--tls-key", keyFile)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, addr: addr, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("natter logs:\n%s", tail(logs.String(), 40))
		}
	})
	tlsConf := &tls.Config{RootCAs: pool}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-p.done:
			t.Fatalf("natter exited:\n%s", tail(logs.String(), 40))
		default:
		}
		resp, err := hc.Get("https://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on a TLS gateway")
		}
	}
	d := websocket.Dialer{TLSClientConfig: tlsConf}
	ws, _, err := d.Dial("wss://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"op": "connect", "user": "secure"}); err != nil {
		t.Fatal(err)
	}
	_, data, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(data), `"op":"connected"`) {
		t.Fatalf("over wss: %s %v", data, err)
	}
	if !strings.Contains(logs.String(), "url=https://") {
		t.Errorf("startup log does not announce https")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natter-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
