package tlsconf

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handshake runs one TLS handshake between a client and a server
// configuration over loopback and returns the client's error (the
// server's when the client saw none).
func handshake(t *testing.T, client, server *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte("x"))
		}
		srvErr <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		<-srvErr
		return err
	}
	defer c.Close()
	b := make([]byte, 1)
	_, rerr := io.ReadFull(c, b)
	if err := <-srvErr; err != nil {
		return err
	}
	return rerr
}

func writeCA(t *testing.T, dir, name string) *CA {
	t.Helper()
	ca, err := NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestMutualTLSAcceptsItsCAAndRefusesAnother(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "natter test CA")
	srvCert, srvKey, err := ca.IssueFiles(dir, "server", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cliCert, cliKey, err := ca.IssueFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	server, err := Files{CA: caFile, Cert: srvCert, Key: srvKey}.Server(true)
	if err != nil {
		t.Fatal(err)
	}
	client, err := Files{CA: caFile, Cert: cliCert, Key: cliKey}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, client, server); err != nil {
		t.Fatalf("same CA: %v", err)
	}

	// A client certificate from another CA is refused by the server.
	otherDir := filepath.Join(dir, "other")
	other := writeCA(t, otherDir, "another CA")
	oCert, oKey, err := other.IssueFiles(otherDir, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := Files{CA: caFile, Cert: oCert, Key: oKey}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, intruder, server); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	// No client certificate at all is refused too.
	anon, err := Files{CA: caFile}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, anon, server); err == nil {
		t.Fatal("a client without a certificate was accepted")
	}
	// A client trusting only the other CA refuses the server.
	distrust, err := Files{CA: filepath.Join(otherDir, "ca.pem")}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, distrust, server); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("untrusted server: got %v, want an unknown-authority error", err)
	}
}

func TestServerNameIsVerified(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "natter test CA")
	cert, key, err := ca.IssueFiles(dir, "server", "kafka.internal")
	if err != nil {
		t.Fatal(err)
	}
	server, err := Files{Cert: cert, Key: key}.Server(false)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	// Dialled at 127.0.0.1, which the certificate does not name.
	wrong, _ := Files{CA: caFile}.Client()
	if err := handshake(t, wrong, server); err == nil {
		t.Fatal("a certificate for another name was accepted")
	}
	right, _ := Files{CA: caFile, ServerName: "kafka.internal"}.Client()
	if err := handshake(t, right, server); err != nil {
		t.Fatalf("with the server name set: %v", err)
	}
}

func TestBadFilesAreClearErrors(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "natter test CA")
	cert, key, err := ca.IssueFiles(dir, "node", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files Files
		want  string
	}{
		{"missing CA", Files{CA: filepath.Join(dir, "nope.pem")}, "no such file"},
		{"CA without certificates", Files{CA: notPEM}, "holds no PEM certificate"},
		{"certificate without key", Files{Cert: cert}, "without its key"},
		{"key without certificate", Files{Key: key}, "without its certificate"},
		{"key of another certificate", Files{Cert: cert, Key: filepath.Join(dir, "ca-key.pem")}, "private key does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.files.Client()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := (Files{CA: filepath.Join(dir, "ca.pem")}).Server(false); err == nil {
		t.Fatal("a server without a certificate was configured")
	}
	if _, err := (Files{Cert: cert, Key: key}).Server(true); err == nil {
		t.Fatal("client verification without a CA was configured")
	}
}

func TestLoadCAFilesRoundTrips(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir, "natter test CA")
	back, err := LoadCAFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Fatal("the CA read back is another certificate")
	}
	// A certificate issued by the reloaded CA verifies against the original.
	cert, key, err := back.IssueFiles(dir, "later", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	server, _ := Files{Cert: cert, Key: key}.Server(false)
	client, _ := Files{CA: filepath.Join(dir, "ca.pem")}.Client()
	if err := handshake(t, client, server); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode: %v %v", fi.Mode(), err)
	}
	if _, err := LoadCAFiles(cert, key); err == nil {
		t.Fatal("a leaf certificate was loaded as a CA")
	}
}
